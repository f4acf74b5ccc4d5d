"""Poison occurred_at values (issue 12, defect 1): refused at the gate with a 422 naming the field, and
rows stored before that gate existed stop no replay, target change, rollup or rebuild."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.window import Window
from app.db.rollup import RollupWriter
from app.settings import Settings, target_book, window_config
from tests.running import ADMIN_HEADERS, INGEST_HEADERS, RunningApp, running_app

QUEUE_LOG = "/v1/ingest/asterisk-queue-log"
# Each is refused by the schema itself, whatever QUEUEPULSE_MAX_PAST_DAYS says: before 1970 or after
# 9999 in UTC. The +14:00 one is year 0 in UTC, the -14:00 one year 10000.
UNSTORABLE = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:01Z",
    "1969-12-31T23:59:59Z",
    "9999-12-31T23:59:59-14:00",
]
# pydantic's datetime takes these as Unix seconds; the service promises RFC 3339 with an offset.
NOT_RFC3339: list[Any] = [1_700_000_000, 1.7e9, "1700000000", "1700000000.5", "2026-11-23", None, True]


def event(event_id: str, occurred_at: Any, queue: str = "borgerservice") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "call.offered",
        "contact_id": event_id,
        "queue": queue,
        "occurred_at": occurred_at,
    }


def now_iso(seconds_ago: float = 0.0) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


async def stored_ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set((await connection.execute(text("SELECT event_id FROM events"))).scalars())


def only_issue(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    (issue,) = response.json()["detail"]
    result: dict[str, Any] = issue
    return result


@pytest.mark.parametrize("occurred_at", UNSTORABLE)
async def test_a_time_no_store_can_hold_is_refused_naming_the_field(
    api: RunningApp, engine: AsyncEngine, occurred_at: str
) -> None:
    single = only_issue(await api.post(event("poison", occurred_at)))
    assert single["field"] == "occurred_at"
    assert "1970-01-01" in single["message"]
    batch = only_issue(await api.post([event("fine", now_iso()), event("poison", occurred_at)]))
    assert (batch["index"], batch["field"]) == (1, "occurred_at")
    # All or nothing: the valid event of the refused batch is not stored either.
    assert await stored_ids(engine) == set()


@pytest.mark.parametrize("occurred_at", NOT_RFC3339)
async def test_a_number_or_a_bare_date_is_no_occurred_at(
    api: RunningApp, engine: AsyncEngine, occurred_at: Any
) -> None:
    issue = only_issue(await api.post(event("numeric", occurred_at)))
    assert issue["field"] == "occurred_at"
    assert "RFC 3339" in issue["message"]
    assert await stored_ids(engine) == set()


async def test_rfc3339_forms_are_still_accepted(api: RunningApp, engine: AsyncEngine) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    forms = [
        at.isoformat(),
        at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        at.isoformat(sep=" "),
        at.strftime("%Y-%m-%dt%H:%M:%S.%f+00:00"),
    ]
    response = await api.post([event(f"form-{i}", form) for i, form in enumerate(forms)])
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": len(forms), "duplicates": 0}


async def test_backfill_reaches_back_max_past_days_and_no_further(
    api: RunningApp, engine: AsyncEngine
) -> None:
    settings = api.services.settings
    assert settings.max_past_days == 3660
    day = 86_400.0
    accepted = await api.post(event("nine-years-back", now_iso(9 * 365 * day)))
    assert accepted.status_code == 200, accepted.text
    issue = only_issue(await api.post(event("too-far-back", now_iso(3661 * day))))
    assert issue["field"] == "occurred_at"
    assert issue["message"] == "is more than 3660 days in the past"
    assert await stored_ids(engine) == {"nine-years-back"}


async def test_max_past_days_is_a_setting(
    settings: Settings, clean_db: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUEUEPULSE_MAX_PAST_DAYS", "2")
    from_env = Settings(_env_file=None)
    assert from_env.max_past_days == 2
    async with running_app(settings.model_copy(update={"max_past_days": 2.0})) as api:
        assert (await api.post(event("yesterday", now_iso(86_400)))).status_code == 200
        issue = only_issue(await api.post(event("three-days", now_iso(3 * 86_400))))
        assert issue["message"] == "is more than 2 days in the past"


async def test_queue_log_lines_with_unstorable_or_too_old_times_are_line_errors(
    api: RunningApp, engine: AsyncEngine
) -> None:
    now = int(time.time())
    lines = [
        f"{now - 60}|{now}.1|Borgerservice|NONE|ENTERQUEUE|||1",
        f"0001-01-01T00:00:00+00:00|{now}.2|Borgerservice|NONE|ENTERQUEUE|||1",
        f"2000-01-01T00:00:00+00:00|{now}.3|Borgerservice|NONE|ENTERQUEUE|||1",
        f"1970-01-01T00:00:00+14:00|{now}.4|Borgerservice|NONE|ENTERQUEUE|||1",
        # A restart dated that far back would clear, at its own time, whoever waited before it.
        "2000-01-01T00:00:00+00:00|NONE|NONE|NONE|QUEUESTART|",
    ]
    response = await api.client.post(
        QUEUE_LOG,
        content="\n".join(lines) + "\n",
        headers={**INGEST_HEADERS, "Content-Type": "text/plain"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 1
    reasons = {issue["line"]: issue["reason"] for issue in body["errors"]}
    assert set(reasons) == {2, 3, 4, 5}
    assert reasons[2].startswith("occurred_at: must lie between 1970")
    assert reasons[3] == "occurred_at: is more than 3660 days in the past"
    assert reasons[4].startswith("occurred_at: must lie between 1970")
    assert reasons[5] == "QUEUESTART: time: is more than 3660 days in the past"
    assert len(await stored_ids(engine)) == 1


async def test_queue_log_year_one_east_of_greenwich_is_a_line_error(api: RunningApp) -> None:
    now = int(time.time())
    body = f"0001-01-01 00:00:00|{now}.1|Borgerservice|NONE|ENTERQUEUE|||1\n"
    response = await api.client.post(
        QUEUE_LOG,
        content=body,
        params={"time_zone": "Etc/GMT-14"},
        headers={**INGEST_HEADERS, "Content-Type": "text/plain"},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["accepted"] == 0
    assert [issue["line"] for issue in result["errors"]] == [1]
    assert (await api.client.get("/readyz")).status_code == 200


async def test_a_poison_event_fails_no_other_clients_request(api: RunningApp, engine: AsyncEngine) -> None:
    poison = [event(f"poison-{i}", value) for i, value in enumerate(UNSTORABLE + NOT_RFC3339)]
    batches = [
        [event(f"valid-{n}-{k}", now_iso(60), queue=f"q{n % 5}") for k in range(10)] for n in range(60)
    ]
    # Interleaved, so poison and valid requests reach the writer in the same moments.
    requests: list[tuple[str, list[dict[str, Any]]]] = [("valid", batch) for batch in batches]
    for index, item in enumerate(poison):
        requests.insert(index * 4, ("poison", [item]))
    responses = await asyncio.gather(*(api.post(body) for _, body in requests))
    statuses = {
        kind: [r.status_code for (k, _), r in zip(requests, responses, strict=True) if k == kind]
        for kind in ("valid", "poison")
    }
    assert statuses["valid"] == [200] * len(batches)
    assert statuses["poison"] == [422] * len(poison)
    accepted = [r.json()["accepted"] for (k, _), r in zip(requests, responses, strict=True) if k == "valid"]
    assert accepted == [10] * len(batches)
    stored = await stored_ids(engine)
    assert len(stored) == 600
    assert not any(name.startswith("poison") for name in stored)


POISON_ROWS = """
INSERT INTO events (event_id, type, channel, contact_id, queue, occurred_at, received_at)
VALUES
    ('stored-minus-infinity', 'call.offered', 'phone', 'old-1', 'borgerservice', '-infinity', now()),
    ('stored-year-one', 'call.offered', 'phone', 'old-2', 'borgerservice', '0001-01-01T00:00:01Z', now()),
    ('stored-plus-infinity', 'call.abandoned', 'phone', 'old-1', 'borgerservice', 'infinity', now()),
    ('stored-yesterday-year-one', 'call.offered', 'phone', 'old-3', 'borgerservice',
     '0001-01-01T00:00:01Z', now() - interval '1 day')
"""


async def test_rows_stored_before_the_gate_stop_no_replay_target_change_or_rebuild(
    settings: Settings, clean_db: AsyncEngine, tmp_path: Path
) -> None:
    async with running_app(settings) as api:
        answered = [
            event("live-offer", now_iso(90)),
            event("live-answer", now_iso(30)) | {"type": "call.answered", "contact_id": "live-offer"},
        ]
        assert (await api.post(answered)).status_code == 200
    async with clean_db.begin() as connection:
        await connection.execute(text(POISON_ROWS))

    # A restart replays the store: it must become ready, with the valid events in the live figures.
    async with running_app(settings) as api:
        assert (await api.client.get("/readyz")).json()["status"] == "ready"
        total = (await api.kpis("today"))["channels"]["phone"]["total"]  # type: ignore[index]
        assert total["arrived"] == 1
        assert total["started"] == 1
        put = await api.client.put(
            "/v1/targets/phone/borgerservice",
            json={"threshold_seconds": 20, "goal_pct": 80},
            headers=ADMIN_HEADERS,
        )
        assert put.status_code == 200, put.text
        report = await api.client.get("/v1/reports", params={"granularity": "day"})
        assert report.status_code == 200, report.text
        # Late data still reaches the rollup after the poison rows were replayed.
        late = event("late-offer", now_iso(26 * 3600))
        assert (await api.post(late)).status_code == 200
        rollup = api.services.rollup
        assert rollup is not None
        await rollup.flush()
        assert (rollup.stats.errors, rollup.stats.days_failed) == (0, 0)
        assert rollup.stats.days_rebuilt >= 1

    env = {
        **os.environ,
        "QUEUEPULSE_DATABASE_URL": settings.database_url or "",
        "QUEUEPULSE_DATA_DIR": str(tmp_path),
    }
    rebuilt = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "rebuild-rollups"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    assert rebuilt.stdout.strip().splitlines()[-1].startswith("rebuilt ")
    async with clean_db.connect() as connection:
        rows = await connection.execute(
            text("SELECT sum(arrived) FROM interval_rollup WHERE queue = 'borgerservice'")
        )
        assert rows.scalar_one() == 2  # live-offer and late-offer; no poison row counted


async def test_one_day_that_cannot_be_rebuilt_holds_up_no_other(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    async with running_app(settings) as api:
        assert (await api.post(event("yesterday", now_iso(30 * 3600)))).status_code == 200
    window = Window(window_config(settings), target_book(settings))
    writer = RollupWriter(clean_db, window, lambda: Window(window_config(settings), target_book(settings)))
    yesterday = (datetime.now(window.tz) - timedelta(hours=30)).date()
    # Year 1's midnight less a maximum wait is before year 1: no datetime holds it, so its rebuild fails.
    impossible = date(1, 1, 1)
    writer._stale_days |= {impossible, yesterday}
    await writer.flush()
    async with clean_db.connect() as connection:
        arrived = await connection.execute(text("SELECT sum(arrived) FROM interval_rollup"))
        assert arrived.scalar_one() == 1
    assert writer.stats.days_rebuilt == 1
    assert writer.stats.errors == 1
    from app.db.rollup import DAY_ATTEMPTS

    for _ in range(DAY_ATTEMPTS - 1):
        await writer.flush()
    # Given up and counted after DAY_ATTEMPTS tries, so it cannot keep the writer busy for ever.
    assert writer.stats.days_failed == 1
    assert writer.stats.errors == DAY_ATTEMPTS
    await writer.flush()
    assert writer.stats.errors == DAY_ATTEMPTS
