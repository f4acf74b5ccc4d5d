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
