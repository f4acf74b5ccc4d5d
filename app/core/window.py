"""The live rolling window: absorbs events one by one and answers snapshots without scanning events.

A facade over three parts: the contacts (app/core/contacts.py: events to outcomes), the per-queue
series (app/core/series.py: buckets, sliding, pruning) and the read model (app/core/snapshot.py). Memory
grows with queues and time buckets (one tally per second for the last hour, one per 15-minute interval
for two days), plus the contacts still open. Readers use only the methods here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from zoneinfo import ZoneInfo

from app.core.clock import INTERVAL_SECONDS, day_bounds, interval_start, local_date
from app.core.config import TargetLookup, WindowConfig
from app.core.contacts import RECENT_CALLS_KEPT, Contact, Contacts
from app.core.events import CHANNEL_NAMES, EVENT_SPECS, EVENT_TYPES, Channel, Event, Family, Step
from app.core.kpis import Tally, figures
from app.core.series import (
    INTERVALS_KEPT_SECONDS,
    ROLLING_SECONDS,
    SECOND_BUCKETS_KEPT,
    WINDOWS,
    QueueKey,
    SeriesBook,
    WindowName,
)
from app.core.snapshot import (
    DATA_QUALITY_KEYS,
    DataQuality,
    IntervalFigures,
    LifetimeCounts,
    Reading,
    RecentCall,
    Snapshot,
    assemble,
)
from app.core.staff import AgentState, StaffBook, StaffSnapshot

__all__ = [
    "DATA_QUALITY_KEYS",
    "INTERVALS_KEPT_SECONDS",
    "PRUNE_EVERY_SECONDS",
    "RECENT_CALLS_KEPT",
    "ROLLING_SECONDS",
    "SECOND_BUCKETS_KEPT",
    "WINDOWS",
    "TargetLookup",
    "Window",
    "WindowConfig",
    "WindowName",
]

# Read once: an Enum member read off its class costs a property call per access on Python 3.11.
ARRIVE, START, LEAVE, CLEAR = Step.ARRIVE, Step.START, Step.LEAVE, Step.CLEAR

# Dropping old per-second buckets means scanning them all; every ten minutes keeps that off the hot path
# and at most ten minutes' more buckets in memory.
PRUNE_EVERY_SECONDS = 600


class Window:
    """The in-memory KPI state. Pure: the caller passes `now` (Unix seconds) to every call."""

    def __init__(self, config: WindowConfig, targets: TargetLookup) -> None:
        self.config = config
        self.targets = targets
        self.tz = ZoneInfo(config.time_zone)
        # Grows with every change, so caches keyed on it never serve old figures.
        self.version = 0
        # Changes each time adopt() replaces the state, so a reader can tell a rebuilt window by number.
        self.generation = 0
        self._series = SeriesBook()
        self._quality = DataQuality()
        self._contacts = Contacts(config, targets, self._series, self._quality)
        # Agents and desks (app/core/staff.py): a part adopt() swaps, so a checkpoint of the window holds it.
        self._staff = StaffBook(config.wrap_up_seconds, config.max_wait_seconds)
        self._pruned_minute = 0
        self._next_housekeep = 0.0
        self._today: tuple[float, float] = (0.0, 0.0)
        # Intervals a replaced state had changed and the rollup writer had not taken yet (see adopt).
        self._carried_dirty: set[tuple[Channel, str, int]] = set()

    # ---- ingest -------------------------------------------------------------------------------

    def replay_until(self, now: float) -> None:
        """Announce that the events about to be applied lead up to `now`, the first time to be read."""
        self._series.raise_floor(now - SECOND_BUCKETS_KEPT)

    def apply(self, event: Event, now: float) -> None:
        if now >= self._next_housekeep:
            self.housekeep(now)
            book = self._series
            book.seconds_floor = max(book.seconds_floor, now - SECOND_BUCKETS_KEPT)
        try:
            channel, step = EVENT_TYPES[event.type]
        except KeyError:
            # A family with no contact step (a try costs nothing in 3.11): staff events go to their book.
            spec = EVENT_SPECS.get(event.type)
            if spec is not None and spec.family is Family.STAFF:
                self.version += 1
                self._staff.apply_staff(event, spec.channel, now)
            return
        # Contact steps go to the lifecycle. Its entry is written out here rather than as a method of
        # Contacts: one call frame per event is a measurable share of apply, which replay pays per event.
        contacts = self._contacts
        key = (CHANNEL_NAMES[event.type], event.contact_id)
        contact = contacts.by_key.get(key)
        if contact is None:
            # First seen: judged, if still open, max_wait later (Contacts.forget).
            contact = contacts.by_key[key] = Contact(channel=channel, first_seen=now)
            contacts.open_order.append((now + self.config.max_wait_seconds, key))
        if event.at < now - self.config.late_after_seconds:
            self._quality.late += 1
        day_start, day_end = self._today
        if not day_start <= now < day_end:
            day_start = self.today_bounds(now)[0]
        if event.at < day_start:
            self._quality.before_today += 1
        self.version += 1
        if step is ARRIVE:
            contacts.arrive(contact, event, now)
        elif step is START:
            contacts.start(contact, event)
            if event.agent is not None or event.desk is not None:
                self._staff.contact_start(event, channel, now)
        elif step is LEAVE:
            contacts.leave(contact, event)
        elif step is CLEAR:
            contacts.clear(contact, event)
            self._staff.contact_finish(event, channel, now)
        else:
            contacts.finish(contact, event)
            self._staff.contact_finish(event, channel, now)
        contacts.settle(contact, key, now)

    def apply_many(self, events: Iterable[Event], now: float) -> None:
        """Apply events received together at `now` (one committed batch)."""
        if now >= self._next_housekeep:
            self.housekeep(now)
            self._series.raise_floor(now - SECOND_BUCKETS_KEPT)
        series = self._series
        series.begin_batch()
        try:
            for event in events:
                self.apply(event, now)
        finally:
            series.end_batch()

    def note_duplicates(self, count: int) -> None:
        """Deliveries the store recognised as already seen."""
        if count:
            self._quality.duplicates += count
            self.version += 1

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
        # Replay and busy ingest come here about once per event: the common case, nobody waiting too
        # long, is checked inline rather than by a call per queue.
        for (channel, queue), series in self._series.by_key.items():
            waiting = series.waiting
            if not waiting or waiting[0] >= cutoff:
                continue
            expired = series.expire_waiting(cutoff)
            self._quality.expired += expired
            self.version += 1
            self._contacts.mark_expired(channel, queue, cutoff)
        contacts = self._contacts
        closed, opened = contacts.closed_order, contacts.open_order
        # Strictly after an open contact's deadline: it expires when it has waited longer than max_wait.
        if (closed and closed[0][0] <= now) or (opened and opened[0][0] < now):
            self.version += contacts.forget(now)
        self._staff.housekeep(now)
        minute = int(now // PRUNE_EVERY_SECONDS)
        if minute != self._pruned_minute:
            self._pruned_minute = minute
            self._series.prune(now)
            self._staff.fold(now)

    # ---- reading ------------------------------------------------------------------------------

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
    ) -> Snapshot:
        """KPIs per channel, per queue and per channel total, unrounded (snapshot_json rounds them)."""
        self.housekeep(now)
        config = self.config
        reading = Reading(
            window,
            now,
            self._window_hours(window, now),
            self.today_bounds(now),
            config.fcr_goal_pct,
            config.warning_margin_pct,
        )
        channels = assemble(self._series, self.targets, reading, channel, queue)
        return Snapshot(window, now, config.time_zone, channels, self._quality.copy())

    def staff(self, window: WindowName, now: float) -> StaffSnapshot:
        """Agents (phone) and desks (visit) per queue and in total: states now, seconds over the window."""
        self.housekeep(now)
        return self._staff.snapshot(window, now, self.today_bounds(now)[0])

    def open_memberships(self, channel: Channel, source: str, began_before: float) -> list[tuple[str, str]]:
        """(subject, queue) of each agent or desk membership from `source` that began before the time and
        is still open, with no staff event of that subject in that queue after it (sorted): what a restart
        of that source (Asterisk's QUEUESTART) ended."""
        return self._staff.open_memberships(channel, source, began_before)

    def member_queues(self, channel: Channel, subject: str) -> tuple[str, ...]:
        """Every queue the agent or desk has had a membership in or served a contact in, as far as the
        window remembers (two days), open or not, sorted."""
        return self._staff.member_queues(channel, subject)

    def staff_members(self, now: float) -> list[AgentState]:
        """Each agent's and desk's state now (per-person: shown only with QUEUEPULSE_PER_AGENT_FIGURES)."""
        self.housekeep(now)
        return self._staff.members(now)

    @property
    def data_quality(self) -> dict[str, int]:
        """The data-quality counters as they stand (a copy)."""
        return self._quality.as_dict()

    def intervals(self, channel: Channel, queue: str | None, day: date) -> list[tuple[int, Tally]]:
        """Tallies per 15-minute interval of a local day, for one queue or the channel total."""
        result = []
        day_start, day_end = day_bounds(day, self.tz)
        for start in range(int(day_start), int(day_end), INTERVAL_SECONDS):
            total = Tally()
            for (series_channel, name), series in self._series.by_key.items():
                if series_channel is channel and (queue is None or name == queue):
                    tally = series.intervals.get(start)
                    if tally is not None:
                        total.add(tally)
            result.append((start, total))
        return result

    def interval_figures(
        self, channel: Channel, queue: str | None, day: date, now: float
    ) -> list[IntervalFigures]:
        """KPIs per 15-minute interval of a local day up to the one holding `now`, for one queue or the
        channel total. The interval in progress also counts the contacts waiting past the threshold
        right now, as the live service level does."""
        waiting_past_now = 0
        if day == local_date(now, self.tz):
            live = self.snapshot("15m", now, channel, queue).channels[channel.value]
            scope = live.total if queue is None else live.queues.get(queue)
            waiting_past_now = 0 if scope is None else scope.waiting_past_target
        current = interval_start(now)
        target = self.targets(channel, queue)
        config = self.config
        result = []
        for start, tally in self.intervals(channel, queue, day):
            if start > current:
                break
            kpis = figures(
                tally,
                target,
                waiting_now=0,
                waiting_past_threshold=waiting_past_now if start == current else 0,
                longest_wait_now=None,
                window_hours=INTERVAL_SECONDS / 3600,
                fcr_goal_pct=config.fcr_goal_pct,
                warning_margin_pct=config.warning_margin_pct,
            )
            result.append(IntervalFigures(start, start == current, kpis))
        return result

    def queues(self) -> list[QueueKey]:
        """Every (channel, queue) the window holds, sorted."""
        return sorted(self._series.by_key)

    def queues_seen(self) -> list[QueueKey]:
        """Every (channel, queue) the window holds, in the order first seen (replay keeps it)."""
        return list(self._series.by_key)

    def has_queue(self, channel: Channel, queue: str) -> bool:
        return (channel, queue) in self._series.by_key

    def waiting_now(self, channel: Channel, queue: str) -> int:
        """Contacts waiting in the queue now (as of the last event or read)."""
        series = self._series.by_key.get((channel, queue))
        return 0 if series is None else len(series.waiting)

    def lifetime_counts(self, channel: Channel, queue: str) -> LifetimeCounts:
        """What this process counted in the queue since it started (a copy); zeros for an unknown queue."""
        series = self._series.by_key.get((channel, queue))
        if series is None:
            return LifetimeCounts(Tally(), {})
        tally = Tally()
        tally.add(series.lifetime)
        return LifetimeCounts(tally, dict(series.lifetime_waits))

    def recent_calls(self) -> list[RecentCall]:
        """The tickets called most recently, newest first (at most RECENT_CALLS_KEPT)."""
        return list(self._contacts.recent_calls)

    def open_contacts(self, channel: Channel, source: str, arrived_before: float) -> list[tuple[str, str]]:
        """(contact id, queue of arrival) of each contact from `source` that arrived before the given
        time and is still waiting or in service, with no step after that time: what a restart of that
        source ended. Scans every contact, which is fine for an event as rare as a restart."""
        return self._contacts.open_contacts(channel, source, arrived_before)

    def over_by(self, channel: Channel, contact_id: str, at: float) -> bool:
        """Whether this window knows the contact to be over (or to go on after `at`): a restart at `at`
        has nothing of it to end."""
        return self._contacts.over_by(channel, contact_id, at)

    # ---- rollup -------------------------------------------------------------------------------

    def take_dirty(self, now: float | None = None) -> set[tuple[Channel, str, int]]:
        """The (channel, queue, interval start) tallies changed since the last call, and forget them.

        With staff logged in, time alone changes the interval in progress (its staffed seconds grow), so
        it is taken at every call, as of `now` (default: the latest time the window saw)."""
        taken = self._series.take_dirty()
        if self._carried_dirty:
            taken |= self._carried_dirty
            self._carried_dirty = set()
        if self._staff.subjects:
            taken |= self._staff.take_dirty(self._staff.now if now is None else now)
        return taken

    def interval_tally(self, channel: Channel, queue: str, start: int) -> Tally | None:
        """One queue's tally of one 15-minute interval, if the window still holds it; with the staff
        seconds of the interval (up to the latest time seen, for the one in progress) in a copy."""
        series = self._series.by_key.get((channel, queue))
        tally = None if series is None else series.intervals.get(start)
        staff = self._staff
        if (channel, queue) not in staff.known:
            return tally
        return staff.with_seconds(tally, channel, queue, start, staff.now)

    def interval_tallies(
        self, since: float, until: float, now: float | None = None
    ) -> list[tuple[Channel, str, int, Tally]]:
        """Every queue's non-empty interval tallies starting in [since, until), staff seconds counted up
        to `now` (default: the latest time the window saw)."""
        staff = self._staff
        upto = staff.now if now is None else now
        found = {
            (channel, queue, start): tally
            for (channel, queue), series in self._series.by_key.items()
            for start, tally in series.intervals.items()
            if since <= start < until
        }
        for channel, queue in staff.known:
            for start in range(interval_start(since), int(min(until, upto)) + 1, INTERVAL_SECONDS):
                if since <= start < until:
                    key = (channel, queue, start)
                    found[key] = staff.with_seconds(found.get(key), channel, queue, start, upto)
        return [
            (channel, queue, start, tally)
            for (channel, queue, start), tally in sorted(found.items())
            if not tally.is_empty()
        ]

    # ---- rebuild ------------------------------------------------------------------------------

    def start_lifetime_counts(self) -> None:
        """Zero every queue's lifetime counts, so they count only what happens from now on.

        For the window replayed at start-up: the process before the restart already counted the replayed
        outcomes in the Prometheus counters, which see this process's counts start again from zero (a
        counter reset), so counting them here as well would add them to every range holding the restart.
        """
        self._series.start_lifetime_counts()

    def adopt(self, rebuilt: Window) -> None:
        """Take over the state of a window rebuilt by replay, keeping this object and its target lookup.

        Readers and the writer hold this object, so a rebuild swaps its parts rather than the object;
        the version only ever grows, so caches keyed on it never serve the old figures.
        """
        # The lifetime counts are what this process saw happen: the replay only recounts outcomes that
        # were already counted (by this process, or by the one before a restart), so a queue keeps its
        # counts across the swap, and one this window never had starts from nothing.
        rebuilt._series.keep_lifetime_of(self._series)
        # What the old state changed since the rollup writer's last read must still reach the rollup: an
        # interval the replay no longer holds (yesterday's, late) is then rebuilt from the database there.
        self._carried_dirty = self.take_dirty() | rebuilt.take_dirty()
        self.config, self.tz = rebuilt.config, rebuilt.tz
        self._series, self._quality, self._contacts = rebuilt._series, rebuilt._quality, rebuilt._contacts
        self._staff = rebuilt._staff
        self._contacts.targets = self.targets
        self._pruned_minute = rebuilt._pruned_minute
        self._next_housekeep = rebuilt._next_housekeep
        self._today = rebuilt._today
        self.version += rebuilt.version + 1
        self.generation += 1

    # ---- retired queues -----------------------------------------------------------------------

    def drop_queue(self, channel: Channel, queue: str) -> bool:
        """Forget a queue an admin retired: its series and every contact with a step in it.

        The contacts go too, so that no later step or housekeeping of theirs brings the series back (ingest
        refuses the queue's new events). True when the window held the queue.
        """
        held = self._series.drop(channel, queue)
        self._contacts.drop_queue(channel, queue)
        self._staff.drop_queue(channel, queue)
        self.version += 1
        return held
