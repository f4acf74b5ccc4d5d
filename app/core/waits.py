"""What a citizen can expect to wait in the lobby, and how well that estimate has kept its word.

The estimator (per visit queue, for a ticket issued now):

- Queue length (the estimator research on delay announcements found best when its model holds): with
  `ahead` tickets waiting before this one, `desks` open and `serving` tickets at them, the ticket waits
  for the `ahead + 1 - free` services to end, where `free = max(0, desks - serving)`, each end coming at
  rate desks / mean service time: wait = (ahead + 1 - free) x mean service / desks, and 0 when a desk is
  free for it. With every desk busy (the usual lobby) that is (ahead + 1) x mean service / desks. The
  mean service time is that of the tickets completed in the last hour (called to completed), at least
  MIN_SERVICES of them.
- Fallback, when the desks are unknown (no desk.opened/desk.closed seen for the queue, or none open while
  tickets are still called) or the mean service time rests on too few: the recent throughput, the
  tickets called in the last hour: wait = (ahead + 1) / (called per second), at least MIN_CALLED of them.
- Neither: no estimate, and the reason.

The estimate is shown as a range: under 5, 5-10, 10-20 or over 20 minutes.

The estimate "given" to a ticket is the one in force when it was issued: the estimator's answer at the
issue time, from the events that came before it. It is scored when the ticket is called: the actual
wait (the wait its source reported, else called minus issued) inside the announced range or not, and
the absolute error against the estimate in seconds. A cancelled ticket is counted as left, not scored;
a ticket never called drops out after max_wait. The ledger is fed the visit events in the order the
window is, so replaying the stored events rebuilds the same estimates and the same score after a
restart.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from app.core.events import Event

RangeName = Literal["under_5", "5_10", "10_20", "over_20"]
# Upper bounds in seconds of each range but the last, which has none.
RANGES: tuple[tuple[RangeName, float, float | None], ...] = (
    ("under_5", 0.0, 300.0),
    ("5_10", 300.0, 600.0),
    ("10_20", 600.0, 1200.0),
    ("over_20", 1200.0, None),
)
Basis = Literal["queue_length", "throughput"]

# The last hour: long enough for a lobby's few dozen services, short enough to follow the day.
RECENT_SECONDS = 3600.0
# A mean of fewer service times swings by more than a range's width (services vary about as much as
# their mean: five give a standard error of about 45 %).
MIN_SERVICES = 5
MIN_CALLED = 5
# Pruning scans every waiting ticket; every ten minutes keeps that off the path of each event.
PRUNE_EVERY_SECONDS = 600.0

DESK_OPENED, DESK_CLOSED = "desk.opened", "desk.closed"
ISSUED, CALLED, CANCELLED = "ticket.issued", "ticket.called", "ticket.cancelled"
FINISHED = frozenset({"ticket.completed", "ticket.no_show"})
CLEARED = "ticket.cleared"


def wait_range(seconds: float) -> RangeName:
    """The announced range holding a wait (a negative one, as a source might report, is under 5)."""
    for name, _, high in RANGES:
        if high is not None and seconds < high:
            return name
    return "over_20"


@dataclass(frozen=True, slots=True)
class WaitEstimate:
    """The expected wait of a ticket issued now, or None and why."""

    range: RangeName | None
    seconds: float | None
    basis: Basis | None
    reason: str | None
    ahead: int
    desks: int | None
    serving: int
    mean_service_seconds: float | None
    called_last_hour: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "range": self.range,
            "minutes": None if self.seconds is None else round(self.seconds / 60, 1),
            "basis": self.basis,
            "reason": self.reason,
            "people_ahead": self.ahead,
            "desks_open": self.desks,
            "serving": self.serving,
            "mean_service_seconds": None
            if self.mean_service_seconds is None
            else round(self.mean_service_seconds, 1),
            "called_last_hour": self.called_last_hour,
        }


def estimate_wait(
    *,
    ahead: int,
    desks: int | None,
    serving: int,
    mean_service_seconds: float | None,
    services: int,
    called_last_hour: int,
    recent_seconds: float = RECENT_SECONDS,
) -> WaitEstimate:
    """The estimator of the module text, on figures already gathered."""
    seconds: float | None = None
    basis: Basis | None = None
    reason: str | None = None
    free = max(0, desks - serving) if desks else 0
    if desks and ahead + 1 <= free:
        # A desk is free for this ticket: no service has to end first, whatever its length.
        seconds, basis = 0.0, "queue_length"
    elif desks and mean_service_seconds is not None and services >= MIN_SERVICES:
        seconds = (ahead + 1 - free) * mean_service_seconds / desks
        basis = "queue_length"
    elif called_last_hour >= MIN_CALLED:
        seconds = (ahead + 1) * recent_seconds / called_last_hour
        basis = "throughput"
    else:
        reason = (
            f"{called_last_hour} tickets called and {services} completed in the last hour; an estimate "
            f"needs {MIN_SERVICES} completed with the desks known, or {MIN_CALLED} called"
        )
    return WaitEstimate(
        None if seconds is None else wait_range(seconds),
        seconds,
        basis,
        reason,
        ahead,
        desks,
        serving,
        mean_service_seconds,
        called_last_hour,
    )


# Given and Scored are not frozen, though nothing changes them once made: a frozen class with slots is
# pickled through dataclasses' Python-level __getstate__/__setstate__, one call per record, and the window
# checkpoint holds a day's records (app/db/checkpoint.py): that was two thirds of its encoding at a million
# events. Unfrozen, pickle copies their slots in C.
@dataclass(slots=True)
class Given:
    """The estimate a ticket was given when it was issued."""

    queue: str
    contact_id: str
    issued_at: float
    seconds: float
    range: RangeName
    basis: Basis


@dataclass(slots=True)
class Scored:
    """A given estimate against the wait the ticket then had."""

    given: Given
    called_at: float
    actual_seconds: float

    @property
    def inside(self) -> bool:
        return wait_range(self.actual_seconds) == self.given.range

    @property
    def error_seconds(self) -> float:
        return abs(self.actual_seconds - self.given.seconds)


@dataclass(slots=True)
class Score:
    """Additive: scored estimates, those whose actual wait fell inside the range, the errors' sum, and the
    tickets issued with no estimate (hidden) or cancelled after one (left)."""

    scored: int = 0
    inside: int = 0
    error_sum: float = 0.0
    hidden: int = 0
    left: int = 0

    def add(self, record: Scored) -> None:
        self.scored += 1
        self.inside += record.inside
        self.error_sum += record.error_seconds

    def merge(self, other: Score) -> None:
        self.scored += other.scored
        self.inside += other.inside
        self.error_sum += other.error_sum
        self.hidden += other.hidden
        self.left += other.left

    @property
    def inside_ratio(self) -> float | None:
        return self.inside / self.scored if self.scored else None

    @property
    def mean_abs_error_seconds(self) -> float | None:
        return self.error_sum / self.scored if self.scored else None

    def as_dict(self) -> dict[str, Any]:
        ratio, error = self.inside_ratio, self.mean_abs_error_seconds
        return {
            "scored": self.scored,
            "inside_range": self.inside,
            "inside_range_pct": None if ratio is None else round(ratio * 100, 1),
            "mean_abs_error_minutes": None if error is None else round(error / 60, 2),
            "hidden": self.hidden,
            "left": self.left,
        }


@dataclass(slots=True)
class CompletedServices:
    """The services completed lately, sorted by completion time, with running totals of their durations
    in whole microseconds: the count and mean over any span in two bisections, exactly. A busy lobby
    completes thousands an hour, and every ticket issued asks for the last hour's."""

    ends: list[float] = field(default_factory=list)
    # totals[i]: the durations of the services before ends[i], summed (one more entry than ends).
    totals: list[int] = field(default_factory=lambda: [0])

    def add(self, ended_at: float, seconds: float) -> None:
        micros = round(seconds * 1_000_000)
        if not self.ends or ended_at >= self.ends[-1]:
            self.ends.append(ended_at)
            self.totals.append(self.totals[-1] + micros)
            return
        # Out of order (rare): the totals after it grow by its duration.
        index = bisect.bisect_right(self.ends, ended_at)
        self.ends.insert(index, ended_at)
        self.totals[index + 1 :] = [
            self.totals[index] + micros,
            *(t + micros for t in self.totals[index + 1 :]),
        ]

    def within(self, since: float, until: float) -> tuple[int, float | None]:
        """How many ended in (since, until], and their mean duration in seconds (None for none)."""
        low = bisect.bisect_right(self.ends, since)
        high = bisect.bisect_right(self.ends, until)
        if high <= low:
            return 0, None
        return high - low, (self.totals[high] - self.totals[low]) / (high - low) / 1_000_000

    def forget_until(self, since: float) -> None:
        """Drop the services ended at or before `since` (the totals stay running sums: only differences
        are read)."""
        count = bisect.bisect_right(self.ends, since)
        del self.ends[:count]
        del self.totals[:count]


@dataclass(slots=True)
class _Queue:
    waiting: dict[str, float] = field(default_factory=dict)  # contact id -> issued at
    # The same issue times, sorted: the people ahead of a new ticket are counted by bisection.
    waiting_since: list[float] = field(default_factory=list)
    serving: dict[str, float] = field(default_factory=dict)  # contact id -> called at
    called: list[float] = field(default_factory=list)  # call times, sorted
    services: CompletedServices = field(default_factory=CompletedServices)
    desks: set[str] = field(default_factory=set)
    desks_known: bool = False

    def wait(self, contact: str, issued_at: float) -> None:
        self.waiting[contact] = issued_at
        bisect.insort(self.waiting_since, issued_at)

    def stop_waiting(self, contact: str) -> None:
        issued_at = self.waiting.pop(contact, None)
        if issued_at is not None:
            del self.waiting_since[bisect.bisect_left(self.waiting_since, issued_at)]

    def ahead(self, oldest: float, before: float | None) -> int:
        """Tickets waiting that were issued in [oldest, before] (no upper bound for None)."""
        high = len(self.waiting_since) if before is None else bisect.bisect_right(self.waiting_since, before)
        return max(0, high - bisect.bisect_left(self.waiting_since, oldest))

    def called_within(self, since: float, until: float) -> int:
        return max(0, bisect.bisect_right(self.called, until) - bisect.bisect_right(self.called, since))


class WaitLedger:
    """Per visit queue: who waits and is served, the desks open, and every estimate given and scored.

    Pure: fed events in the order they were stored, read with `now` passed in.
    Memory: the tickets waiting and in service, the last hour's calls and services, and the scored
    estimates of the last two days (older ones are in the store).
    """

    def __init__(self, max_wait_seconds: float) -> None:
        self.max_wait_seconds = max_wait_seconds
        self.queues: dict[str, _Queue] = {}
        self.given: dict[str, Given] = {}
        self.scored: list[Scored] = []
        self.hidden: dict[str, list[float]] = {}  # queue -> issue times of tickets given no estimate
        self.left: dict[str, list[float]] = {}  # queue -> issue times of tickets cancelled after one
        # Scored since the store last took them (see take_new).
        self._new: list[Scored] = []
        self.version = 0
        self._next_prune = 0.0
        self._latest = float("-inf")

    def _queue(self, name: str) -> _Queue:
        found = self.queues.get(name)
        if found is None:
            found = self.queues[name] = _Queue()
        return found

    def apply(self, event: Event) -> None:
        """One event. Pruning follows the latest event time seen, not the clock: a backfill of a past
        day keeps the calls and services its estimates were made from."""
        if event.at > self._latest:
            self._latest = event.at
            if event.at >= self._next_prune:
                self.prune(event.at)
        kind = event.type
        if kind in (DESK_OPENED, DESK_CLOSED):
            queue = self._queue(event.queue)
            queue.desks_known = True
            desk = event.desk or event.contact_id
            if kind == DESK_OPENED:
                queue.desks.add(desk)
            else:
                queue.desks.discard(desk)
            self.version += 1
            return
        if not kind.startswith("ticket."):
            return
        self.version += 1
        contact = event.contact_id
        if kind == ISSUED:
            self._issue(event)
        elif kind == CALLED:
            self._call(event)
        elif kind in (CANCELLED, CLEARED):
            for queue in self.queues.values():
                queue.stop_waiting(contact)
                if kind == CLEARED:
                    queue.serving.pop(contact, None)
            given = self.given.pop(contact, None)
            if given is not None and kind == CANCELLED:
                self.left.setdefault(given.queue, []).append(given.issued_at)
        elif kind in FINISHED:
            for queue in self.queues.values():
                queue.stop_waiting(contact)
                called_at = queue.serving.pop(contact, None)
                if called_at is not None and kind == "ticket.completed":
                    self._queue(event.queue).services.add(event.at, max(0.0, event.at - called_at))
            self.given.pop(contact, None)

    def apply_many(self, events: Iterable[Event]) -> None:
        for event in events:
            self.apply(event)

    def _issue(self, event: Event) -> None:
        queue = self._queue(event.queue)
        if event.contact_id in queue.waiting or event.contact_id in self.given:
            return
        estimate = self._estimate(event.queue, event.at, before=event.at)
        queue.wait(event.contact_id, event.at)
        if estimate.seconds is None or estimate.range is None or estimate.basis is None:
            self.hidden.setdefault(event.queue, []).append(event.at)
            return
        self.given[event.contact_id] = Given(
            event.queue, event.contact_id, event.at, estimate.seconds, estimate.range, estimate.basis
        )

    def _call(self, event: Event) -> None:
        contact = event.contact_id
        if any(contact in queue.serving for queue in self.queues.values()):
            return  # called again (a recall): one service, counted once in the throughput
        for queue in self.queues.values():
            queue.stop_waiting(contact)
        queue = self._queue(event.queue)
        queue.serving[contact] = event.at
        bisect.insort(queue.called, event.at)
        given = self.given.pop(contact, None)
        if given is None:
            return
        actual = event.wait_seconds if event.wait_seconds is not None else event.at - given.issued_at
        record = Scored(given, event.at, max(0.0, actual))
        self.scored.append(record)
        self._new.append(record)

    def _estimate(self, name: str, now: float, before: float | None = None) -> WaitEstimate:
        queue = self.queues.get(name) or _Queue()
        oldest = now - self.max_wait_seconds
        since = now - RECENT_SECONDS
        services, mean_service = queue.services.within(since, now)
        desks: int | None = len(queue.desks) if queue.desks_known else None
        return estimate_wait(
            ahead=queue.ahead(oldest, before),
            desks=desks,
            serving=min(len(queue.serving), desks or 0),
            mean_service_seconds=mean_service,
            services=services,
            called_last_hour=queue.called_within(since, now),
        )

    # ---- reading ------------------------------------------------------------------------------

    def estimate(self, queue: str, now: float) -> WaitEstimate:
        """The expected wait of a ticket issued in `queue` at `now`."""
        return self._estimate(queue, now)

    def queue_names(self) -> list[str]:
        return sorted(self.queues)

    def score(self, since: float, until: float) -> dict[str, Score]:
        """Per queue: estimates given to tickets issued in [since, until) and scored, hidden and left."""
        scores: dict[str, Score] = {}
        for record in self.scored:
            if since <= record.given.issued_at < until:
                scores.setdefault(record.given.queue, Score()).add(record)
        for name, times in self.hidden.items():
            scores.setdefault(name, Score()).hidden += sum(1 for at in times if since <= at < until)
        for name, times in self.left.items():
            scores.setdefault(name, Score()).left += sum(1 for at in times if since <= at < until)
        return scores

    def take_new(self) -> list[Scored]:
        """The estimates scored since the last call (for the store), and forget them."""
        taken, self._new = self._new, []
        return taken

    def give_back(self, records: list[Scored]) -> None:
        """Records take_new gave that could not be stored: they are taken again next time."""
        self._new = records + self._new

    def prune(self, now: float, keep_seconds: float = 2 * 25 * 3600.0) -> None:
        """Forget calls and services older than the last hour, waits past max_wait, old scores."""
        self._next_prune = now + PRUNE_EVERY_SECONDS
        since = now - RECENT_SECONDS
        oldest = now - self.max_wait_seconds
        for queue in self.queues.values():
            del queue.called[: bisect.bisect_right(queue.called, since)]
            queue.services.forget_until(since)
            for contact in [c for c, at in queue.waiting.items() if at < oldest]:
                queue.stop_waiting(contact)
                self.given.pop(contact, None)
            for contact in [c for c, at in queue.serving.items() if at < oldest]:
                del queue.serving[contact]
        kept = now - keep_seconds
        self.scored = [record for record in self.scored if record.given.issued_at >= kept]
        for times in (*self.hidden.values(), *self.left.values()):
            times[:] = [at for at in times if at >= kept]
