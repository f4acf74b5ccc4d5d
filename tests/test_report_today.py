"""A report row of a period still running is the live view of it, and says it is not closed (issue 12, 9c).

Through the API against the real database: events are posted, the rollup writer flushes, and the live
`today` KPIs are compared with today's report row field by field, with callers waiting past the target.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.running import RunningApp, running_app

TZ = ZoneInfo("Europe/Copenhagen")
TODAY = date(2026, 11, 23)
YESTERDAY = TODAY - timedelta(days=1)
# Every figure a report row shares with the live KPI object.
COMPARED = (
    "arrived",
    "started",
    "started_within_target",
    "left",
    "left_after_short_abandon",
    "finished",
    "waiting_past_target",
    "service_level_pct",
    "target",
    "status",
    "avg_wait_seconds",
    "abandon_rate_pct",
    "avg_handle_seconds",
    "first_contact_resolution_pct",
    "first_contact_resolution_goal_pct",
    "first_contact_resolution_status",
    "transferred",
    "arrivals_per_hour",
)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _at(day: date, hour: int, minute: int = 0, second: int = 0) -> float:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=TZ).timestamp()


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _event(cid: str, step: str, type_: str, at: float, queue: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"{cid}-{step}",
        "type": type_,
        "contact_id": cid,
        "queue": queue,
        "occurred_at": _iso(at),
        **fields,
    }


def _served_call(cid: str, offered: float, wait: float, queue: str = "borgerservice") -> list[dict[str, Any]]:
    return [
        _event(cid, "a", "call.offered", offered, queue),
        _event(cid, "s", "call.answered", offered + wait, queue),
        _event(cid, "f", "call.ended", offered + wait + 240, queue, resolved=True),
    ]


def _busy_morning(now: float) -> list[dict[str, Any]]:
    """17 calls answered within 60 s, 1 after 200 s, a long abandon, and callers still waiting: three
    past the target (5 min, 2 min, 70 s) and one not yet (20 s). Visits: two served, one waiting 8 min."""
    events: list[dict[str, Any]] = []
    for n in range(17):
        events += _served_call(f"in{n}", now - 3000 + 60 * n, 15)
    events += _served_call("slow", now - 2000, 200)
    events += [
        _event("gone", "a", "call.offered", now - 1500, "borgerservice"),
        _event("gone", "l", "call.abandoned", now - 1400, "borgerservice"),
    ]
    for n, waited in enumerate((300, 120, 70, 20)):
        events.append(_event(f"wait{n}", "a", "call.offered", now - waited, "borgerservice"))
    for n, wait in enumerate((100, 250)):
        events += [
            _event(f"t{n}", "a", "ticket.issued", now - 2400, "pas", ticket_number=f"A{n:03d}"),
            _event(f"t{n}", "s", "ticket.called", now - 2400 + wait, "pas", desk="2"),
        ]
    events.append(_event("tw", "a", "ticket.issued", now - 480, "pas", ticket_number="A100"))
    return events


def _figures(live: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    channel = live["channels"][row["channel"]]
    result: dict[str, Any] = channel["total"] if row["queue"] is None else channel["queues"][row["queue"]]
    return result


def _shared(figures: dict[str, Any]) -> dict[str, Any]:
    return {name: figures[name] for name in COMPARED}


async def _report(api: RunningApp, **params: str) -> list[dict[str, Any]]:
    response = await api.client.get("/v1/reports", params=params)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["rows"]
    return rows


async def _flush(api: RunningApp) -> None:
    rollup = api.services.rollup
    assert rollup is not None
    await rollup.flush()


async def test_todays_row_equals_live_today_with_callers_waiting_past_target(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    now = _at(TODAY, 10, 0, 30)
    clock = Clock(now - 3600)
    async with running_app(settings, clock) as api:
        clock.now = now
        assert (await api.post(_busy_morning(now))).status_code == 200
        await _flush(api)
        live = await api.kpis("today")
        rows = await _report(api, granularity="day", **{"from": str(TODAY), "to": str(TODAY)})

    phone = live["channels"]["phone"]["queues"]["borgerservice"]  # type: ignore[index]
    # The wallboard's figure: 17 within / (18 started + 1 long abandon + 3 waiting past the target).
    assert (phone["waiting_past_target"], phone["service_level_pct"], phone["status"]) == (3, 77.27, "breach")
    assert [(r["channel"], r["queue"]) for r in rows] == [
        ("phone", None),
        ("phone", "borgerservice"),
        ("visit", None),
        ("visit", "pas"),
    ]
    # Not 17 / 19 = 89.47 % "warning", as if nobody were waiting.
    assert (rows[1]["service_level_pct"], rows[1]["status"]) == (77.27, "breach")
    for row in rows:
        assert row["period"] == str(TODAY)
        assert row["closed"] is False
        assert _shared(row) == _shared(_figures(live, row))
        assert row["goal_met"] is (row["service_level_pct"] >= row["goal_pct"])
    visit = rows[3]
    assert (visit["waiting_past_target"], visit["service_level_pct"]) == (1, 66.67)
    # Arrivals per hour over the 10 h 0 min 30 s elapsed since midnight, as live; not over 24 hours.
    assert rows[1]["arrived"] == 23
    assert rows[1]["arrivals_per_hour"] == round(23 / ((now - _at(TODAY, 0)) / 3600), 2)


async def test_running_week_month_year_and_quarter_hour_are_live_and_closed_days_are_not(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    now = _at(TODAY, 10, 7, 0)
    clock = Clock(now)
    async with running_app(settings, clock) as api:
        # Yesterday afternoon, sent late: a closed day, counted where it belongs.
        assert (await api.post(_served_call("y1", _at(YESTERDAY, 15), 30))).status_code == 200
        assert (await api.post(_busy_morning(now))).status_code == 200
        await _flush(api)
        live = await api.kpis("today")
        days = await _report(api, granularity="day", **{"from": str(YESTERDAY), "to": str(TODAY)})
        month = await _report(api, granularity="month", **{"from": "2026-11-01", "to": "2026-11-30"})
        week = await _report(api, granularity="week", **{"from": str(YESTERDAY), "to": str(TODAY)})
        year = await _report(api, granularity="year", **{"from": "2026-01-01", "to": "2026-12-31"})
        quarter = await _report(api, granularity="interval", **{"from": str(TODAY), "to": str(TODAY)})
        as_csv = await api.client.get(
            "/v1/reports",
            params={"granularity": "day", "from": str(YESTERDAY), "to": str(TODAY), "format": "csv"},
        )

    closed = [r for r in days if r["period"] == str(YESTERDAY)]
    assert closed
    assert all(r["closed"] is True and r["waiting_past_target"] == 0 for r in closed)
    yesterday_total = closed[0]
    assert (yesterday_total["arrived"], yesterday_total["arrivals_per_hour"]) == (1, round(1 / 24, 2))
    assert all(r["closed"] is False for r in days if r["period"] == str(TODAY))

    phone_live = live["channels"]["phone"]["total"]  # type: ignore[index]
    for rows, start in (
        (month, _at(date(2026, 11, 1), 0)),
        (week, _at(TODAY - timedelta(days=TODAY.weekday()), 0)),
        (year, _at(date(2026, 1, 1), 0)),
    ):
        running = [r for r in rows if r["start"] == datetime.fromtimestamp(start, TZ).isoformat()]
        phone_total = running[0]
        assert (phone_total["channel"], phone_total["queue"], phone_total["closed"]) == ("phone", None, False)
        assert all(r["closed"] is (r not in running) for r in rows)
        # Who waits past the target now is a miss in the running period, as on the wallboard.
        assert phone_total["waiting_past_target"] == phone_live["waiting_past_target"] == 3
        started, within = phone_total["started"], phone_total["started_within_target"]
        denominator = started + phone_total["left_after_short_abandon"] + 3
        assert phone_total["service_level_pct"] == round(100 * within / denominator, 2)
        assert phone_total["arrivals_per_hour"] == round(phone_total["arrived"] / ((now - start) / 3600), 2)

    # Quarter-hours: the one holding now is running, with the callers waiting now; the rest are closed.
    current = [r for r in quarter if r["period"] == "2026-11-23 10:00 +0100"]
    assert current
    assert all(r["closed"] is False for r in current)
    assert [r["waiting_past_target"] for r in current if r["queue"] is None] == [3, 1]
    assert current[0]["arrivals_per_hour"] == round(current[0]["arrived"] / (7 / 60), 2)
    earlier = [r for r in quarter if r["period"] != "2026-11-23 10:00 +0100"]
    assert earlier
    assert all(r["closed"] is True and r["waiting_past_target"] == 0 for r in earlier)

    records = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {(r["period"], r["closed"]) for r in records} == {(str(YESTERDAY), "True"), (str(TODAY), "False")}
    assert [r["waiting_past_target"] for r in records if r["period"] == str(TODAY) and r["queue"] == ""] == [
        "3",
        "1",
    ]


async def test_caller_waiting_since_before_midnight_shows_in_todays_row(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """A queue whose only contact today is someone still waiting from yesterday has a row today, as live."""
    now = _at(TODAY, 0, 40)
    clock = Clock(_at(YESTERDAY, 23, 50))
    async with running_app(settings, clock) as api:
        night = _event("night", "a", "call.offered", _at(YESTERDAY, 23, 50), "nat")
        assert (await api.post(night)).status_code == 200
        clock.now = now
        await _flush(api)
        live = await api.kpis("today")
        rows = await _report(api, granularity="day", **{"from": str(YESTERDAY), "to": str(TODAY)})

    today = [r for r in rows if r["period"] == str(TODAY)]
    assert [(r["channel"], r["queue"]) for r in today] == [("phone", None), ("phone", "nat")]
    for row in today:
        assert row["closed"] is False
        assert _shared(row) == _shared(_figures(live, row))
        assert (row["arrived"], row["waiting_past_target"], row["service_level_pct"]) == (0, 1, 0.0)
        assert row["status"] == "breach"
    yesterday = [r for r in rows if r["period"] == str(YESTERDAY)]
    assert [(r["queue"], r["arrived"], r["closed"]) for r in yesterday] == [(None, 1, True), ("nat", 1, True)]
