"""Benchmarks of the pure core (pytest -m benchmark; deselected from the default run).

The snapshot must cost the same whatever the number of events in the window: `make bench` compares
test_snapshot_today at 1,000,000 events with the same at 10,000. Nothing here asserts a time; the
assertions check that the window measured holds what it was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.core.events import EVENT_TYPES, Channel, Event, Step
from app.core.kpis import Target
from app.core.snapshot import Snapshot
from app.core.targets import TargetBook
from app.core.window import Window, WindowConfig
from loadtests.dataset import Row, day_of_events

pytestmark = pytest.mark.benchmark

CPH = ZoneInfo("Europe/Copenhagen")
# A fixed, ordinary day from local midnight to 20:00, so every run measures the same window.
DAY_START = datetime(2024, 3, 12, tzinfo=CPH).timestamp()
DAY_END = DAY_START + 20 * 3600
NOW = DAY_END + 5
SIZES = [10_000, 1_000_000]


@dataclass
class Filled:
    window: Window
    arrivals: int


def _event(row: Row) -> Event:
    return Event(
        event_id=row.event_id,
        type=row.type,
        contact_id=row.contact_id,
        queue=row.queue,
        at=row.at,
        agent=row.agent,
        desk=row.desk,
        ticket_number=row.ticket_number,
        wait_seconds=row.wait_seconds,
        resolved=row.resolved,
        to_queue=row.to_queue,
        source=row.source,
    )


def _new_window() -> Window:
    targets = TargetBook({Channel.PHONE: Target(60.0, 90.0), Channel.VISIT: Target(300.0, 70.0)}, {})
    return Window(WindowConfig(time_zone="Europe/Copenhagen"), targets)


_filled: dict[int, Filled] = {}


def filled(count: int) -> Filled:
    """A window that absorbed `count` events of one day, each applied at the time it was received."""
    if count not in _filled:
        window = _new_window()
        arrivals = 0
        for row in day_of_events(count, DAY_START, DAY_END):
            window.apply(_event(row), row.received_at)
            arrivals += EVENT_TYPES[row.type][1] is Step.ARRIVE
        _filled[count] = Filled(window, arrivals)
    return _filled[count]


def _arrived(snapshot: Snapshot) -> int:
    return sum(channel.total.arrived for channel in snapshot.channels.values())


@pytest.mark.parametrize("events", SIZES)
def test_snapshot_today(benchmark: Any, events: int) -> None:
    state = filled(events)
    snapshot = benchmark(state.window.snapshot, "today", NOW)
    assert _arrived(snapshot) == state.arrivals


@pytest.mark.parametrize("events", SIZES)
def test_snapshot_1h(benchmark: Any, events: int) -> None:
    state = filled(events)
    snapshot = benchmark(state.window.snapshot, "1h", NOW)
    assert snapshot.window == "1h"
    assert _arrived(snapshot) <= state.arrivals


def test_apply_100k_events(benchmark: Any) -> None:
    """The replay's inner loop: 100,000 events of a day into an empty window."""
    events = [(_event(row), row.received_at) for row in day_of_events(100_000, DAY_START, DAY_END)]

    def fill() -> Window:
        window = _new_window()
        for event, received in events:
            window.apply(event, received)
        return window

    window = benchmark.pedantic(fill, rounds=3, iterations=1)
    arrivals = sum(EVENT_TYPES[event.type][1] is Step.ARRIVE for event, _ in events)
    assert _arrived(window.snapshot("today", NOW)) == arrivals


# ---- agents and desks (issue 15): 50 agents in 10 phone queues, each logged into two of them -------------

STAFF_QUEUES = tuple(f"queue-{n}" for n in range(10))
AGENTS = 50


def _staffed_day(count: int) -> list[tuple[Event, float]]:
    """`count` contact events of the day's pattern moved onto 10 phone queues and 50 agents, with each
    agent's day of staff events (log in to two queues at 08:00, three pauses, log out at 18:00) merged in by
    the time received. Events for a queue nobody staffs are still counted as contacts."""
    events: list[tuple[Event, float]] = []
    for row in day_of_events(count, DAY_START, DAY_END):
        event = _event(row)
        if event.type.startswith("call."):
            number = int(event.contact_id.split("-")[1])
            event.queue = STAFF_QUEUES[number % len(STAFF_QUEUES)]
            if event.agent is not None:
                event.agent = f"agent-{number % AGENTS}"
            if event.to_queue is not None:
                event.to_queue = STAFF_QUEUES[(number + 1) % len(STAFF_QUEUES)]
        events.append((event, row.received_at))
    for n in range(AGENTS):
        agent = f"agent-{n}"
        queues = (STAFF_QUEUES[n % 10], STAFF_QUEUES[(n + 3) % 10])
        start, end = DAY_START + 8 * 3600 + n * 7, DAY_START + 18 * 3600 + n * 11
        steps: list[tuple[str, str, float, str | None]] = []
        for queue in queues:
            steps.append(("agent.logged_in", queue, start, None))
            pauses: tuple[tuple[int, str | None, int], ...] = (
                (10, "break", 15),
                (12, "lunch", 30),
                (15, "break", 15),
            )
            for hour, reason, minutes in pauses:
                paused = DAY_START + hour * 3600 + n * 13
                steps.append(("agent.paused", queue, paused, reason))
                steps.append(("agent.resumed", queue, paused + minutes * 60, None))
            steps.append(("agent.logged_out", queue, end, None))
        for index, (kind, queue, at, reason) in enumerate(steps):
            staff = Event(f"staff-{n}-{index}", kind, agent, queue, at, agent=agent, reason=reason)
            events.append((staff, at + 0.5))
    events.sort(key=lambda item: item[1])
    return events


_staffed: dict[int, Window] = {}


def staffed(count: int) -> Window:
    if count not in _staffed:
        window = _new_window()
        for event, received in _staffed_day(count):
            window.apply(event, received)
        _staffed[count] = window
    return _staffed[count]


@pytest.mark.parametrize("events", SIZES)
def test_snapshot_today_50_agents(benchmark: Any, events: int) -> None:
    snapshot = benchmark(staffed(events).snapshot, "today", NOW)
    assert {"queue-0", "queue-9"} <= set(snapshot.channels["phone"].queues)


@pytest.mark.parametrize("events", SIZES)
def test_snapshot_1h_50_agents(benchmark: Any, events: int) -> None:
    snapshot = benchmark(staffed(events).snapshot, "1h", NOW)
    assert snapshot.window == "1h"


def test_apply_100k_events_50_agents(benchmark: Any) -> None:
    """The replay's inner loop with agents: 100,000 contact events naming 50 agents, and staff events."""
    events = _staffed_day(100_000)

    def fill() -> Window:
        window = _new_window()
        for event, received in events:
            window.apply(event, received)
        return window

    window = benchmark.pedantic(fill, rounds=3, iterations=1)
    assert _arrived(window.snapshot("today", NOW)) > 0


@pytest.mark.parametrize("window_name", ["15m", "today"])
def test_staff_figures_50_agents(benchmark: Any, window_name: str) -> None:
    """The staff reader itself (no baseline: it is new): every queue's and the total's figures."""
    window = staffed(1_000_000)
    if not hasattr(window, "staff"):
        pytest.skip("no staff reader in this version")
    staff = benchmark(window.staff, window_name, NOW - 3 * 3600)
    assert staff.channels["phone"].total.staffed == AGENTS
