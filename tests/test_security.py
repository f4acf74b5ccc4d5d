"""Tokens and scopes: 401 without a token, 403 with the wrong one, and nothing refused changes anything."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.auth import _matches
from app.settings import Settings
from tests.running import ADMIN_HEADERS, INGEST_HEADERS, RunningApp, running_app

READ_HEADERS = {"Authorization": "Bearer test-read-token"}


def _event(event_id: str = "e1", contact: str = "c1", queue: str = "borgerservice") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "call.offered",
        "contact_id": contact,
        "queue": queue,
        "occurred_at": datetime.now(UTC).isoformat(),
    }


async def _stored(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        count: int = (await connection.execute(text("SELECT count(*) FROM events"))).scalar_one()
    return count


def _figures(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in snapshot.items() if key != "as_of"}


@pytest.fixture
async def closed_api(settings: Settings, clean_db: AsyncEngine) -> Any:
    """The service with a read token configured, so reading needs one too."""
    async with running_app(settings.model_copy(update={"read_token": "test-read-token"})) as running:
        yield running


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic dGVzdDp0ZXN0"}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({"Authorization": "Bearer wrong"}, 403),
        (READ_HEADERS, 403),
        ({"Authorization": "Bearer test-ingest-token-and-more"}, 403),
    ],
)
async def test_refused_ingest_changes_nothing(
    closed_api: RunningApp, clean_db: AsyncEngine, headers: dict[str, str], status: int
) -> None:
    client = closed_api.client
    before = _figures((await client.get("/v1/kpis", params={"window": "today"}, headers=READ_HEADERS)).json())
    response = await client.post("/v1/events", json=_event(), headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    assert await _stored(clean_db) == 0
    after = _figures((await client.get("/v1/kpis", params={"window": "today"}, headers=READ_HEADERS)).json())
    assert after == before
    assert after["channels"]["phone"]["total"]["arrived"] == 0
    # The same event with the right token is taken: the refusal was the token, not the event.
    accepted = await client.post("/v1/events", json=_event(), headers=INGEST_HEADERS)
    assert accepted.json() == {"accepted": 1, "duplicates": 0}
    assert await _stored(clean_db) == 1


async def test_reads_are_open_without_a_read_token(api: RunningApp) -> None:
    assert (await api.client.get("/v1/kpis")).status_code == 200
    assert (await api.client.get("/v1/targets")).status_code == 200


async def test_reads_need_the_read_token_once_one_is_set(closed_api: RunningApp) -> None:
    client = closed_api.client
    for path in ("/v1/kpis", "/v1/targets"):
        assert (await client.get(path)).status_code == 401
        assert (await client.get(path, headers={"Authorization": "Bearer nope"})).status_code == 403
        assert (await client.get(path, headers=INGEST_HEADERS)).status_code == 403
        assert (await client.get(path, headers=READ_HEADERS)).status_code == 200
        # The admin token grants every scope.
        assert (await client.get(path, headers=ADMIN_HEADERS)).status_code == 200


async def test_health_stays_open(closed_api: RunningApp) -> None:
    assert (await closed_api.client.get("/healthz")).status_code == 200
    assert (await closed_api.client.get("/readyz")).status_code == 200


async def test_refused_target_change_changes_nothing(api: RunningApp, clean_db: AsyncEngine) -> None:
    body = {"threshold_seconds": 10, "goal_pct": 99, "formula": "answered"}
    before = (await api.client.get("/v1/targets")).json()
    for headers, status in (({}, 401), (INGEST_HEADERS, 403), (READ_HEADERS, 403)):
        response = await api.client.put("/v1/targets/phone/borgerservice", json=body, headers=headers)
        assert response.status_code == status
    assert (await api.client.get("/v1/targets")).json() == before
    async with clean_db.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM targets"))).scalar_one() == 0


async def test_tokens_come_from_files(database_url: str, tmp_path: Path, clean_db: AsyncEngine) -> None:
    (tmp_path / "ingest").write_text("file-ingest-token\n")
    (tmp_path / "read").write_text("file-read-token\n")
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        data_dir=tmp_path,
        ingest_token_file=tmp_path / "ingest",
        read_token_file=tmp_path / "read",
    )
    async with running_app(settings) as running:
        client = running.client
        ok = await client.post(
            "/v1/events", json=_event(), headers={"Authorization": "Bearer file-ingest-token"}
        )
        assert ok.status_code == 200
        assert (await client.get("/v1/kpis")).status_code == 401
        read = await client.get("/v1/kpis", headers={"Authorization": "Bearer file-read-token"})
        assert read.status_code == 200
    # No admin token configured: nobody may change targets.
    assert settings.token("admin") is None
    assert not (tmp_path / "ingest_token").exists()


async def test_tokens_never_reach_logs_or_reprs(
    closed_api: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    services = closed_api.services
    await closed_api.client.post("/v1/events", json=_event(), headers={"Authorization": "Bearer guess"})
    await closed_api.post(_event())
    secrets = ("test-ingest-token", "test-admin-token", "test-read-token")
    shown = repr(services.settings) + repr(services.tokens) + caplog.text
    assert not [secret for secret in secrets if secret in shown]


def test_token_comparison() -> None:
    assert _matches("abc", "abc")
    assert not _matches("abc", "abd")
    assert not _matches("abc", "abcd")
    assert not _matches("", "abc")
    assert not _matches("abc", None)
    assert _matches("æøå-token", "æøå-token")
