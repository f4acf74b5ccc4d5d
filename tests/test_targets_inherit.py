"""QUEUEPULSE_QUEUE_TARGETS: an entry that names no formula keeps QUEUEPULSE_FORMULA (issue 12, defect 9a)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.running import ADMIN_HEADERS, RunningApp, running_app

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC).timestamp()
QUEUE_TARGETS = {
    # Names threshold and goal only: the formula is the one set for the whole service.
    "phone/pas": {"threshold_seconds": 30, "goal_pct": 95},
    # Names its formula: that one.
    "phone/skat": {"threshold_seconds": 45, "goal_pct": 80, "formula": "abandons_excluded"},
}


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _env_settings(monkeypatch: pytest.MonkeyPatch, database_url: str, data_dir: Path, **env: str) -> Settings:
    """Settings read the way the service reads them: from the environment."""
    for name, value in env.items():
        monkeypatch.setenv(f"QUEUEPULSE_{name.upper()}", value)
    return Settings(
        _env_file=None,
        database_url=database_url,
        data_dir=data_dir,
        ingest_token="test-ingest-token",
        admin_token="test-admin-token",
    )


def _one_answered_one_abandoned(queue: str) -> list[dict[str, Any]]:
    """An answer within every threshold here, and an abandon after 40 s (past the short-abandon limit)."""
    steps = [("1", "a", "call.offered", 300), ("1", "s", "call.answered", 290)]
    steps += [("2", "a", "call.offered", 200), ("2", "l", "call.abandoned", 160)]
    return [
        {
            "event_id": f"{queue}-{n}{step}",
            "type": type_,
            "contact_id": f"{queue}-{n}",
            "queue": queue,
            "occurred_at": _iso(NOW - ago),
        }
        for n, step, type_, ago in steps
    ]


async def _phone_queue(api: RunningApp, queue: str) -> dict[str, Any]:
    kpis = await api.kpis("today")
    result: dict[str, Any] = kpis["channels"]["phone"]["queues"][queue]  # type: ignore[index]
    return result


async def test_entry_without_formula_inherits_the_services_formula(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path, clean_db: AsyncEngine
) -> None:
    settings = _env_settings(
        monkeypatch, database_url, tmp_path, formula="answered", queue_targets=json.dumps(QUEUE_TARGETS)
    )
    async with running_app(settings, lambda: NOW) as api:
        for queue in ("pas", "skat", "borgerservice"):
            response = await api.post(_one_answered_one_abandoned(queue))
            assert response.status_code == 200, response.text
        pas = await _phone_queue(api, "pas")
        # `answered`: 1 within / 1 started. Reset to `offered` it would be 1 / (1 + 1 abandon) = 50 %.
        assert pas["target"] == {"threshold_seconds": 30.0, "goal_pct": 95.0, "formula": "answered"}
        assert (pas["service_level_pct"], pas["status"]) == (100.0, "ok")
        skat = await _phone_queue(api, "skat")
        assert skat["target"]["formula"] == "abandons_excluded"
        assert skat["service_level_pct"] == 100.0
        # A queue with no entry has the channel default, with the same formula.
        default = await _phone_queue(api, "borgerservice")
        assert default["target"] == {"threshold_seconds": 60.0, "goal_pct": 90.0, "formula": "answered"}

        listed = (await api.client.get("/v1/targets")).json()["targets"]
        by_queue = {(t["channel"], t["queue"]): t for t in listed}
        assert by_queue[("phone", "pas")]["formula"] == "answered"
        assert by_queue[("phone", "skat")]["formula"] == "abandons_excluded"
        assert by_queue[("phone", None)]["formula"] == "answered"


async def test_inherited_formula_holds_after_a_restart(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path, clean_db: AsyncEngine
) -> None:
    settings = _env_settings(
        monkeypatch, database_url, tmp_path, formula="answered", queue_targets=json.dumps(QUEUE_TARGETS)
    )
    async with running_app(settings, lambda: NOW) as api:
        assert (await api.post(_one_answered_one_abandoned("pas"))).status_code == 200
        before = await _phone_queue(api, "pas")
    async with running_app(settings, lambda: NOW + 1) as api:
        after = await _phone_queue(api, "pas")
    assert after["service_level_pct"] == before["service_level_pct"] == 100.0
    assert after["target"]["formula"] == "answered"


async def test_put_without_formula_still_means_offered_as_documented(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path, clean_db: AsyncEngine
) -> None:
    """PUT /v1/targets replaces a queue's whole target; its body's `formula` defaults to `offered`."""
    settings = _env_settings(
        monkeypatch, database_url, tmp_path, formula="answered", queue_targets=json.dumps(QUEUE_TARGETS)
    )
    async with running_app(settings, lambda: NOW) as api:
        assert (await api.post(_one_answered_one_abandoned("pas"))).status_code == 200
        response = await api.client.put(
            "/v1/targets/phone/pas", json={"threshold_seconds": 30, "goal_pct": 95}, headers=ADMIN_HEADERS
        )
        assert response.status_code == 200, response.text
        assert response.json()["formula"] == "offered"
        pas = await _phone_queue(api, "pas")
        assert (pas["target"]["formula"], pas["service_level_pct"]) == ("offered", 50.0)


@pytest.mark.parametrize(
    "entry",
    [
        {"threshold_seconds": 30, "goal_pct": 95, "fromula": "answered"},  # a misspelt key
        {"goal_pct": 95},  # threshold and goal stay required: an override says what it overrides
        {"threshold_seconds": 30},
        {"threshold_seconds": 30, "goal_pct": 95, "formula": "fastest"},
        {"threshold_seconds": 90_000, "goal_pct": 95},  # the bounds PUT /v1/targets takes
    ],
)
def test_entries_that_cannot_be_meant_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, entry: dict[str, Any]
) -> None:
    monkeypatch.setenv("QUEUEPULSE_QUEUE_TARGETS", json.dumps({"phone/pas": entry}))
    with pytest.raises(ValidationError, match="queue_targets"):
        Settings(_env_file=None, data_dir=tmp_path)
