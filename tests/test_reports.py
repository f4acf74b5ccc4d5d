"""History reports: the rollup the service writes as it goes, the report API, and live = history."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cli import main as cli_main
from app.core.clock import day_bounds
from app.core.events import Channel, Event
from app.core.kpis import Tally, service_level
from app.core.targets import TargetBook
from app.core.window import Window
from app.db.reports import REPORT_FIELDS
from app.db.rollup import rebuild_day, upsert_rollup
from app.settings import Settings, target_book, window_config
from tests.running import RunningApp, running_app

TZ = ZoneInfo("Europe/Copenhagen")
# The last Sunday of October 2026: clocks go back, the local day has 25 hours.
DST_DAY = date(2026, 10, 25)
SPRING_DAY = date(2026, 3, 29)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def day_events(day: date, seed: int = 8) -> list[dict[str, Any]]:
    """A varied day for both channels: within and past the threshold, abandons short and long, transfers,
    no-shows, sources' own waits, out-of-order delivery, and contacts that arrived the evening before."""
    rng = random.Random(seed)
    start, end = day_bounds(day, TZ)
    events: list[dict[str, Any]] = []
    for n in range(360):
        phone = n % 3 != 0
        cid = f"{'c' if phone else 't'}{n}"
        queue = rng.choice(["borgerservice", "pas"] if phone else ["pas", "koerekort"])
        # A few contacts arrive in the last ten minutes before the day begins.
        arrive = start - rng.uniform(1, 600) if n < 6 else rng.uniform(start + 3600, end - 3 * 3600)
        wait = rng.choice([rng.uniform(0, 50), rng.uniform(40, 400), rng.uniform(200, 900)])
        kinds = (
            ("call.offered", "call.answered", "call.abandoned", "call.ended", "call.transferred")
            if phone
            else ("ticket.issued", "ticket.called", "ticket.cancelled", "ticket.completed", "ticket.no_show")
        )
        base = {"contact_id": cid, "queue": queue}
        arrival = {**base, "event_id": f"{cid}-a", "type": kinds[0], "occurred_at": arrive}
        events.append(arrival)
        if n >= 6 and rng.random() < 0.15:
            leave: dict[str, Any] = {
                **base,
                "event_id": f"{cid}-l",
                "type": kinds[2],
                "occurred_at": arrive + wait,
            }
            if rng.random() < 0.3:
                leave["wait_seconds"] = round(wait, 1)
            events.append(leave)
            continue
        begin: dict[str, Any] = {
            **base,
            "event_id": f"{cid}-s",
            "type": kinds[1],
            "occurred_at": arrive + wait,
        }
        if not phone:
            begin["desk"] = f"desk{rng.randrange(1, 6)}"
        if rng.random() < 0.2:
            begin["wait_seconds"] = round(wait, 1)
        events.append(begin)
        done = arrive + wait + rng.uniform(60, 900)
        other = rng.random() < 0.1
        finish: dict[str, Any] = {**base, "event_id": f"{cid}-f", "type": kinds[4] if other else kinds[3]}
        finish["occurred_at"] = done
        if not other:
            finish["resolved"] = rng.random() < 0.8
        elif phone:
            finish["to_queue"] = "pas"
        events.append(finish)
    return sorted(events, key=lambda e: e["occurred_at"])


def minute_batches(events: list[dict[str, Any]]) -> Iterator[tuple[float, list[dict[str, Any]]]]:
    """Events grouped by the minute they happen, each group delivered just after it ends, some reversed."""
    batches: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        batches.setdefault(int(event["occurred_at"] // 60), []).append(event)
    for minute, batch in sorted(batches.items()):
        if minute % 5 == 0:
            batch = batch[::-1]  # out of order within the batch: starts before their arrivals
        yield (minute + 1) * 60 + 0.5, [{**e, "occurred_at": _iso(e["occurred_at"])} for e in batch]


async def _rollup_rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT * FROM interval_rollup ORDER BY channel, queue, interval_start")
        )
        return [tuple(row) for row in result]


def _new_window(settings: Settings) -> Window:
    return Window(window_config(settings), target_book(settings))


async def test_live_today_equals_the_days_report_row(settings: Settings, clean_db: AsyncEngine) -> None:
    day_start, day_end = day_bounds(DST_DAY, TZ)
    assert day_end - day_start == 25 * 3600
    clock = Clock(day_start - 900)
    async with running_app(settings, clock) as api:
        for delivered_at, batch in minute_batches(day_events(DST_DAY)):
            clock.now = delivered_at
            response = await api.post(batch)
            assert response.status_code == 200, response.text
        clock.now = day_end - 1
        live = await api.kpis("today")
        rollup = api.services.rollup
        assert rollup is not None
        await rollup.flush()
        response = await api.client.get(
            "/v1/reports", params={"granularity": "day", "from": str(DST_DAY), "to": str(DST_DAY)}
        )
        assert response.status_code == 200, response.text
        rows = response.json()["rows"]
    live_channels: dict[str, Any] = live["channels"]  # type: ignore[assignment]
    compared = [name for name in REPORT_FIELDS if name != "arrivals_per_hour"]
    checked = 0
    for row in rows:
        assert row["period"] == str(DST_DAY)
        channel = live_channels[row["channel"]]
        figures = channel["total"] if row["queue"] is None else channel["queues"][row["queue"]]
        assert figures["waiting_now"] == 0
        assert {name: row[name] for name in compared} == {name: figures[name] for name in compared}
        # The report divides by the day's real length: 25 hours on this day.
        assert row["arrivals_per_hour"] == round(row["arrived"] / 25, 2)
        checked += 1
    assert checked == 2 + 4  # two channel totals and four queues
    assert all(row["started"] > 0 and row["service_level_pct"] is not None for row in rows)

    # The rows the service wrote as it went are the ones a rebuild from the stored events writes.
    written = await _rollup_rows(clean_db)
    assert written
    await rebuild_day(clean_db, lambda: _new_window(settings), DST_DAY)
    assert await _rollup_rows(clean_db) == written


def _tally(**counts: Any) -> Tally:
    return Tally(**counts)


async def _seed_rollup(engine: AsyncEngine) -> None:
    """Known rows: spring-forward day, the day after, and two queues in two months."""
    spring_start, _ = day_bounds(SPRING_DAY, TZ)
    items = [
        (
            Channel.PHONE,
            "borgerservice",
            int(spring_start),
            _tally(
                arrived=10,
                started=9,
                started_within=8,
                left=1,
                left_after_short=1,
                wait_sum=90.0,
                finished=9,
                served=9,
                resolved_first_contact=6,
                handled=9,
                handle_sum=900.0,
            ),
        ),
        (
            Channel.PHONE,
            "pas",
            int(spring_start) + 3 * 3600,
            _tally(arrived=13, started=10, started_within=4, left=3, left_after_short=2, wait_sum=400.0),
        ),
        (
            Channel.PHONE,
            "pas",
            int(day_bounds(date(2026, 4, 1), TZ)[0]),
            _tally(arrived=5, started=5, started_within=5, wait_sum=5.0),
        ),
        (
            Channel.VISIT,
            "pas",
            int(spring_start) + 5 * 3600,
            _tally(arrived=4, started=4, started_within=3, wait_sum=800.0),
        ),
    ]
    await upsert_rollup(engine, items)


async def test_monthly_report_sums_the_rollup_with_the_live_formulas(api: RunningApp) -> None:
    await _seed_rollup(api.services.engine)
    response = await api.client.get(
        "/v1/reports", params={"granularity": "month", "from": "2026-01-01", "to": "2026-12-31"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["queues"] == {"phone": ["borgerservice", "pas"], "visit": ["pas"]}
    rows = {(r["period"], r["channel"], r["queue"]): r for r in body["rows"]}
    assert list(rows) == [
        ("2026-03", "phone", None),
        ("2026-03", "phone", "borgerservice"),
        ("2026-03", "phone", "pas"),
        ("2026-03", "visit", None),
        ("2026-03", "visit", "pas"),
        ("2026-04", "phone", None),
        ("2026-04", "phone", "pas"),
    ]
    march = rows[("2026-03", "phone", None)]
    expected = service_level(_tally(started=19, started_within=12, left_after_short=3), 0, "offered")
    assert expected is not None
    assert march["service_level_pct"] == round(expected, 2)
    assert (march["arrived"], march["started"], march["started_within_target"], march["left"]) == (
        23,
        19,
        12,
        4,
    )
    assert march["goal_pct"] == 90.0
    assert march["goal_met"] is False
    assert march["status"] == "breach"
    assert march["avg_wait_seconds"] == round(490 / 19, 2)
    assert march["abandon_rate_pct"] == round(100 * 4 / 23, 2)
    assert march["first_contact_resolution_pct"] == round(100 * 6 / 9, 2)
    assert march["start"] == "2026-03-01T00:00:00+01:00"
    assert march["end"] == "2026-04-01T00:00:00+02:00"
    assert rows[("2026-04", "phone", "pas")]["goal_met"] is True
    visit = rows[("2026-03", "visit", "pas")]
    assert visit["target"]["threshold_seconds"] == 300.0
    assert visit["goal_pct"] == 70.0


async def test_days_weeks_and_years_follow_local_time(api: RunningApp) -> None:
    await _seed_rollup(api.services.engine)

    async def report(granularity: str, **params: str) -> list[dict[str, Any]]:
        query = {"granularity": granularity, "from": "2026-03-01", "to": "2026-04-30", "channel": "phone"}
        response = await api.client.get("/v1/reports", params=query | params)
        assert response.status_code == 200, response.text
        return [r for r in response.json()["rows"] if r["queue"] is None]

    days = await report("day")
    assert [(r["period"], r["arrived"]) for r in days] == [("2026-03-29", 23), ("2026-04-01", 5)]
    # The spring day has 23 hours.
    assert days[0]["arrivals_per_hour"] == round(23 / 23, 2)
    assert days[0]["end"] == "2026-03-30T00:00:00+02:00"
    weeks = await report("week")
    assert [(r["period"], r["start"][:10]) for r in weeks] == [
        ("2026-W13", "2026-03-23"),
        ("2026-W14", "2026-03-30"),
    ]
    years = await report("year")
    assert [(r["period"], r["arrived"]) for r in years] == [("2026", 28)]
    intervals = await report("interval", **{"from": "2026-03-29", "to": "2026-03-29"})
    assert [r["period"] for r in intervals] == ["2026-03-29 00:00 +0100", "2026-03-29 04:00 +0200"]


async def test_autumn_days_repeated_hour_keeps_its_two_quarter_hours(api: RunningApp) -> None:
    start, end = day_bounds(DST_DAY, TZ)
    await upsert_rollup(
        api.services.engine,
        [(Channel.PHONE, "q", s, _tally(arrived=1)) for s in range(int(start), int(end), 900)],
    )
    response = await api.client.get(
        "/v1/reports",
        params={"granularity": "interval", "from": str(DST_DAY), "to": str(DST_DAY), "queue": "q"},
    )
    totals = [r for r in response.json()["rows"] if r["queue"] is None]
    assert len(totals) == 100
    labels = [r["period"] for r in totals]
    assert "2026-10-25 02:15 +0200" in labels
    assert "2026-10-25 02:15 +0100" in labels
    day = await api.client.get(
        "/v1/reports", params={"granularity": "day", "from": str(DST_DAY), "to": str(DST_DAY)}
    )
    assert [r["arrived"] for r in day.json()["rows"] if r["queue"] is None] == [100]


async def test_csv_and_queue_filter(api: RunningApp) -> None:
    await _seed_rollup(api.services.engine)
    response = await api.client.get(
        "/v1/reports",
        params={
            "granularity": "month",
            "from": "2026-03-01",
            "to": "2026-03-31",
            "queue": "pas",
            "format": "csv",
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    records = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["channel"], r["queue"]) for r in records] == [
        ("phone", ""),
        ("phone", "pas"),
        ("visit", ""),
        ("visit", "pas"),
    ]
    # The channel total still counts every queue, as live; the filter picks the queue rows shown.
    assert records[0]["arrived"] == "23"
    assert records[1]["arrived"] == "13"
    assert records[1]["goal_met"] == "False"
    assert records[1]["threshold_seconds"] == "60.0"


async def test_report_refuses_bad_ranges(api: RunningApp) -> None:
    bad = [
        {"from": "2026-05-01", "to": "2026-04-01"},
        {"granularity": "interval", "from": "2026-01-01", "to": "2026-03-01"},
        {"granularity": "fortnight"},
        {"queue": "Not A Queue"},
        {"from": "yesterday"},
        {"from": "0001-01-01", "to": "2026-01-01"},
        {"from": "2026-01-01", "to": "9999-12-31"},
    ]
    for params in bad:
        response = await api.client.get("/v1/reports", params=params)
        assert response.status_code == 422, (params, response.text)


async def test_report_needs_the_read_token_when_one_is_set(settings: Settings, clean_db: AsyncEngine) -> None:
    guarded = settings.model_copy(update={"read_token": "test-read-token"})
    async with running_app(guarded) as api:
        assert (await api.client.get("/v1/reports")).status_code == 401
        ok = await api.client.get("/v1/reports", headers={"Authorization": "Bearer test-read-token"})
        assert ok.status_code == 200
        # The page itself is a plain file; it sends the token from its own URL.
        assert (await api.client.get("/reports")).status_code == 200


async def test_service_writes_rollup_heals_it_at_start_and_rebuilds_late_days(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    now = datetime(2026, 11, 23, 10, 0, tzinfo=TZ).timestamp()
    clock = Clock(now)
    call = {"contact_id": "c1", "queue": "borgerservice"}
    async with running_app(settings, clock) as api:
        await api.post({**call, "event_id": "a", "type": "call.offered", "occurred_at": _iso(now - 100)})
        await api.post({**call, "event_id": "s", "type": "call.answered", "occurred_at": _iso(now - 50)})
    # Shutting down writes what is dirty.
    rows = await _rollup_rows(clean_db)
    assert [(r[0], r[1], r[3], r[4], r[5]) for r in rows] == [("phone", "borgerservice", 1, 1, 1)]

    async with clean_db.begin() as conn:
        await conn.execute(text("DELETE FROM interval_rollup"))
    late_day = date(2026, 11, 19)
    late_at = datetime(2026, 11, 19, 11, 0, tzinfo=TZ).timestamp()
    clock.now = now + 60
    async with running_app(settings, clock) as api:
        # A restart rewrites today from the replayed window: a crash between commit and rollup heals.
        rollup = api.services.rollup
        assert rollup is not None
        await rollup.flush()
        assert [(r[0], r[3]) for r in await _rollup_rows(clean_db)] == [("phone", 1)]
        # An event for a day the window no longer holds: that day is rebuilt from the stored events.
        late = {"contact_id": "old", "queue": "pas", "occurred_at": _iso(late_at)}
        await api.post({**late, "event_id": "old-a", "type": "ticket.issued"})
        await rollup.flush()
        assert rollup.stats.days_rebuilt >= 1
    report_rows = [r for r in await _rollup_rows(clean_db) if r[0] == "visit"]
    assert len(report_rows) == 1
    assert report_rows[0][2].astimezone(TZ).date() == late_day


async def test_rebuild_rollups_command(
    settings: Settings,
    clean_db: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = Clock(day_bounds(DST_DAY, TZ)[0] - 900)
    async with running_app(settings, clock) as api:
        for delivered_at, batch in minute_batches(day_events(DST_DAY, seed=3)):
            clock.now = delivered_at
            assert (await api.post(batch)).status_code == 200
        clock.now = day_bounds(DST_DAY, TZ)[1] + 60
    written = await _rollup_rows(clean_db)
    async with clean_db.begin() as conn:
        await conn.execute(text("UPDATE interval_rollup SET arrived = arrived + 7"))
    monkeypatch.setenv("QUEUEPULSE_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("QUEUEPULSE_DATA_DIR", str(settings.data_dir))
    before = (DST_DAY - timedelta(days=1)).isoformat()
    code = await _run_cli(["rebuild-rollups", "--from", before, "--to", DST_DAY.isoformat()])
    assert code == 0
    assert "rebuilt 2 days" in capsys.readouterr().out
    assert await _rollup_rows(clean_db) == written


async def _run_cli(argv: list[str]) -> int:
    import asyncio

    # The command runs its own event loop, so it goes to a thread of its own.
    return await asyncio.to_thread(cli_main, argv)


def test_window_marks_changed_intervals_until_taken() -> None:
    settings = Settings(_env_file=None)
    window = Window(window_config(settings), TargetBook(target_book(settings).defaults, {}))
    at = datetime(2026, 11, 23, 9, 7, tzinfo=TZ).timestamp()
    window.apply(Event("e1", "call.offered", "c1", "q", at), at)
    window.apply(Event("e2", "call.answered", "c1", "q", at + 900), at + 900)
    start = int(at // 900) * 900
    assert window.take_dirty() == {(Channel.PHONE, "q", start), (Channel.PHONE, "q", start + 900)}
    assert window.take_dirty() == set()
    tally = window.interval_tally(Channel.PHONE, "q", start + 900)
    assert tally is not None
    assert (tally.started, tally.started_within) == (1, 0)


async def test_rebuild_keeps_days_whose_events_were_pruned(settings: Settings, clean_db: AsyncEngine) -> None:
    old_start, _ = day_bounds(SPRING_DAY, TZ)
    kept = [(Channel.PHONE, "pas", int(old_start) + 36000, _tally(arrived=9, started=9, started_within=9))]
    await upsert_rollup(clean_db, kept)
    # No events stored for that day any more: the rollup is the only record, and a rebuild keeps it.
    assert await rebuild_day(clean_db, lambda: _new_window(settings), SPRING_DAY) == 0
    assert len(await _rollup_rows(clean_db)) == 1
    # A day with its events stored is rewritten from them: rows the events do not back go.
    later = date(2026, 4, 2)
    stray = [(Channel.PHONE, "pas", int(day_bounds(later, TZ)[0]) + 43200, _tally(arrived=1))]
    await upsert_rollup(clean_db, stray)
    at = day_bounds(later, TZ)[0] + 40000
    async with clean_db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO events (event_id, type, channel, contact_id, queue, occurred_at, received_at) "
                "VALUES ('x', 'call.offered', 'phone', 'x', 'skat', :at, :at)"
            ),
            {"at": datetime.fromtimestamp(at, UTC)},
        )
    assert await rebuild_day(clean_db, lambda: _new_window(settings), later) == 1
    rows = await _rollup_rows(clean_db)
    assert [(r[1], r[3]) for r in rows] == [("pas", 9), ("skat", 1)]
