"""Which visit of a channel to a queue each queue_log line belongs to, and what a restart cleared. Pure.

Asterisk writes one ENTERQUEUE per visit: a caller transferred back into the queue, or sent on by a
timeout and routed back, enters the same queue again with the same uniqueid. The first visit is the
contact `uniqueid@queue`, each later one `uniqueid@queue#N` (N = 2, 3, ...). Any other line belongs to
the latest visit (by ENTERQUEUE time, then N) of its uniqueid in that queue that entered at or before the
line's time, among the visits already stored and those earlier in the same request. A line that was
stored before keeps the contact it was stored with, so a re-sent line always makes the same event.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from app.asterisk.parser import CONTACT_ID_MAX, SOURCE, Restart, cleared_event_id
from app.core.events import Event

VISIT_SEPARATOR = "#"
ARRIVAL_TYPE = "call.offered"
CLEARED_TYPE = "call.cleared"
# Lines after which a contact is over in Asterisk: its outcome is known, a restart has nothing to end.
ENDING_TYPES = frozenset({"call.abandoned", "call.ended", "call.transferred", CLEARED_TYPE})


class LiveContacts(Protocol):
    """What the live window knows of the Asterisk contacts, for what a restart at a time ended."""

    def open_before(self, at: float) -> Sequence[tuple[str, str]]:
        """(contact id, queue of arrival) of the contacts open at `at` that arrived before it."""
        ...

    def over_by(self, contact_id: str, at: float) -> bool:
        """Whether the contact is known to be over at `at`, or to go on after it."""
        ...


def visit_contact_id(base: str, number: int) -> str:
    return base if number == 1 else f"{base}{VISIT_SEPARATOR}{number}"


def visit_number(base: str, contact_id: str) -> int | None:
    """N of `base#N` (1 for `base` itself); None for an id that is no visit of `base`."""
    if contact_id == base:
        return 1
    prefix = base + VISIT_SEPARATOR
    suffix = contact_id[len(prefix) :]
    if not contact_id.startswith(prefix) or not suffix.isascii() or not suffix.isdigit():
        return None
    number = int(suffix)
    return number if number >= 2 and suffix == str(number) else None


@dataclass(frozen=True, slots=True)
class Stored:
    """What the store already holds for one request's lines."""

    # base -> [(contact id, ENTERQUEUE time)] of the stored arrivals of that uniqueid in that queue.
    arrivals: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    # event id -> contact id of the request's lines that are stored already.
    contacts: dict[str, str] = field(default_factory=dict)


@dataclass
class _Local:
    """A contact as the lines of this request left it, for what a restart in the same request ends."""

    queue: str
    arrived_at: float | None = None
    ended: bool = False


@dataclass
class Resolution:
    events: list[tuple[int, Event]] = field(default_factory=list)
    # (line number, reason) of lines whose event could not be given a contact.
    errors: list[tuple[int, str]] = field(default_factory=list)


class _Visits:
    def __init__(self, stored: Stored) -> None:
        self._assigned = dict(stored.contacts)
        # base -> sorted [(ENTERQUEUE time, N)]
        self._visits: dict[str, list[tuple[float, int]]] = {}
        for base, arrivals in stored.arrivals.items():
            for contact_id, at in arrivals:
                number = visit_number(base, contact_id)
                if number is not None:
                    bisect.insort(self._visits.setdefault(base, []), (at, number))

    def contact_of(self, event: Event) -> str:
        """The contact id of the line's event; `event.contact_id` is the line's `uniqueid@queue`."""
        assigned = self._assigned.get(event.event_id)
        if assigned is not None:
            return assigned
        base = event.contact_id
        visits = self._visits.setdefault(base, [])
        if event.type == ARRIVAL_TYPE:
            number = 1 + max((n for _, n in visits), default=0)
            bisect.insort(visits, (event.at, number))
        else:
            # The latest visit entered at or before the line; none (the log begins mid-call): the first.
            index = bisect.bisect_right(visits, (event.at, float("inf")))
            number = visits[index - 1][1] if index else 1
        contact_id = visit_contact_id(base, number)
        self._assigned[event.event_id] = contact_id
        return contact_id


def resolve(lines: Sequence[tuple[int, Event | Restart]], stored: Stored, live: LiveContacts) -> Resolution:
    """Give each line's event its visit's contact id, and turn each restart into clears.

    `lines` are in the order of the request. A restart clears every Asterisk contact still open that
    arrived before it: those the window holds open and those the request's earlier lines opened, less
    those the request's earlier lines or the window know to be over, and those with a line after it or
    dated after it (a call Asterisk still writes about was not cut off). The same lines sent again, in
    one request or split, then clear the same contacts once the first clears are stored.
    """
    visits = _Visits(stored)
    result = Resolution()
    numbered: list[tuple[int, Event | Restart]] = []
    # Per contact: its last line in the request, and the latest time on its lines.
    last_line: dict[str, tuple[int, float]] = {}
    for number, item in lines:
        if isinstance(item, Event):
            contact_id = visits.contact_of(item)
            if len(contact_id) > CONTACT_ID_MAX:
                visit = contact_id.rpartition(VISIT_SEPARATOR)[2]
                result.errors.append((number, f"uniqueid: too long to number visit {visit}"))
                continue
            item.contact_id = contact_id
            latest = last_line.get(contact_id, (number, item.at))[1]
            last_line[contact_id] = (number, max(latest, item.at))
        numbered.append((number, item))
    local: dict[str, _Local] = {}
    for number, item in numbered:
        if isinstance(item, Restart):
            for contact_id, queue in _open_at(item.at, local, live):
                line, at = last_line.get(contact_id, (number, item.at))
                if line <= number and at <= item.at:
                    result.events.append((number, _cleared(item, contact_id, queue)))
                    local[contact_id] = _Local(queue, ended=True)
            continue
        state = local.setdefault(item.contact_id, _Local(item.queue))
        if item.type == ARRIVAL_TYPE and state.arrived_at is None:
            state.queue, state.arrived_at = item.queue, item.at
        elif item.type in ENDING_TYPES:
            state.ended = True
        result.events.append((number, item))
    return result


def _open_at(at: float, local: dict[str, _Local], live: LiveContacts) -> list[tuple[str, str]]:
    candidates = dict(live.open_before(at))
    for contact_id, state in local.items():
        if state.ended:
            candidates.pop(contact_id, None)
        elif state.arrived_at is not None and state.arrived_at < at and not live.over_by(contact_id, at):
            candidates[contact_id] = state.queue
    return sorted(candidates.items())


def _cleared(restart: Restart, contact_id: str, queue: str) -> Event:
    return Event(
        event_id=cleared_event_id(restart.line_id, contact_id),
        type=CLEARED_TYPE,
        contact_id=contact_id,
        queue=queue,
        at=restart.at,
        source=SOURCE,
    )
