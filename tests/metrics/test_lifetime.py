"""The window's lifetime tallies behind the Prometheus counters, and the exact wait buckets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.core.events import Channel, Event
from app.core.kpis import Target
from app.core.targets import TargetBook
from app.core.window import Window, WindowConfig
from app.metrics import WAIT_BUCKETS, cumulative_buckets, exported_queues, wait_buckets

NOW = 1_750_000_000.0  # a June afternoon in Copenhagen
QUEUE = "borgerservice"


def window() -> Window:
    book = TargetBook({Channel.PHONE: Target(60.0, 90.0), Channel.VISIT: Target(300.0, 70.0)}, {})
    return Window(WindowConfig(), book)


def answered(contact: str, at: float, wait: float, queue: str = QUEUE) -> list[Event]:
    return [
        Event(f"{contact}:o", "call.offered", contact, queue, at - wait),
        Event(f"{contact}:a", "call.answered", contact, queue, at),
    ]


def test_lifetime_counts_survive_the_rolling_window_sliding() -> None:
    live = window()
    live.apply_many([*answered("c1", NOW, 30.0), *answered("c2", NOW, 90.0)], NOW)
    later = NOW + 2 * 3600
    assert live.snapshot("1h", later).channels["phone"].queues[QUEUE].started == 0
    lifetime = live.lifetime_counts(Channel.PHONE, QUEUE).tally
    assert (lifetime.arrived, lifetime.started, lifetime.started_within) == (2, 2, 1)
    live.apply_many(answered("c3", later, 10.0), later)
    assert live.lifetime_counts(Channel.PHONE, QUEUE).tally.started == 3


def test_a_rebuilt_window_keeps_the_lifetime_counts() -> None:
    live = window()
    live.apply_many([*answered("c1", NOW, 30.0), *answered("c2", NOW, 90.0)], NOW)
    rebuilt = window()
    rebuilt.apply_many(answered("c2", NOW, 90.0), NOW)
    live.adopt(rebuilt)
    lifetime = live.lifetime_counts(Channel.PHONE, QUEUE)
    assert lifetime.tally.started == 2
    assert sum(lifetime.waits.values()) == 2


@given(st.lists(st.one_of(st.integers(0, 4000).map(float), st.floats(0, 4000)), max_size=60))
def test_wait_buckets_count_waits_of_at_most_each_bound_exactly(waits: list[float]) -> None:
    live = window()
    for index, wait in enumerate(waits):
        live.apply(Event(f"{index}:a", "call.answered", str(index), QUEUE, NOW, wait_seconds=wait), NOW)
    held = live.has_queue(Channel.PHONE, QUEUE)
    lifetime = live.lifetime_counts(Channel.PHONE, QUEUE)
    buckets = cumulative_buckets(lifetime.waits, WAIT_BUCKETS)
    expected = [(str(bound), float(sum(w <= bound for w in waits))) for bound in WAIT_BUCKETS]
    assert buckets == [*expected, ("+Inf", float(len(waits)))]
    if held:
        within = dict(buckets)["60"]
        assert within == lifetime.tally.started_within


def test_whole_second_targets_become_buckets() -> None:
    assert wait_buckets([45.5, 75.0, 60.0]) == tuple(sorted({*WAIT_BUCKETS, 75}))


def test_only_the_first_queues_seen_are_exported() -> None:
    live = window()
    for index, queue in enumerate(["zulu", "alpha", "mike"]):
        live.apply_many(answered(f"c{index}", NOW, 5.0, queue), NOW)
    assert exported_queues(live, 2) == ([(Channel.PHONE, "zulu"), (Channel.PHONE, "alpha")], 1)
    assert exported_queues(live, 200) == (live.queues_seen(), 0)
