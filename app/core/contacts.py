"""The contact lifecycle: events to outcomes.

Each contact's steps (arrive, start, leave, finish, clear) may come in any order and more than once;
an outcome is counted once, as soon as every fact it needs is known, at the time it happened and in the
queue named by the event that carries it. Contacts are forgotten a while after they close, or judged
(expired, orphan, unfinished) max_wait after they were first seen.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from app.core.config import TargetLookup, WindowConfig
from app.core.events import (
    TRANSFER_TYPES,
    UNSERVED_FINISH_TYPES,
    Channel,
    Event,
)
from app.core.kpis import wait_bin
from app.core.series import SeriesBook
from app.core.snapshot import DataQuality, RecentCall

RECENT_CALLS_KEPT = 50

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
class Contact:
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


class Contacts:
    """The contacts still open or recently closed, and the steps that count their outcomes."""

    def __init__(
        self, config: WindowConfig, targets: TargetLookup, book: SeriesBook, quality: DataQuality
    ) -> None:
        self.config = config
        self.targets = targets
        self.quality = quality
        self.by_key: dict[ContactKey, Contact] = {}
        self.recent_calls: deque[RecentCall] = deque(maxlen=RECENT_CALLS_KEPT)
        # (deadline, key) in the order contacts closed or were first seen: when each is forgotten.
        self.closed_order: deque[tuple[float, ContactKey]] = deque()
        self.open_order: deque[tuple[float, ContactKey]] = deque()
        # Bound once: these run for every outcome, and an attribute holding the bound method is the
        # cheapest call there is.
        self._series = book.get
        self._tallies = book.tallies

    def arrive(self, contact: Contact, event: Event, now: float) -> None:
        if contact.source is None:
            contact.source = event.source
        if contact.arrived_at is not None:
            self.quality.duplicates += 1
            return
        if contact.start or contact.leave or contact.finish:
            self.quality.out_of_order += 1
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
        if contact.cleared is not None:
            return  # cleared before its arrival came: not waiting either
        contact.waiting_since = event.at
        series.add_waiting(event.at)

    def _stop_waiting(self, contact: Contact) -> None:
        if contact.waiting_since is not None and contact.arrive_queue is not None:
            self._series(contact.channel, contact.arrive_queue).remove_waiting(contact.waiting_since)
            contact.waiting_since = None

    def start(self, contact: Contact, event: Event) -> None:
        if contact.start is not None:
            self.quality.duplicates += 1
            return
        if contact.finish is not None:
            self.quality.out_of_order += 1
        contact.start = (event.at, event.queue, event.wait_seconds)
        self._stop_waiting(contact)
        if event.type == "ticket.called":
            self.recent_calls.appendleft(
                RecentCall(event.ticket_number or contact.ticket_number, event.desk, event.queue, event.at)
            )

    def leave(self, contact: Contact, event: Event) -> None:
        if contact.leave is not None:
            self.quality.duplicates += 1
            return
        contact.leave = (event.at, event.queue, event.wait_seconds)
        self._stop_waiting(contact)

    def finish(self, contact: Contact, event: Event) -> None:
        if contact.finish is not None:
            self.quality.duplicates += 1
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

    def clear(self, contact: Contact, event: Event) -> None:
        """End the contact's wait, or its unfinished service, without counting an outcome."""
        if contact.cleared is not None:
            self.quality.duplicates += 1
            return
        ended_already = self._is_complete(contact)
        contact.cleared = event.at
        if ended_already:
            return
        self._stop_waiting(contact)
        self.quality.cleared += 1

    def _wait(self, contact: Contact, at: float, reported: float | None) -> float | None:
        if reported is not None:
            return reported
        if contact.arrived_at is None:
            return None
        wait = at - contact.arrived_at
        if wait < 0:
            self.quality.negative_waits += 1
            return 0.0
        return wait

    def settle(self, contact: Contact, key: ContactKey, now: float) -> None:
        """Count every outcome whose facts are now all known, each exactly once whatever the order; close
        the contact once it is complete (the test of _is_complete, inline: this runs for every event)."""
        start, leave, finish = contact.start, contact.leave, contact.finish
        if start is not None and not contact.start_counted:
            start_at, start_queue, reported = start
            wait = self._wait(contact, start_at, reported)
            if wait is not None:
                contact.start_counted = True
                within = wait <= self.targets(contact.channel, start_queue).threshold_seconds
                wait_key = wait_bin(wait)
                series = self._series(contact.channel, start_queue)
                for tally in self._tallies(series, start_at):
                    tally.add_start(wait, within, wait_key)
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
        if (
            not contact.closed
            and contact.arrived_at is not None
            and (
                contact.leave is not None
                or contact.cleared is not None
                or (contact.start is not None and contact.finish is not None)
            )
        ):
            contact.closed = True
            self.closed_order.append((now + self.config.closed_retention_seconds, key))

    @staticmethod
    def _is_complete(contact: Contact) -> bool:
        if contact.arrived_at is None:
            return False
        if contact.leave is not None or contact.cleared is not None:
            return True
        return contact.start is not None and contact.finish is not None

    # ---- time passing -------------------------------------------------------------------------

    def mark_expired(self, channel: Channel, queue: str, cutoff: float) -> None:
        """The queue's waits that began before `cutoff` were dropped from waiting now: mark their contacts."""
        for contact in self.by_key.values():
            if (
                contact.channel is channel
                and contact.arrive_queue == queue
                and contact.waiting_since is not None
                and contact.waiting_since < cutoff
            ):
                contact.waiting_since = None
                contact.expired = True

    def forget(self, now: float) -> int:
        """Forget contacts closed long enough ago, and judge those open since max_wait; how many were."""
        judged = 0
        while self.closed_order and self.closed_order[0][0] <= now:
            _, key = self.closed_order.popleft()
            closed = self.by_key.get(key)
            if closed is not None and closed.closed:
                del self.by_key[key]
        # Strictly after the deadline: a contact expires when it has waited longer than max_wait, not as long.
        while self.open_order and self.open_order[0][0] < now:
            _, key = self.open_order.popleft()
            stale = self.by_key.get(key)
            if stale is None or stale.closed:
                continue
            self._forget_open(stale)
            del self.by_key[key]
            judged += 1
        return judged

    def _forget_open(self, contact: Contact) -> None:
        """Judge a contact still open when it is forgotten: max_wait after its first event was received.

        By then the feed has had time to send every step, in any order, so the verdict rests on what the
        contact did and not on which of its events came first.
        """
        if contact.waiting_since is not None:
            self._stop_waiting(contact)
            self.quality.expired += 1
        elif contact.arrived_at is None:
            self.quality.orphans += 1
        elif contact.expired:
            pass  # already counted when it left "waiting now"
        elif contact.start or contact.leave or contact.finish:
            self.quality.unfinished += 1
        else:
            # Received already older than max_wait and nothing came after: a lost hang-up after all.
            self.quality.expired += 1

    # ---- reading ------------------------------------------------------------------------------

    def open_contacts(self, channel: Channel, source: str, arrived_before: float) -> list[tuple[str, str]]:
        return sorted(
            (contact_id, contact.arrive_queue)
            for (_, contact_id), contact in self.by_key.items()
            if contact.channel is channel
            and contact.source == source
            and contact.arrive_queue is not None
            and contact.arrived_at is not None
            and contact.arrived_at < arrived_before
            and self._open_at(contact, arrived_before)
        )

    def over_by(self, channel: Channel, contact_id: str, at: float) -> bool:
        contact = self.by_key.get((str(channel.value), contact_id))
        return contact is not None and not self._open_at(contact, at)

    @staticmethod
    def _open_at(contact: Contact, at: float) -> bool:
        # A finish ends the call even with its start missing (the log began mid-call).
        return (
            not contact.closed
            and not contact.expired
            and contact.finish is None
            and (contact.start is None or contact.start[0] <= at)
        )

    # ---- retired queues -----------------------------------------------------------------------

    def drop_queue(self, channel: Channel, queue: str) -> None:
        """Forget every contact with a step in the queue, and its recent calls."""

        def in_queue(contact: Contact) -> bool:
            if contact.channel is not channel:
                return False
            queues = [step[1] for step in (contact.start, contact.leave, contact.finish) if step is not None]
            return contact.arrive_queue == queue or queue in queues

        for key in [key for key, contact in self.by_key.items() if in_queue(contact)]:
            del self.by_key[key]
        if channel is Channel.VISIT:
            kept = [call for call in self.recent_calls if call.queue != queue]
            self.recent_calls.clear()
            self.recent_calls.extend(kept)
