"""Issue 12, defect 2: several named ingest tokens, each revocable on its own, stored only as SHA-256.

The token's name is the events' source: stored per event in `events.ingested_by` and in the queue registry.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.queues import refresh_sources
from app.cli import main
from tests.running import ADMIN_HEADERS, INGEST_HEADERS, RunningApp


def _event(event_id: str, queue: str = "borgerservice") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "call.offered",
        "contact_id": event_id,
        "queue": queue,
        "occurred_at": datetime.fromtimestamp(time.time(), UTC).isoformat(),
    }


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _sources(engine: AsyncEngine) -> dict[str, str | None]:
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT event_id, ingested_by FROM events"))).all()
    return {row[0]: row[1] for row in rows}


async def _stored_tokens(engine: AsyncEngine) -> dict[str, tuple[bytes, bool]]:
    async with engine.connect() as connection:
        rows = (
            await connection.execute(text("SELECT name, digest, revoked_at IS NOT NULL FROM ingest_tokens"))
        ).all()
    return {row[0]: (bytes(row[1]), row[2]) for row in rows}


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUEPULSE_DATABASE_URL", database_url)


@pytest.mark.usefixtures("cli_env")
async def test_tokens_by_cli_name_their_events_and_a_revoked_one_is_refused(
    api: RunningApp, clean_db: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["tokens", "create", "asterisk"]) == 0
    token = capsys.readouterr().out.splitlines()[1]
    assert main(["tokens", "create", "asterisk"]) == 1  # a name is never used twice
    assert main(["tokens", "create", "default"]) == 1
    assert "reserved" in capsys.readouterr().out
    stored = await _stored_tokens(clean_db)
    assert stored == {"asterisk": (hashlib.sha256(token.encode()).digest(), False)}

    # The running service takes up tokens created by another process at its next refresh.
    assert (await api.client.post("/v1/events", json=_event("e1"), headers=_bearer(token))).status_code == 403
    await refresh_sources(api.services)
    assert (await api.client.post("/v1/events", json=_event("e2"), headers=_bearer(token))).status_code == 200
    assert (await api.post(_event("e3"))).status_code == 200
    assert (await api.client.post("/v1/events", json=_event("e4"), headers=ADMIN_HEADERS)).status_code == 200
    assert await _sources(clean_db) == {"e2": "asterisk", "e3": "default", "e4": "admin"}
    log_line = "1700000000|1700000000.1|sales|NONE|ENTERQUEUE|||1\n"
    response = await api.client.post(
        "/v1/ingest/asterisk-queue-log",
        content=log_line.replace("1700000000", str(int(time.time()))),
        headers={**_bearer(token), "Content-Type": "text/plain"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    assert set((await _sources(clean_db)).values()) == {"asterisk", "default", "admin"}

    capsys.readouterr()
    assert main(["tokens", "list"]) == 0
    listing = capsys.readouterr().out
    assert "asterisk" in listing
    assert "default" in listing
    assert token not in listing

    assert main(["tokens", "revoke", "asterisk"]) == 0
    assert main(["tokens", "revoke", "nobody"]) == 1
    assert main(["tokens", "revoke", "default"]) == 1
    await refresh_sources(api.services)
    refused = await api.client.post("/v1/events", json=_event("e5"), headers=_bearer(token))
    assert refused.status_code == 403
    assert (await api.post(_event("e6"))).status_code == 200
    assert (await _stored_tokens(clean_db))["asterisk"][1] is True
    assert "e5" not in await _sources(clean_db)


async def test_tokens_by_http(api: RunningApp, clean_db: AsyncEngine) -> None:
    created = await api.client.post("/v1/ingest-tokens", json={"name": "ticketing"}, headers=ADMIN_HEADERS)
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    token = created.json()["token"]
    assert created.json()["name"] == "ticketing"
    # Applied at once in this process: no refresh needed.
    assert (await api.client.post("/v1/events", json=_event("t1"), headers=_bearer(token))).status_code == 200
    assert await _sources(clean_db) == {"t1": "ticketing"}

    listed = (await api.client.get("/v1/ingest-tokens", headers=ADMIN_HEADERS)).json()["tokens"]
    assert [item["name"] for item in listed] == ["default", "ticketing"]
    assert token not in str(listed)
    assert (await api.client.get("/v1/ingest-tokens", headers=INGEST_HEADERS)).status_code == 403
    again = await api.client.post("/v1/ingest-tokens", json={"name": "ticketing"}, headers=ADMIN_HEADERS)
    assert again.status_code == 409
    for name in ("default", "admin", "Bad Name"):
        bad = await api.client.post("/v1/ingest-tokens", json={"name": name}, headers=ADMIN_HEADERS)
        assert bad.status_code == 422, name
    by_ingest = await api.client.post("/v1/ingest-tokens", json={"name": "mine"}, headers=INGEST_HEADERS)
    assert by_ingest.status_code == 403

    revoked = await api.client.post("/v1/ingest-tokens/ticketing/revoke", headers=ADMIN_HEADERS)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert (await api.client.post("/v1/events", json=_event("t2"), headers=_bearer(token))).status_code == 403
    assert (
        await api.client.post("/v1/ingest-tokens/nobody/revoke", headers=ADMIN_HEADERS)
    ).status_code == 404
    # An unknown token is refused the same way as a revoked one.
    assert (
        await api.client.post("/v1/events", json=_event("t3"), headers=_bearer("guess"))
    ).status_code == 403
    assert (await api.post(_event("t4"))).status_code == 200
    assert await _sources(clean_db) == {"t1": "ticketing", "t4": "default"}
