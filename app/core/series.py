"""Per-queue time buckets: what every outcome is counted into, and the performance tricks that keep
counting and reading cheap.

A series holds one tally per second for the last hour (the rolling windows slide over them), one per
15-minute interval for two days, running totals for the rolling windows and for today, the lifetime
counts behind the Prometheus counters, and the arrival times of the contacts waiting now.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Literal

from app.core.clock import INTERVAL_SECONDS, interval_start
from app.core.events import Channel
from app.core.kpis import Tally

WindowName = Literal["15m", "1h", "today"]
ROLLING_SECONDS: dict[str, int] = {"15m": 900, "1h": 3600}
WINDOWS: tuple[WindowName, ...] = ("15m", "1h", "today")
# Per-second buckets are kept a little longer than the longest rolling window, which slides out of them.
SECOND_BUCKETS_KEPT = 3600 + 120
# Interval tallies are kept for today and yesterday (the longest day is 25 hours).
INTERVALS_KEPT_SECONDS = 2 * 25 * 3600

QueueKey = tuple[Channel, str]


@dataclass(slots=True)
class Rolling:
    width: int
    head: int = -(10**12)
    total: Tally = field(default_factory=Tally)


@dataclass(slots=True)
class Series:
    """Everything kept for one channel and queue."""

    seconds: dict[int, Tally] = field(default_factory=dict)
    intervals: dict[int, Tally] = field(default_factory=dict)
    rolling: dict[str, Rolling] = field(
        default_factory=lambda: {name: Rolling(width) for name, width in ROLLING_SECONDS.items()}
    )
    waiting: list[float] = field(default_factory=list)
    rollings: tuple[Rolling, ...] = field(init=False)
    # Interval starts changed since the rollup writer last took them (see SeriesBook.take_dirty).
    dirty: set[int] = field(default_factory=set)
    # Never slid nor pruned, so every count only grows: what Prometheus counters are made of. They hold
    # only what this process applied live (see Window.start_lifetime_counts and Window.adopt).
    lifetime: Tally = field(default_factory=Tally)
    # Started contacts' waits by whole seconds rounded UP: "waited at most N s" is exact for every whole N.
    lifetime_waits: dict[int, int] = field(default_factory=dict)
    # The sum of today's interval tallies, kept by count() so a snapshot does not add up a day of
    # intervals (with their wait histograms) on every read; rebuilt from the intervals when the day turns.
    today: Tally = field(default_factory=Tally)
    today_bounds: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        self.rollings = tuple(self.rolling.values())

    def window_total(self, window: WindowName, now: float, today: tuple[float, float]) -> Tally:
        """The running total over a window as of `now` (`today`: the local day's bounds)."""
        if window != "today":
            # Sliding here rather than every second in housekeeping: replay and idle hours pay nothing.
            self.advance(int(now // 1))
            return self.rolling[window].total
        bounds = (int(today[0]), int(today[1]))
        if self.today_bounds != bounds:
            total = Tally()
            for interval in range(bounds[0], bounds[1], INTERVAL_SECONDS):
                tally = self.intervals.get(interval)
                if tally is not None:
                    total.add(tally)
            self.today, self.today_bounds = total, bounds
        return self.today

    def advance(self, now_second: int) -> None:
        for rolling in self.rolling.values():
            if now_second <= rolling.head:
                continue
            if now_second - rolling.head >= rolling.width:
                rolling.total = Tally()
                low = now_second - rolling.width
                for second, tally in self.seconds.items():
                    if low < second <= now_second:
                        rolling.total.add(tally)
            else:
                for second in range(rolling.head + 1, now_second + 1):
                    entering = self.seconds.get(second)
                    if entering is not None:
                        rolling.total.add(entering)
                for second in range(rolling.head - rolling.width + 1, now_second - rolling.width + 1):
                    leaving = self.seconds.get(second)
                    if leaving is not None:
                        rolling.total.add(leaving, -1)
            rolling.head = now_second

    def prune(self, now: float) -> None:
        oldest_second = int(now) - SECOND_BUCKETS_KEPT
        for rolling in self.rolling.values():
            # Windows slide only when read; one not read lately may still hold seconds pruned here,
            # so it is recomputed from the kept seconds at its next read.
            if rolling.head - rolling.width < oldest_second:
                rolling.head = -(10**12)
        for second in [s for s in self.seconds if s <= oldest_second]:
            del self.seconds[second]
        oldest_interval = now - INTERVALS_KEPT_SECONDS
        for start in [s for s in self.intervals if s < oldest_interval]:
            del self.intervals[start]

    def add_waiting(self, since: float) -> None:
        bisect.insort(self.waiting, since)

    def remove_waiting(self, since: float) -> None:
        index = bisect.bisect_left(self.waiting, since)
        if index < len(self.waiting) and self.waiting[index] == since:
            del self.waiting[index]

    def expire_waiting(self, cutoff: float) -> int:
        """Drop the waits that began before `cutoff`; how many there were."""
        expired = bisect.bisect_left(self.waiting, cutoff)
        del self.waiting[:expired]
        return expired


class SeriesBook:
    """Every queue's series, in the order the queues were first seen."""

    def __init__(self) -> None:
        self.by_key: dict[QueueKey, Series] = {}
        # No outcome older than this can enter a rolling window again (see Window.replay_until).
        self.seconds_floor = 0.0
        self._last: tuple[Channel, str, Series] | None = None
        self._batch: dict[tuple[int, int, bool], list[Tally]] | None = None

    def get(self, channel: Channel, queue: str) -> Series:
        last = self._last
        # One contact's events mostly name one queue: a one-entry cache spares most lookups.
        if last is not None and last[1] == queue and last[0] is channel:
            return last[2]
        series = self.by_key.get((channel, queue))
        if series is None:
            series = self.by_key[(channel, queue)] = Series()
        self._last = (channel, queue, series)
        return series

    def tallies(self, series: Series, at: float) -> list[Tally]:
        """Every tally an outcome at `at` in `series` counts in: its second, its interval, the running totals.

        The caller adds to each directly: a handful of field increments per outcome is the whole cost
        of applying an event, which start-up replay and batch ingest pay a million times (hence one
        function, not a lookup calling a builder). Seconds below the floor can never be read by a
        rolling window again, so they get no per-second tally.
        """
        floor = self.seconds_floor
        memo = self._batch
        if memo is not None:
            key = (id(series), int(at // 1), at >= floor)
            found = memo.get(key)
            if found is not None:
                return found
        start = interval_start(at)
        series.dirty.add(start)
        interval = series.intervals.get(start)
        if interval is None:
            interval = series.intervals[start] = Tally()
        tallies = [interval, series.lifetime]
        first, end = series.today_bounds
        if first <= start < end:
            tallies.append(series.today)
        if at >= floor:
            second = int(at // 1)
            tally = series.seconds.get(second)
            if tally is None:
                tally = series.seconds[second] = Tally()
            tallies.append(tally)
            for rolling in series.rollings:
                if rolling.head - rolling.width < second <= rolling.head:
                    tallies.append(rolling.total)
        if memo is not None:
            memo[key] = tallies
        return tallies

    def begin_batch(self) -> None:
        """With `now` fixed and nothing read meanwhile, the tallies an outcome counts in depend only on
        its queue and second, so each such list is worked out once per batch rather than per outcome."""
        self._batch = {}

    def end_batch(self) -> None:
        self._batch = None

    def raise_floor(self, floor: float) -> None:
        self.seconds_floor = max(self.seconds_floor, floor)

    def drop(self, channel: Channel, queue: str) -> bool:
        series = self.by_key.pop((channel, queue), None)
        if self._last is not None and self._last[2] is series:
            self._last = None
        return series is not None

    def prune(self, now: float) -> None:
        for series in self.by_key.values():
            series.prune(now)

    def take_dirty(self) -> set[tuple[Channel, str, int]]:
        taken: set[tuple[Channel, str, int]] = set()
        for (channel, queue), series in self.by_key.items():
            if series.dirty:
                taken.update((channel, queue, start) for start in series.dirty)
                series.dirty = set()
        return taken

    def start_lifetime_counts(self) -> None:
        for series in self.by_key.values():
            series.lifetime, series.lifetime_waits = Tally(), {}

    def keep_lifetime_of(self, older: SeriesBook) -> None:
        """Carry the lifetime counts of `older` over to the same queues here; a queue it lacks starts anew."""
        for key, series in self.by_key.items():
            kept = older.by_key.get(key)
            if kept is not None:
                series.lifetime, series.lifetime_waits = kept.lifetime, kept.lifetime_waits
            else:
                series.lifetime, series.lifetime_waits = Tally(), {}
