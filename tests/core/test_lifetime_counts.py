"""Lifetime counts (the Prometheus counters) hold only what one process applied live, across restarts.

A restart is modelled as the service does it: a fresh window replays the stored events, starts its
lifetime counts and is adopted by the (empty) live window of the new process.
"""

from __future__ import annotations

import dataclasses

import pytest

from app.core.events import Channel, Event
from app.core.kpis import Tally
from app.core.window import Window
from tests.core.factory import ev, local, make_window, phone

NOON = local(2026, 6, 15, 12)
QUEUE = "borgerservice"
KEY = (Channel.PHONE, QUEUE)


def feed() -> list[Event]:
    """Calls whose steps fall on either side of any split: answered, abandoned, finished, transferred."""
    t = NOON - 900
    return [
        ev("call.offered", "a", t),
        ev("call.answered", "a", t + 20, agent="a1"),
        ev("call.offered", "b", t + 30),
        ev("call.abandoned", "b", t + 40),
        ev("call.ended", "a", t + 200, agent="a1", resolved=True),
        ev("call.offered", "c", t + 300),
        ev("call.answered", "c", t + 390, agent="a2"),
        ev("call.offered", "d", t + 400),
        ev("call.abandoned", "d", t + 402),
        ev("call.transferred", "c", t + 500, agent="a2", to_queue="pas"),
    ]


def restarted(stored: list[Event], now: float) -> Window:
    """The live window of a new process that replayed `stored` at start-up."""
    fresh = make_window()
    fresh.apply_many(stored, now)
    fresh.start_lifetime_counts()
    live = make_window()
    live.adopt(fresh)
    return live


def counts(window: Window) -> tuple[Tally, dict[int, int]]:
    lifetime = window.lifetime_counts(*KEY)
    return lifetime.tally, lifetime.waits


def plain(tally: Tally) -> dict[str, object]:
    return dataclasses.asdict(tally)


def test_the_replayed_window_counts_nothing_but_its_figures_stand() -> None:
    events = feed()
    before = make_window()
    before.apply_many(events, NOON)
    after = restarted(events, NOON)
    lifetime, waits = counts(after)
    assert plain(lifetime) == plain(Tally())
    assert waits == {}
    # Only the counters start again: every figure the screens show is the replayed one.
    assert phone(after, "today", NOON) == phone(before, "today", NOON)
    assert counts(before)[0].arrived == 4


@pytest.mark.parametrize("split", range(len(feed()) + 1))
def test_counts_before_and_after_a_restart_add_up_to_one_uninterrupted_process(split: int) -> None:
    events = feed()
    whole = make_window()
    whole.apply_many(events, NOON)

    first = make_window()
    first.apply_many(events[:split], NOON)
    second = restarted(events[:split], NOON)
    second.apply_many(events[split:], NOON)

    total, total_waits = counts(first)
    total = dataclasses.replace(total, wait_bins=dict(total.wait_bins))
    total.add(counts(second)[0])
    merged_waits = dict(total_waits)
    for wait, count in counts(second)[1].items():
        merged_waits[wait] = merged_waits.get(wait, 0) + count
    expected, expected_waits = counts(whole)
    assert plain(total) == plain(expected)
    assert merged_waits == expected_waits
    assert expected.arrived == 4
    assert expected.started == 2


def test_an_answer_after_the_restart_counts_without_its_arrival() -> None:
    arrival = ev("call.offered", "late-answer", NOON - 30)
    live = restarted([arrival], NOON)
    live.apply(ev("call.answered", "late-answer", NOON, agent="a1"), NOON)
    lifetime, waits = counts(live)
    assert (lifetime.arrived, lifetime.started, lifetime.started_within) == (0, 1, 1)
    assert waits == {30: 1}


def test_a_rebuild_keeps_the_counts_and_a_queue_new_to_it_starts_from_zero() -> None:
    live = make_window()
    live.apply_many(feed(), NOON)
    kept = plain(counts(live)[0])
    # A rebuild (a target change, or a failed commit whose events did reach the store) replays a queue
    # the live window never saw: its replayed outcomes were not applied live, so they are not counted.
    rebuilt = make_window()
    rebuilt.apply_many([*feed(), ev("call.offered", "x", NOON - 10, queue="pas")], NOON)
    live.adopt(rebuilt)
    assert plain(counts(live)[0]) == kept
    assert live.has_queue(Channel.PHONE, "pas")
    assert plain(live.lifetime_counts(Channel.PHONE, "pas").tally) == plain(Tally())
    assert phone(live, "today", NOON, queue="pas")["arrived"] == 1
    live.apply(ev("call.offered", "y", NOON, queue="pas"), NOON)
    assert live.lifetime_counts(Channel.PHONE, "pas").tally.arrived == 1
