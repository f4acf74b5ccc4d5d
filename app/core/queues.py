"""The queue registry: which queues the service tracks, who admitted each, and which an admin retired.

A queue counts against the caps (QUEUEPULSE_MAX_QUEUES for all, QUEUEPULSE_MAX_QUEUES_PER_SOURCE for the
ingest token that admitted it) from the moment a request asks for it until that request ends: held while
its events are in flight, admitted once they commit, released if they do not. So concurrent requests never
take more than the caps allow, and a refused or failed request leaves nothing behind. Pure: the database
side is app/db/queues.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from app.core.events import EVENT_SPECS, Channel, Event

QueueKey = tuple[Channel, str]

# Distinct refused queues remembered for queuepulse_queues_not_exported; junk names must not grow memory
# without end, so the count stops there (the README says so).
REFUSED_KEPT = 10_000


class QueueHolder(Protocol):
    """What hide_retired needs of a window: its generation, which queues it holds, a way to drop one."""

    @property
    def generation(self) -> int: ...

    def has_queue(self, channel: Channel, queue: str) -> bool: ...

    def drop_queue(self, channel: Channel, queue: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why one event's queue was not admitted; `label` is the caller's index for the event."""

    label: int | None
    key: QueueKey
    reason: str
    message: str


@dataclass(slots=True)
class Reservation:
    """The queues one request holds while its events are in flight."""

    source: str
    keys: tuple[QueueKey, ...]


@dataclass
class QueueRegistry:
    # Admitted and in force: queue -> the ingest token that admitted it (None: before tokens had names).
    admitted: dict[QueueKey, str | None] = field(default_factory=dict)
    # Retired by an admin: refused at ingest, left out of every figure; who admitted it is kept.
    retired: dict[QueueKey, str | None] = field(default_factory=dict)
    # Admitted here but not yet written to the queues table (app/api/queues.py writes them).
    unsaved: dict[QueueKey, str | None] = field(default_factory=dict)
    # Distinct queues refused by a cap since start-up and not admitted since, up to REFUSED_KEPT.
    refused: set[QueueKey] = field(default_factory=set)
    _held: dict[QueueKey, Counter[str]] = field(default_factory=dict)
    # Per source: queues it admitted plus queues it holds in flight.
    _charged: Counter[str] = field(default_factory=Counter)
    # The window generation last cleared of retired queues (see hide_retired); -1: none yet.
    _cleared: int = -1

    def load(
        self,
        admitted: Iterable[tuple[QueueKey, str | None]],
        retired: Iterable[tuple[QueueKey, str | None]],
    ) -> None:
        """Replace what is known with the stored registry (at start-up, before any request)."""
        self.admitted = dict(admitted)
        self.retired = dict(retired)
        for key in self.retired:
            self.admitted.pop(key, None)
        self._charged = Counter(source for source in self.admitted.values() if source is not None)
        for holders in self._held.values():
            for source in holders:
                self._charged[source] += 1

    def in_force(self) -> int:
        """Queues counted against QUEUEPULSE_MAX_QUEUES now: admitted plus held by requests in flight."""
        return len(self.admitted) + sum(1 for key in self._held if key not in self.admitted)

    def charged(self, source: str) -> int:
        return self._charged[source]

    def reserve(
        self,
        events: Sequence[Event],
        labels: Sequence[int | None],
        source: str,
        max_queues: int,
        max_per_source: int,
    ) -> tuple[list[Refusal], Reservation | None]:
        """Hold the new queues of a request's events, or say which events' queues cannot be admitted.

        All or nothing: with any refusal nothing is held. Refusals in order of precedence: a retired queue,
        the source's own cap, then the cap for all.
        """
        admitted = self.admitted
        # Nearly always every queue is admitted already: a batch's few distinct (type, queue) pairs say so
        # without a lookup per event.
        pairs = {(event.type, event.queue) for event in events}
        if all((EVENT_SPECS[event_type].channel, queue) in admitted for event_type, queue in pairs):
            return [], None
        wanted: list[QueueKey] = []
        refusals: list[Refusal] = []
        total = self.in_force()
        mine = self._charged[source]
        for label, event in zip(labels, events, strict=True):
            key = (EVENT_SPECS[event.type].channel, event.queue)
            if key in admitted or key in wanted:
                continue
            refusal = self._refusal(key, label, source, total, mine, max_queues, max_per_source)
            if refusal is not None:
                refusals.append(refusal)
                continue
            wanted.append(key)
            holders = self._held.get(key)
            if holders is None or source not in holders:
                mine += 1
            if holders is None:
                total += 1
        if refusals:
            for refusal in refusals:
                if refusal.reason != "retired" and len(self.refused) < REFUSED_KEPT:
                    self.refused.add(refusal.key)
            return refusals, None
        if not wanted:
            return [], None
        for key in wanted:
            holders = self._held.setdefault(key, Counter())
            if not holders[source]:
                self._charged[source] += 1
            holders[source] += 1
        return [], Reservation(source, tuple(wanted))

    def _refusal(
        self,
        key: QueueKey,
        label: int | None,
        source: str,
        total: int,
        mine: int,
        max_queues: int,
        max_per_source: int,
    ) -> Refusal | None:
        channel, queue = key
        if key in self.retired:
            return Refusal(
                label,
                key,
                "retired",
                f"{queue!r} is retired; an admin can restore it: queuepulse queues restore {channel}/{queue}",
            )
        holders = self._held.get(key)
        joins = holders is not None and source in holders
        if not joins and mine >= max_per_source:
            return Refusal(
                label,
                key,
                "source_cap",
                f"at most {max_queues_text(max_per_source)} per ingest source; the source {source!r} has "
                f"them all and {queue!r} would be one more",
            )
        if holders is None and total >= max_queues:
            return Refusal(
                label,
                key,
                "cap",
                f"at most {max_queues} distinct queues are tracked; {queue!r} would be one more",
            )
        return None

    def commit(self, reservation: Reservation | None) -> None:
        """The reservation's events are committed: its queues are admitted (by its source, if new)."""
        if reservation is None:
            return
        for key in reservation.keys:
            self._let_go(key, reservation.source)
            if key not in self.admitted and key not in self.retired:
                self.admitted[key] = reservation.source
                self.unsaved[key] = reservation.source
                self._charged[reservation.source] += 1
                self.refused.discard(key)

    def release(self, reservation: Reservation | None) -> None:
        """The reservation's events were not stored: its queues are free again."""
        if reservation is None:
            return
        for key in reservation.keys:
            self._let_go(key, reservation.source)

    def _let_go(self, key: QueueKey, source: str) -> None:
        holders = self._held[key]
        holders[source] -= 1
        if holders[source] <= 0:
            del holders[source]
            self._charged[source] -= 1
        if not holders:
            del self._held[key]

    def admit_unregistered(self, keys: Iterable[QueueKey]) -> list[QueueKey]:
        """Admit queues the store holds events of but the registry lost (admitted_by unknown)."""
        added = [key for key in keys if key not in self.admitted and key not in self.retired]
        for key in added:
            self.admitted[key] = None
            self.unsaved[key] = None
        return added

    def retire(self, key: QueueKey) -> None:
        source = self.admitted.pop(key, None)
        if key not in self.retired:
            self.retired[key] = source
            if source is not None:
                self._charged[source] -= 1
        self.unsaved.pop(key, None)
        self._cleared = -1

    def restore(self, key: QueueKey) -> None:
        if key not in self.retired:
            return
        source = self.retired.pop(key)
        self.admitted[key] = source
        if source is not None:
            self._charged[source] += 1

    def hide_retired(self, window: QueueHolder) -> None:
        """Drop the retired queues from a window replaced (by a replay) since the last call.

        Replays leave retired queues' events out, but one that read the store just before a retirement was
        written may still bring a queue back; a check of the generation number per request catches it.
        """
        generation = window.generation
        if generation == self._cleared:
            return
        for channel, queue in list(self.retired):
            if window.has_queue(channel, queue):
                window.drop_queue(channel, queue)
        self._cleared = generation


def max_queues_text(count: int) -> str:
    return f"{count} distinct queue" if count == 1 else f"{count} distinct queues"
