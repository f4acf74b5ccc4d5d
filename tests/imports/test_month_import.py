"""Done-when of issue 17 at the size of the test suite: a generated month imported twice gives the same
rollup and reports as the same events posted live as they happened, and the second import adds nothing.
(The full year, five million events, is loadtests/import_year.py; its result is in loadtests/RESULTS.md.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cli import main as cli_main
from app.settings import Settings
from tests.imports.history import at, days_of, write_jsonl, year_events
from tests.running import running_app

MONTH = (2026, 9)
# A year of this many events puts about 12,000 in September.
YEAR_EVENTS = 150_000
SLOT_SECONDS = 600
TZ = ZoneInfo("Europe/Copenhagen")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def slots(events: list[dict[str, Any]]) -> Iterator[tuple[float, list[dict[str, Any]]]]:
    """The events by ten-minute slot, each delivered just after its slot ends, at most 1000 a request."""
    batch: list[dict[str, Any]] = []
    slot = None
    for event in events:
        this = int(at(event) // SLOT_SECONDS)
        if slot is not None and (this != slot or len(batch) == 1000):
            yield (slot + 1) * SLOT_SECONDS + 0.5, batch
            batch = []
        slot = this
        batch.append(event)
    if batch and slot is not None:
        yield (slot + 1) * SLOT_SECONDS + 0.5, batch


async def rollup_rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT * FROM interval_rollup ORDER BY channel, queue, interval_start")
        )
        return [tuple(row) for row in result]


async def reports(api: Any) -> list[dict[str, Any]]:
    found = []
    for granularity in ("month", "week", "day", "interval"):
        response = await api.client.get(
            "/v1/reports", params={"granularity": granularity, "from": "2026-09-01", "to": "2026-09-30"}
        )
        assert response.status_code == 200, response.text
        found.append(response.json())
    return found


async def run_cli(argv: list[str]) -> int:
    return await asyncio.to_thread(cli_main, argv)


async def test_a_month_imported_twice_reports_as_posted_live(
    settings: Settings,
    clean_db: AsyncEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    events = list(year_events(MONTH[0], YEAR_EVENTS, seed=8, month=MONTH[1]))
    assert 10_000 < len(events) < 15_000
    clock = Clock(at(events[0]) - 60)
    async with running_app(settings, clock) as api:
        for delivered_at, batch in slots(events):
            clock.now = delivered_at
            response = await api.post(batch)
            assert response.status_code == 200, response.text
        clock.now = at(events[-1]) + 3600
        rollup = api.services.rollup
        assert rollup is not None
        await rollup.flush()
        live_reports = await reports(api)
    live_rows = await rollup_rows(clean_db)
    async with clean_db.connect() as conn:
        arrived = (await conn.execute(text("SELECT sum(arrived) FROM interval_rollup"))).scalar_one()
    assert arrived == sum(1 for e in events if e["type"] in ("call.offered", "ticket.issued"))

    async with clean_db.begin() as conn:
        await conn.execute(text("TRUNCATE events, interval_rollup, queues RESTART IDENTITY"))
    path = tmp_path / "september.jsonl"
    write_jsonl(path, events)
    monkeypatch.setenv("QUEUEPULSE_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("QUEUEPULSE_DATA_DIR", str(settings.data_dir))
    capsys.readouterr()
    assert await run_cli(["import", str(path)]) == 0
    first = capsys.readouterr().out
    assert f"{len(events):,} events read, {len(events):,} stored, 0 already stored, 0 bad lines" in first
    # The days with events (weekdays; the centre is closed at weekends).
    assert f"rollup rebuilt for {len(days_of(events, TZ))} days (2026-09-01 to 2026-09-30)" in first
    assert await rollup_rows(clean_db) == live_rows

    assert await run_cli(["import", str(path)]) == 0
    second = capsys.readouterr().out
    assert f"{len(events):,} events read, 0 stored, {len(events):,} already stored" in second
    async with clean_db.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM events"))).scalar_one() == len(events)
    assert await rollup_rows(clean_db) == live_rows
    async with running_app(settings, Clock(at(events[-1]) + 3600)) as api:
        assert await reports(api) == live_reports
