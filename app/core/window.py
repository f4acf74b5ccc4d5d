"""The live rolling window: absorbs events one by one and answers snapshots without scanning events.

Memory grows with queues and time buckets (one tally per second for the last hour, one per
15-minute interval for two days), plus the contacts still open. Every outcome is counted once, at
the time it happened, in the queue named by the event that carries it.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal
from zoneinfo import ZoneInfo

from app.core.clock import INTERVAL_SECONDS, day_bounds, interval_start, local_date
from app.core.events import (
    CHANNEL_NAMES,
    EVENT_TYPES,
    TRANSFER_TYPES,
    UNSERVED_FINISH_TYPES,
    Channel,
    Event,
    Step,
)
from app.core.kpis import Tally, Target, kpi, wait_bin

WindowName = Literal["15m", "1h", "today"]
ROLLING_SECONDS: dict[str, int] = {"15m": 900, "1h": 3600}
WINDOWS: tuple[WindowName, ...] = ("15m", "1h", "today")
# Per-second buckets are kept a little longer than the longest rolling window, which slides out of them.
SECOND_BUCKETS_KEPT = 3600 + 120
# Interval tallies are kept for today and yesterday (the longest day is 25 hours).
INTERVALS_KEPT_SECONDS = 2 * 25 * 3600
RECENT_CALLS_KEPT = 50
# Dropping old per-second buckets means scanning them all; every ten minutes keeps that off the hot path
# and at most ten minutes' more buckets in memory.
PRUNE_EVERY_SECONDS = 600

DATA_QUALITY_KEYS = (
    "duplicates",
    "out_of_order",
    "orphans",
    "late",
    "expired",
    "unfinished",
    "negative_waits",
    "before_today",
    "cleared",
)


@dataclass(frozen=True, slots=True)
class WindowConfig:
    time_zone: str = "Europe/Copenhagen"
    short_abandon_seconds: float = 5.0
    max_wait_seconds: float = 4 * 3600.0
    late_after_seconds: float = 60.0
    warning_margin_pct: float = 5.0
    fcr_goal_pct: float = 80.0
    # A closed contact is remembered this long so a repeated step is recognised, not counted anew.
    closed_retention_seconds: float = 3600.0


TargetLookup = Callable[[Channel, str | None], Target]

# Read once: an Enum member read off its class costs a property call per access on Python 3.11.
ARRIVE, START, LEAVE = Step.ARRIVE, Step.START, Step.LEAVE
CLEAR = Step.CLEAR

# A contact is keyed by its channel's name and its id, both plain str: the cyclic garbage collector
# stops tracking a tuple of plain strs once it has seen it, where a Channel member would keep each of
# the hundreds of thousands of keys (and the deadline tuples holding them) tracked and walked forever.
ContactKey = tuple[str, str]


# What counting a step needs later: (when, queue, the wait its source reported) for a start or a leave,
# (when, queue, served) for a finish. Plain tuples rather than the Events themselves, for the reason
# ContactKey gives: a contact then holds nothing the garbage collector must keep walking.
StepFacts = tuple[float, str, float | None]
FinishFacts = tuple[float, str, bool]


@dataclass(slots=True)
class _Contact:
    channel: Channel
    first_seen: float
    arrive_queue: str | None = None
    arrived_at: float | None = None
    start: StepFacts | None = None
    leave: StepFacts | None = None
    finish: FinishFacts | None = None
    start_counted: bool = False
    leave_counted: bool = False
    handle_counted: bool = False
    waiting_since: float | None = None
    # Left "waiting now" after max_wait: reported as expired, so not also as unfinished when forgotten.
    expired: bool = False
    closed: bool = False
    ticket_number: str | None = None
    # The arrival's source, so a source's restart clears only its own contacts (see open_contacts).
    source: str | None = None
    # When a clear step ended the contact (its source restarted); its outcomes, if any arrive, still count.
    cleared: float | None = None


@dataclass(slots=True)
class _Rolling:
    width: int
    head: int = -(10**12)
    total: Tally = field(default_factory=Tally)


@dataclass(slots=True)
class _Series:
    """Everything kept for one channel and queue."""

    seconds: dict[int, Tally] = field(default_factory=dict)
    intervals: dict[int, Tally] = field(default_factory=dict)
    rolling: dict[str, _Rolling] = field(
        default_factory=lambda: {name: _Rolling(width) for name, width in ROLLING_SECONDS.items()}
    )
    waiting: list[float] = field(default_factory=list)
    rollings: tuple[_Rolling, ...] = field(init=False)
    # Interval starts changed since the rollup writer last took them (see Window.take_dirty).
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

    def tallies_at(self, at: float, seconds_floor: float) -> list[Tally]:
        """Every tally an outcome at `at` counts in: its second, its interval, the running totals.

        The caller adds to each directly: a handful of field increments per outcome is the whole cost
        of applying an event, which start-up replay and batch ingest pay a million times. Seconds below
        `seconds_floor` can never be read by a rolling window again, so they get no per-second tally.
        """
        start = interval_start(at)
        self.dirty.add(start)
        interval = self.intervals.get(start)
        if interval is None:
            interval = self.intervals[start] = Tally()
        tallies = [interval, self.lifetime]
        first, end = self.today_bounds
        if first <= start < end:
            tallies.append(self.today)
        if at >= seconds_floor:
            second = int(at // 1)
            tally = self.seconds.get(second)
            if tally is None:
                tally = self.seconds[second] = Tally()
            tallies.append(tally)
            for rolling in self.rollings:
                if rolling.head - rolling.width < second <= rolling.head:
                    tallies.append(rolling.total)
        return tallies

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


class Window:
    """The in-memory KPI state. Pure: the caller passes `now` (Unix seconds) to every call."""

    def __init__(self, config: WindowConfig, targets: TargetLookup) -> None:
        self.config = config
        self.targets = targets
        self.tz = ZoneInfo(config.time_zone)
        self.series: dict[tuple[Channel, str], _Series] = {}
        self.contacts: dict[ContactKey, _Contact] = {}
        self.data_quality: dict[str, int] = dict.fromkeys(DATA_QUALITY_KEYS, 0)
        self.recent_calls: deque[dict[str, Any]] = deque(maxlen=RECENT_CALLS_KEPT)
        self.version = 0
        # Changes each time adopt() replaces the state, so a reader can tell a rebuilt window by number.
        self.generation = 0
        self._closed_order: deque[tuple[float, ContactKey]] = deque()
        self._open_order: deque[tuple[float, ContactKey]] = deque()
        self._pruned_minute = 0
        self._next_housekeep = 0.0
        self._today: tuple[float, float] = (0.0, 0.0)
        # No outcome older than this can enter a rolling window again (see replay_until).
        self._seconds_floor = 0.0
        self._last_series: tuple[Channel, str, _Series] | None = None
        self._batch_tallies: dict[tuple[int, int, bool], list[Tally]] | None = None

    # ---- ingest -------------------------------------------------------------------------------

    def replay_until(self, now: float) -> None:
        """Announce that the events about to be applied lead up to `now`, the first time to be read."""
        self._seconds_floor = max(self._seconds_floor, now - SECOND_BUCKETS_KEPT)

    def apply(self, event: Event, now: float) -> None:
        if now >= self._next_housekeep:
            self.housekeep(now)
            self._seconds_floor = max(self._seconds_floor, now - SECOND_BUCKETS_KEPT)
        channel, step = EVENT_TYPES[event.type]
        key = (CHANNEL_NAMES[event.type], event.contact_id)
        contact = self.contacts.get(key)
        if contact is None:
            contact = self.contacts[key] = _Contact(channel=channel, first_seen=now)
            self._open_order.append((now + self.config.max_wait_seconds, key))
        if event.at < now - self.config.late_after_seconds:
            self.data_quality["late"] += 1
        day_start, day_end = self._today
        if not day_start <= now < day_end:
            day_start = self.today_bounds(now)[0]
        if event.at < day_start:
            self.data_quality["before_today"] += 1
        self.version += 1

        if step is ARRIVE:
            self._arrive(contact, event, now)
            if contact.source is None:
                contact.source = event.source
            if contact.cleared is not None:
                self._stop_waiting(contact)  # cleared before its arrival came: not waiting either
        elif step is START:
            self._start(contact, event, now)
        elif step is LEAVE:
            self._leave(contact, event)
        elif step is CLEAR:
            self._clear(contact, event)
        else:
            self._finish(contact, event)
        self._settle(contact)
        if not contact.closed and self._is_complete(contact):
            contact.closed = True
            self._closed_order.append((now + self.config.closed_retention_seconds, key))

    def apply_many(self, events: Iterable[Event], now: float) -> None:
        """Apply events received together at `now` (one committed batch)."""
        if now >= self._next_housekeep:
            self.housekeep(now)
            self._seconds_floor = max(self._seconds_floor, now - SECOND_BUCKETS_KEPT)
        # With `now` fixed and nothing read meanwhile, the tallies an outcome counts in depend only on
        # its queue and second, so each such list is worked out once per batch rather than per outcome.
        self._batch_tallies = {}
        try:
            for event in events:
                self.apply(event, now)
        finally:
            self._batch_tallies = None

    def note_duplicates(self, count: int) -> None:
        """Deliveries the store recognised as already seen."""
        if count:
            self.data_quality["duplicates"] += count
            self.version += 1

    def _series(self, channel: Channel, queue: str) -> _Series:
        last = self._last_series
        # One contact's events mostly name one queue: a one-entry cache spares most lookups.
        if last is not None and last[1] == queue and last[0] is channel:
            return last[2]
        series = self.series.get((channel, queue))
        if series is None:
            series = self.series[(channel, queue)] = _Series()
        self._last_series = (channel, queue, series)
        return series

    def _tallies(self, series: _Series, at: float) -> list[Tally]:
        memo = self._batch_tallies
        if memo is None:
            return series.tallies_at(at, self._seconds_floor)
        key = (id(series), int(at // 1), at >= self._seconds_floor)
        tallies = memo.get(key)
        if tallies is None:
            tallies = memo[key] = series.tallies_at(at, self._seconds_floor)
        return tallies

    def _duplicate(self) -> None:
        self.data_quality["duplicates"] += 1

    def _arrive(self, contact: _Contact, event: Event, now: float) -> None:
        if contact.arrived_at is not None:
            self._duplicate()
            return
        if contact.start or contact.leave or contact.finish:
            self.data_quality["out_of_order"] += 1
        contact.arrived_at = event.at
        contact.arrive_queue = event.queue
        contact.ticket_number = event.ticket_number or contact.ticket_number
        series = self._series(contact.channel, event.queue)
        for tally in self._tallies(series, event.at):
            tally.arrived += 1
        if contact.start or contact.leave or contact.finish:
            return
        if now - event.at > self.config.max_wait_seconds:
            # Too old to be waiting now, but its outcome may still be on its way (a catch-up or backfill
            # sends it in this request or the next): _forget_open judges it expired only if none came.
            return
        contact.waiting_since = event.at
        series.add_waiting(event.at)

    def _stop_waiting(self, contact: _Contact) -> None:
        if contact.waiting_since is not None and contact.arrive_queue is not None:
            self._series(contact.channel, contact.arrive_queue).remove_waiting(contact.waiting_since)
            contact.waiting_since = None

    def _start(self, contact: _Contact, event: Event, now: float) -> None:
        if contact.start is not None:
            self._duplicate()
            return
        if contact.finish is not None:
            self.data_quality["out_of_order"] += 1
        contact.start = (event.at, event.queue, event.wait_seconds)
        self._stop_waiting(contact)
        if event.type == "ticket.called":
            self.recent_calls.appendleft(
                {
                    "ticket_number": event.ticket_number or contact.ticket_number,
                    "desk": event.desk,
                    "queue": event.queue,
                    "called_at": event.at,
                }
            )

    def _leave(self, contact: _Contact, event: Event) -> None:
        if contact.leave is not None:
            self._duplicate()
            return
        contact.leave = (event.at, event.queue, event.wait_seconds)
        self._stop_waiting(contact)

    def _finish(self, contact: _Contact, event: Event) -> None:
        if contact.finish is not None:
            self._duplicate()
            return
        served = event.type not in UNSERVED_FINISH_TYPES
        contact.finish = (event.at, event.queue, served)
        self._stop_waiting(contact)
        transferred = event.type in TRANSFER_TYPES
        resolved = served and not transferred and event.resolved is True
        series = self._series(contact.channel, event.queue)
        for tally in self._tallies(series, event.at):
            tally.finished += 1
            tally.served += served
            tally.transferred += transferred
            tally.resolved_first_contact += resolved

    def _clear(self, contact: _Contact, event: Event) -> None:
        """End the contact's wait, or its unfinished service, without counting an outcome."""
        if contact.cleared is not None:
            self._duplicate()
            return
        ended_already = self._is_complete(contact)
        contact.cleared = event.at
        if ended_already:
            return
        self._stop_waiting(contact)
        self.data_quality["cleared"] += 1

    def _wait(self, contact: _Contact, at: float, reported: float | None) -> float | None:
        if reported is not None:
            return reported
        if contact.arrived_at is None:
            return None
        wait = at - contact.arrived_at
        if wait < 0:
            self.data_quality["negative_waits"] += 1
            return 0.0
        return wait

    def _settle(self, contact: _Contact) -> None:
        """Count every outcome whose facts are now all known; each exactly once, whatever the order."""
        start, leave, finish = contact.start, contact.leave, contact.finish
        if start is not None and not contact.start_counted:
            start_at, start_queue, reported = start
            wait = self._wait(contact, start_at, reported)
            if wait is not None:
                contact.start_counted = True
                within = wait <= self.targets(contact.channel, start_queue).threshold_seconds
                key = wait_bin(wait)
                series = self._series(contact.channel, start_queue)
                for tally in self._tallies(series, start_at):
                    tally.add_start(wait, within, key)
                ceiling = math.ceil(wait)
                series.lifetime_waits[ceiling] = series.lifetime_waits.get(ceiling, 0) + 1
        if leave is not None and not contact.leave_counted:
            leave_at, leave_queue, reported = leave
            wait = self._wait(contact, leave_at, reported)
            if wait is not None:
                contact.leave_counted = True
                after_short = wait > self.config.short_abandon_seconds
                series = self._series(contact.channel, leave_queue)
                for tally in self._tallies(series, leave_at):
                    tally.left += 1
                    tally.left_after_short += after_short
        if start is not None and finish is not None and not contact.handle_counted and finish[2]:
            contact.handle_counted = True
            finish_at, finish_queue, _ = finish
            handle = max(0.0, finish_at - start[0])
            series = self._series(contact.channel, finish_queue)
            for tally in self._tallies(series, finish_at):
                tally.handled += 1
                tally.handle_sum += handle

    @staticmethod
    def _is_complete(contact: _Contact) -> bool:
        if contact.arrived_at is None:
            return False
        if contact.leave is not None or contact.cleared is not None:
            return True
        return contact.start is not None and contact.finish is not None

    # ---- time passing -------------------------------------------------------------------------

    def today_bounds(self, now: float) -> tuple[float, float]:
        start, end = self._today
        if not start <= now < end:
            start, end = self._today = day_bounds(local_date(now, self.tz), self.tz)
        return start, end

    def housekeep(self, now: float) -> None:
        """Expire long waits, forget old contacts and buckets; the rolling windows slide when read."""
        self._next_housekeep = now + 1.0
        cutoff = now - self.config.max_wait_seconds
        for (channel, queue), series in self.series.items():
            waiting = series.waiting
            if not waiting or waiting[0] >= cutoff:
                continue
            expired = bisect.bisect_left(waiting, cutoff)
            if expired:
                del series.waiting[:expired]
                self.data_quality["expired"] += expired
                self.version += 1
                for contact in self.contacts.values():
                    if (
                        contact.channel is channel
                        and contact.arrive_queue == queue
                        and contact.waiting_since is not None
                        and contact.waiting_since < cutoff
                    ):
                        contact.waiting_since = None
                        contact.expired = True
        while self._closed_order and self._closed_order[0][0] <= now:
            _, key = self._closed_order.popleft()
            closed = self.contacts.get(key)
            if closed is not None and closed.closed:
                del self.contacts[key]
        # Strictly after the deadline: a contact expires when it has waited longer than max_wait, not as long.
        while self._open_order and self._open_order[0][0] < now:
            _, key = self._open_order.popleft()
            stale = self.contacts.get(key)
            if stale is None or stale.closed:
                continue
            self._forget_open(stale)
            del self.contacts[key]
        minute = int(now // PRUNE_EVERY_SECONDS)
        if minute != self._pruned_minute:
            self._pruned_minute = minute
            for series in self.series.values():
                series.prune(now)

    def _forget_open(self, contact: _Contact) -> None:
        """Judge a contact still open when it is forgotten: max_wait after its first event was received.

        By then the feed has had time to send every step, in any order, so the verdict rests on what the
        contact did and not on which of its events came first.
        """
        if contact.waiting_since is not None:
            self._stop_waiting(contact)
            self.data_quality["expired"] += 1
        elif contact.arrived_at is None:
            self.data_quality["orphans"] += 1
        elif contact.expired:
            pass  # already counted when it left "waiting now"
        elif contact.start or contact.leave or contact.finish:
            self.data_quality["unfinished"] += 1
        else:
            # Received already older than max_wait and nothing came after: a lost hang-up after all.
            self.data_quality["expired"] += 1
        self.version += 1

    # ---- reading ------------------------------------------------------------------------------

    def _window_tally(self, series: _Series, window: WindowName, now: float) -> Tally:
        if window != "today":
            # Sliding here rather than every second in housekeep: replay and idle hours pay nothing.
            series.advance(int(now // 1))
            return series.rolling[window].total
        start, end = self.today_bounds(now)
        bounds = (int(start), int(end))
        if series.today_bounds != bounds:
            total = Tally()
            for interval in range(bounds[0], bounds[1], INTERVAL_SECONDS):
                tally = series.intervals.get(interval)
                if tally is not None:
                    total.add(tally)
            series.today, series.today_bounds = total, bounds
        return series.today

    def _window_hours(self, window: WindowName, now: float) -> float:
        if window != "today":
            return ROLLING_SECONDS[window] / 3600
        return max(0.0, now - self.today_bounds(now)[0]) / 3600

    def snapshot(
        self,
        window: WindowName,
        now: float,
        channel: Channel | None = None,
        queue: str | None = None,
    ) -> dict[str, Any]:
        """KPIs per channel, per queue and per channel total, as plain JSON-ready data."""
        self.housekeep(now)
        hours = self._window_hours(window, now)
        config = self.config
        channels: dict[str, Any] = {}
        for ch in Channel:
            if channel is not None and ch is not channel:
                continue
            total = Tally()
            total_waiting: list[float] = []
            total_past = 0
            queues: dict[str, Any] = {}
            channel_target = self.targets(ch, None)
            for (series_channel, name), series in sorted(self.series.items()):
                if series_channel is not ch:
                    continue
                tally = self._window_tally(series, window, now)
                target = self.targets(ch, name)
                past = bisect.bisect_left(series.waiting, now - target.threshold_seconds)
                total.add(tally)
                total_past += bisect.bisect_left(series.waiting, now - channel_target.threshold_seconds)
                if series.waiting:
                    total_waiting.append(series.waiting[0])
                if queue is not None and name != queue:
                    continue
                queues[name] = kpi(
                    tally,
                    target,
                    waiting_now=len(series.waiting),
                    waiting_past_threshold=past,
                    longest_wait_now=max(0.0, now - series.waiting[0]) if series.waiting else None,
                    window_hours=hours,
                    fcr_goal_pct=config.fcr_goal_pct,
                    warning_margin_pct=config.warning_margin_pct,
                )
            waiting_total = sum(len(s.waiting) for (c, _), s in self.series.items() if c is ch)
            channels[ch.value] = {
                "total": kpi(
                    total,
                    channel_target,
                    waiting_now=waiting_total,
                    waiting_past_threshold=total_past,
                    longest_wait_now=max(0.0, now - min(total_waiting)) if total_waiting else None,
                    window_hours=hours,
                    fcr_goal_pct=config.fcr_goal_pct,
                    warning_margin_pct=config.warning_margin_pct,
                ),
                "queues": queues,
            }
        return {
            "window": window,
            "as_of": now,
            "time_zone": config.time_zone,
            "channels": channels,
            "data_quality": dict(self.data_quality),
        }

    def intervals(self, channel: Channel, queue: str | None, day: date) -> list[tuple[int, Tally]]:
        """Tallies per 15-minute interval of a local day, for one queue or the channel total."""
        result = []
        day_start, day_end = day_bounds(day, self.tz)
        for start in range(int(day_start), int(day_end), INTERVAL_SECONDS):
            total = Tally()
            for (series_channel, name), series in self.series.items():
                if series_channel is channel and (queue is None or name == queue):
                    tally = series.intervals.get(start)
                    if tally is not None:
                        total.add(tally)
            result.append((start, total))
        return result

    def queues(self) -> list[tuple[Channel, str]]:
        return sorted(self.series)

    def open_contacts(self, channel: Channel, source: str, arrived_before: float) -> list[tuple[str, str]]:
        """(contact id, queue of arrival) of each contact from `source` that arrived before the given
        time and is still waiting or in service, with no step after that time: what a restart of that
        source ended. Scans every contact, which is fine for an event as rare as a restart."""
        return sorted(
            (contact_id, contact.arrive_queue)
            for (_, contact_id), contact in self.contacts.items()
            if contact.channel is channel
            and contact.source == source
            and contact.arrive_queue is not None
            and contact.arrived_at is not None
            and contact.arrived_at < arrived_before
            and self._open_at(contact, arrived_before)
        )

    def over_by(self, channel: Channel, contact_id: str, at: float) -> bool:
        """Whether this window knows the contact to be over (or to go on after `at`): a restart at `at`
        has nothing of it to end."""
        contact = self.contacts.get((str(channel.value), contact_id))
        return contact is not None and not self._open_at(contact, at)

    @staticmethod
    def _open_at(contact: _Contact, at: float) -> bool:
        # A finish ends the call even with its start missing (the log began mid-call).
        return (
            not contact.closed
            and not contact.expired
            and contact.finish is None
            and (contact.start is None or contact.start[0] <= at)
        )

    # ---- rollup -------------------------------------------------------------------------------

    def take_dirty(self) -> set[tuple[Channel, str, int]]:
        """The (channel, queue, interval start) tallies changed since the last call, and forget them."""
        taken: set[tuple[Channel, str, int]] = set()
        for (channel, queue), series in self.series.items():
            if series.dirty:
                taken.update((channel, queue, start) for start in series.dirty)
                series.dirty = set()
        return taken

    def interval_tally(self, channel: Channel, queue: str, start: int) -> Tally | None:
        """One queue's tally of one 15-minute interval, if the window still holds it."""
        series = self.series.get((channel, queue))
        return None if series is None else series.intervals.get(start)

    def interval_tallies(self, since: float, until: float) -> list[tuple[Channel, str, int, Tally]]:
        """Every queue's non-empty interval tallies starting in [since, until)."""
        return [
            (channel, queue, start, tally)
            for (channel, queue), series in sorted(self.series.items())
            for start, tally in sorted(series.intervals.items())
            if since <= start < until and not tally.is_empty()
        ]

    # ---- rebuild ------------------------------------------------------------------------------

    def start_lifetime_counts(self) -> None:
        """Zero every queue's lifetime counts, so they count only what happens from now on.

        For the window replayed at start-up: the process before the restart already counted the replayed
        outcomes in the Prometheus counters, which see this process's counts start again from zero (a
        counter reset), so counting them here as well would add them to every range holding the restart.
        """
        for series in self.series.values():
            series.lifetime, series.lifetime_waits = Tally(), {}

    def adopt(self, rebuilt: Window) -> None:
        """Take over the state of a window rebuilt by replay, keeping this object and its target lookup.

        Readers and the writer hold this object, so a rebuild swaps its contents rather than the object;
        the version only ever grows, so caches keyed on it never serve the old figures.
        """
        targets, version, generation = self.targets, self.version, self.generation
        # The lifetime counts are what this process saw happen: the replay only recounts outcomes that
        # were already counted (by this process, or by the one before a restart), so a queue keeps its
        # counts across the swap, and one this window never had starts from nothing.
        for key, series in rebuilt.series.items():
            kept = self.series.get(key)
            if kept is not None:
                series.lifetime, series.lifetime_waits = kept.lifetime, kept.lifetime_waits
            else:
                series.lifetime, series.lifetime_waits = Tally(), {}
        vars(self).update(vars(rebuilt))
        self.targets = targets
        self.version = version + rebuilt.version + 1
        self.generation = generation + 1

    # ---- retired queues -----------------------------------------------------------------------

    def drop_queue(self, channel: Channel, queue: str) -> bool:
        """Forget a queue an admin retired: its series and every contact with a step in it.

        The contacts go too, so that no later step or housekeeping of theirs brings the series back (ingest
        refuses the queue's new events). True when the window held the queue.
        """
        series = self.series.pop((channel, queue), None)
        if self._last_series is not None and self._last_series[2] is series:
            self._last_series = None

        def in_queue(contact: _Contact) -> bool:
            if contact.channel is not channel:
                return False
            queues = [step[1] for step in (contact.start, contact.leave, contact.finish) if step is not None]
            return contact.arrive_queue == queue or queue in queues

        for key in [key for key, contact in self.contacts.items() if in_queue(contact)]:
            del self.contacts[key]
        if channel is Channel.VISIT:
            kept = [call for call in self.recent_calls if call["queue"] != queue]
            self.recent_calls.clear()
            self.recent_calls.extend(kept)
        self.version += 1
        return series is not None
