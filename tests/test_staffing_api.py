"""GET /v1/staffing and /v1/staffing/plan through the real app and database.

The live advice from a simulated stretch of calls posted via /v1/events; the plan against a recomputation
from rollup rows the test writes itself (8+ weeks of history).
"""

from __future__ import annotations

import csv
import io
import math
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.clock import day_intervals, interval_start
from app.core.erlang import required_agents
from app.core.staffing import MIN_ARRIVALS, patience_from, rate_interval
from app.settings import QueueTarget, Settings
from tests.core.test_staffing import LOADS, needed_by_simulation, simulate
from tests.running import RunningApp, running_app

REFERENCE = LOADS[0]
HOURS = 2.0


def event(type_: str, contact: str, queue: str, at: float, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"{type_}-{contact}",
        "type": type_,
        "contact_id": contact,
        "queue": queue,
        "occurred_at": datetime.fromtimestamp(at, UTC).isoformat(),
        **fields,
    }


def simulated_events(queue: str, start: float, now: float, agents: int, seed: int) -> list[dict[str, Any]]:
    """The reference load's calls from `start`, as the telephony system would post them up to `now`."""
    events = []
    for number, contact in enumerate(
        simulate(REFERENCE.rate, REFERENCE.handle, REFERENCE.patience, agents, HOURS, seed)
    ):
        name = f"{queue}-{number}"
        events.append(event("call.offered", name, queue, start + contact.arrived))
        if contact.left is not None and start + contact.left <= now:
            events.append(event("call.abandoned", name, queue, start + contact.left))
        if contact.started is not None and start + contact.started <= now:
            events.append(event("call.answered", name, queue, start + contact.started, agent="a1"))
            if contact.finished is not None and start + contact.finished <= now:
                events.append(event("call.ended", name, queue, start + contact.finished, resolved=True))
    return [item for item in events if datetime.fromisoformat(item["occurred_at"]).timestamp() <= now]


@pytest.fixture
async def frozen(settings: Settings, clean_db: AsyncEngine) -> AsyncIterator[tuple[RunningApp, float]]:
    now = float(math.floor(time.time()) - 60)
    targets = {
        "phone/reference": QueueTarget(threshold_seconds=20, goal_pct=80),
        "phone/quiet": QueueTarget(threshold_seconds=20, goal_pct=80),
    }
    async with running_app(settings.model_copy(update={"queue_targets": targets}), clock=lambda: now) as app:
        yield app, now


async def post_all(api: RunningApp, events: list[dict[str, Any]]) -> None:
    for first in range(0, len(events), 500):
        response = await api.post(events[first : first + 500])
        assert response.status_code == 200, response.text


async def test_the_advice_range_holds_what_the_simulated_queue_needed(
    frozen: tuple[RunningApp, float],
) -> None:
    api, now = frozen
    needed = needed_by_simulation(REFERENCE, seed=11)
    start = now - HOURS * 3600
    await post_all(api, simulated_events("reference", start, now, needed, seed=23))
    # Five calls, all answered and finished: too few arrivals for a rate.
    quiet = []
    for number in range(5):
        at = now - 600 + number * 60
        quiet += [
            event("call.offered", f"q{number}", "quiet", at),
            event("call.answered", f"q{number}", "quiet", at + 5, agent="a2"),
            event("call.ended", f"q{number}", "quiet", at + 100, resolved=True),
        ]
    # Three calls waiting now, two of them past the 20 s threshold: the backlog.
    quiet += [
        event("call.offered", f"w{number}", "quiet", now - wait) for number, wait in enumerate((5, 30, 90))
    ]
    await post_all(api, quiet)

    response = await api.client.get("/v1/staffing")
    assert response.status_code == 200, response.text
    body = response.json()
    assert datetime.fromisoformat(body["as_of"]).timestamp() == now
    assert set(body["queues"]) == {"phone", "visit"}
    advice = body["queues"]["phone"]["reference"]
    assert set(advice) == {"needed", "reason", "inputs", "backlog", "staffed"}
    assert advice["reason"] is None
    # No agent events were sent: staffed is unknown, not 0.
    assert advice["staffed"] is None
    low, point, high = advice["needed"]["low"], advice["needed"]["point"], advice["needed"]["high"]
    assert low <= point <= high
    assert low <= needed <= high
    inputs = advice["inputs"]
    assert inputs["rate_window"] == "15m"
    assert inputs["target"] == {"threshold_seconds": 20.0, "goal_pct": 80.0, "formula": "offered"}
    assert inputs["max_occupancy_pct"] == 85.0
    assert inputs["arrivals"] >= 20
    assert inputs["handle_seconds"] > 0

    quiet_advice = body["queues"]["phone"]["quiet"]
    assert quiet_advice["needed"] is None
    assert quiet_advice["reason"] == "8 arrivals in the last hour; advice needs at least 20"
    assert quiet_advice["backlog"] == 2


DAY_HOURS = 8


def day_events(queue: str, start: float, agents: int, seed: int) -> list[tuple[float, dict[str, Any]]]:
    """A whole simulated day of the reference load, every step with the time it happens, in time order."""
    timed: list[tuple[float, dict[str, Any]]] = []
    contacts = simulate(REFERENCE.rate, REFERENCE.handle, REFERENCE.patience, agents, DAY_HOURS, seed)
    for number, contact in enumerate(contacts):
        name = f"{queue}-day-{number}"
        timed.append((start + contact.arrived, event("call.offered", name, queue, start + contact.arrived)))
        if contact.left is not None:
            timed.append((start + contact.left, event("call.abandoned", name, queue, start + contact.left)))
        if contact.started is not None:
            at = start + contact.started
            timed.append((at, event("call.answered", name, queue, at, agent="a1")))
        if contact.finished is not None:
            at = start + contact.finished
            timed.append((at, event("call.ended", name, queue, at, resolved=True)))
    return sorted(timed, key=lambda item: item[0])


async def test_a_simulated_day_posted_hour_by_hour_gets_advice_holding_the_simulated_need(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """The M/M/c+M day, staffed with the agents the long simulation needed to meet the target, posted as
    it happens; asked for advice at the end of every hour after the first (which has no handle time
    over a full hour yet), the range holds that number in at least 85 % of the hours, as the core test
    measures over 48 hours (96 % for this load)."""
    needed = needed_by_simulation(REFERENCE, seed=11)
    yesterday = datetime.now(TZ).date() - timedelta(days=1)
    start = datetime.combine(yesterday, clock_time(8, 0), TZ).timestamp()
    clock = [start]
    targets = {"phone/reference": QueueTarget(threshold_seconds=20, goal_pct=80)}
    timed = day_events("reference", start, needed, seed=29)
    covered = []
    async with running_app(
        settings.model_copy(update={"queue_targets": targets}), clock=lambda: clock[0]
    ) as api:
        for hour in range(1, DAY_HOURS + 1):
            clock[0] = start + hour * 3600
            await post_all(api, [item for at, item in timed if clock[0] - 3600 < at <= clock[0]])
            if hour == 1:
                continue
            advice = (await api.client.get("/v1/staffing")).json()["queues"]["phone"]["reference"]
            assert advice["reason"] is None
            assert advice["inputs"]["rate_window"] == "15m"
            low, high = advice["needed"]["low"], advice["needed"]["high"]
            covered.append(low <= needed <= high)
    assert sum(covered) >= 0.85 * len(covered), (needed, covered)


async def test_staffing_needs_the_read_token_when_one_is_set(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    async with running_app(settings.model_copy(update={"read_token": "reader"})) as api:
        assert (await api.client.get("/v1/staffing")).status_code == 401
        ok = await api.client.get("/v1/staffing", headers={"Authorization": "Bearer reader"})
        assert ok.status_code == 200
        assert ok.json()["queues"] == {"phone": {}, "visit": {}}


# ---- the plan ----

TZ = ZoneInfo("Europe/Copenhagen")
QUEUE = "pattern"
THRESHOLD, GOAL = 60.0, 90.0

INSERT = text(
    """
INSERT INTO interval_rollup (channel, queue, interval_start, arrived, started, wait_sum, "left",
                             left_after_short, finished, served, handled, handle_sum)
VALUES (:channel, :queue, :interval_start, :arrived, :started, :wait_sum, :left, :left_after_short,
        :handled, :handled, :handled, :handle_sum)
"""
)


def local_noon(day: date) -> float:
    return datetime.combine(day, clock_time(12, 7), TZ).timestamp()


def generated_day(day: date, rng: random.Random, scale: float = 1.0) -> list[dict[str, Any]]:
    """A day's rows for the queue: traffic in every quarter-hour, busier by day, with abandons."""
    rows = []
    for start in day_intervals(day, TZ):
        hour = datetime.fromtimestamp(start, TZ).hour
        mean = (14 if 8 <= hour < 16 else 3) * scale
        arrived = max(0, round(rng.gauss(mean, mean**0.5)))
        left = rng.randint(0, max(0, arrived // 6))
        short = rng.randint(0, left)
        handled = max(0, arrived - left - rng.randint(0, 2))
        rows.append(
            {
                "channel": "phone",
                "queue": QUEUE,
                "interval_start": datetime.fromtimestamp(start, UTC),
                "arrived": arrived,
                "started": arrived - left,
                "wait_sum": (arrived - left) * rng.uniform(5, 40),
                "left": left,
                "left_after_short": left - short,
                "handled": handled,
                "handle_sum": handled * rng.uniform(120, 260),
            }
        )
    return rows


def counted(row: dict[str, Any]) -> int:
    return max(0, int(row["arrived"]) - (int(row["left"]) - int(row["left_after_short"])))


def label(at: datetime) -> str:
    return at.astimezone(TZ).strftime("%H:%M")


def recompute(
    baseline_rows: list[dict[str, Any]], days: int, planned: date, factor: float | None, adjust_from: float
) -> list[dict[str, Any]]:
    """The plan from the rows themselves: per clock time, sums over the baseline days, then Erlang."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for row in baseline_rows:
        by_label.setdefault(label(row["interval_start"]), []).append(row)
    handled = sum(row["handled"] for row in baseline_rows)
    pooled = sum(row["handle_sum"] for row in baseline_rows) / handled
    patience = patience_from(
        sum(row["started"] for row in baseline_rows),
        sum(row["wait_sum"] for row in baseline_rows),
        sum(row["left_after_short"] for row in baseline_rows),
    )
    expected = []
    for start in day_intervals(planned, TZ):
        rows = by_label.get(label(datetime.fromtimestamp(start, UTC)), [])
        arrivals = sum(counted(row) for row in rows)
        slot_handled = sum(row["handled"] for row in rows)
        handle = sum(row["handle_sum"] for row in rows) / slot_handled if slot_handled else pooled
        scale = factor if factor is not None and start >= adjust_from else 1.0
        needed = [
            required_agents(rate * scale, handle, THRESHOLD, GOAL, "offered", patience, 85.0).agents
            for rate in rate_interval(arrivals, days * 900.0)
        ]
        expected.append(
            {
                "start": datetime.fromtimestamp(start, TZ).isoformat(),
                "arrivals": round(arrivals / days * scale, 2),
                "handle_seconds": round(handle, 1),
                "needed": {"low": needed[0], "point": needed[1], "high": needed[2]},
                "reason": None,
                # No staff events in this history: staffed unknown, not zero.
                "staffed_usual": None,
                "staffed": None,
            }
        )
    return expected


@pytest.fixture
async def history(
    settings: Settings, clean_db: AsyncEngine
) -> AsyncIterator[tuple[RunningApp, AsyncEngine, date, dict[int, list[dict[str, Any]]]]]:
    today = datetime.now(TZ).date()
    now = local_noon(today)
    targets = {f"phone/{QUEUE}": QueueTarget(threshold_seconds=THRESHOLD, goal_pct=GOAL)}
    async with running_app(settings.model_copy(update={"queue_targets": targets}), clock=lambda: now) as api:
        rollup = api.services.rollup
        assert rollup is not None
        # The start-up heal (today rewritten from the window, missed days rebuilt from events) runs first,
        # so it cannot take the rows written below for days that have no stored events.
        await rollup.flush()
        rng = random.Random(7)
        weeks: dict[int, list[dict[str, Any]]] = {}
        rows: list[dict[str, Any]] = []
        for week in range(1, 11):
            if week == 3:
                continue  # a holiday: no traffic that day, so it is not averaged in as zeros
            weeks[week] = generated_day(today - timedelta(weeks=week), rng)
            rows += weeks[week]
        # The day before each baseline day, ten times as busy: another weekday, never in the pattern.
        rows += generated_day(today - timedelta(days=8), rng, scale=10)
        async with clean_db.begin() as conn:
            await conn.execute(INSERT, rows)
        yield api, clean_db, today, weeks


async def test_the_plan_for_a_day_ahead_matches_a_recomputation_from_the_rollup(
    history: tuple[RunningApp, AsyncEngine, date, dict[int, list[dict[str, Any]]]],
) -> None:
    api, _, today, weeks = history
    planned = today + timedelta(weeks=1)
    response = await api.client.get("/v1/staffing/plan", params={"date": planned.isoformat()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["weeks"] == 8
    assert body["baseline_dates"] == [(today - timedelta(weeks=week)).isoformat() for week in range(1, 9)]
    plan = body["queues"]["phone"][QUEUE]
    # Weeks 1 to 8 but the holiday; weeks 9 and 10 and the busy other weekday are not in it.
    assert plan["days_used"] == 7
    assert plan["adjustment"] is None
    baseline = [row for week in range(1, 9) if week in weeks for row in weeks[week]]
    assert plan["intervals"] == recompute(baseline, 7, planned, None, 0.0)
    assert len(plan["intervals"]) == len(day_intervals(planned, TZ))

    csv_response = await api.client.get(
        "/v1/staffing/plan", params={"date": planned.isoformat(), "format": "csv"}
    )
    assert csv_response.headers["content-type"].startswith("text/csv")
    records = list(csv.DictReader(io.StringIO(csv_response.text)))
    assert len(records) == len(plan["intervals"])
    for record, interval in zip(records, plan["intervals"], strict=True):
        assert (record["channel"], record["queue"], record["start"]) == ("phone", QUEUE, interval["start"])
        assert int(record["needed_point"]) == interval["needed"]["point"]
        assert int(record["needed_low"]) == interval["needed"]["low"]
        assert int(record["needed_high"]) == interval["needed"]["high"]


async def test_today_is_adjusted_by_how_its_ended_quarter_hours_ran(
    history: tuple[RunningApp, AsyncEngine, date, dict[int, list[dict[str, Any]]]],
) -> None:
    api, engine, today, weeks = history
    now = local_noon(today)
    # Today so far half again as busy as its baseline, in the quarter-hours already over.
    today_rows = [
        row
        for row in generated_day(today, random.Random(3), scale=1.5)
        if row["interval_start"].timestamp() < interval_start(now)
    ]
    async with engine.begin() as conn:
        await conn.execute(INSERT, today_rows)
    body = (await api.client.get("/v1/staffing/plan", params={"date": today.isoformat()})).json()
    plan = body["queues"]["phone"][QUEUE]
    baseline = [row for week in range(1, 9) if week in weeks for row in weeks[week]]
    ended = {label(row["interval_start"]) for row in today_rows}
    expected_base = sum(counted(row) for row in baseline if label(row["interval_start"]) in ended) / 7
    assert expected_base >= MIN_ARRIVALS
    factor = sum(counted(row) for row in today_rows) / expected_base
    assert 1.2 < factor < 1.8
    assert plan["adjustment"] == round(factor, 3)
    assert plan["intervals"] == recompute(baseline, 7, today, factor, float(interval_start(now)))


async def test_a_bad_date_is_refused_naming_the_field(
    history: tuple[RunningApp, AsyncEngine, date, dict[int, list[dict[str, Any]]]],
) -> None:
    api = history[0]
    response = await api.client.get("/v1/staffing/plan", params={"date": "2026-02-30"})
    assert response.status_code == 422
    assert "date" in response.text
    assert (await api.client.get("/v1/staffing/plan")).status_code == 422
