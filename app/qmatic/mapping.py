"""Qmatic Orchestra public events (the JSON its orchestra-events module posts to a webhook) mapped onto
queuepulse's ticket and desk events. Pure: what the store already holds is passed in.

A body is one serialised `QPEvent`: `eventName` (VISIT_CREATE, VISIT_CALL, SERVICE_POINT_OPEN, ...),
`eventTime`, `eventType`, `unitId` (the unit that raised it; for service-point events the service point)
and `parameters`, a map whose keys depend on the event (`visitId`, `branchId`, `queueId`, `queueName`,
`servicePointName`, `waitingTime`, `ticket`, ...).

The rules, each kept by the event ids (so a redelivered event is harmless, however often it comes):

- A visit is one contact, `qmatic-b<branchId>-v<visitId>`, with at most one arrival, one call and one
  outcome, whatever Orchestra does with it in between. Their ids are fixed per visit
  (`qmatic:b<branch>:v<visit>:issued|called|outcome`): the first of each that reaches the store is the
  one counted; the same Qmatic event again is a duplicate, and a different one for a slot already taken
  (a recall, a second call after a transfer or a recycle, a second end) is ignored and reported as such.
- VISIT_CREATE is `ticket.issued`; VISIT_CALL is `ticket.called` at the service point (the desk), with
  Qmatic's `waitingTime` as the wait; VISIT_END is `ticket.completed`; VISIT_NOSHOW is `ticket.no_show`;
  VISIT_REMOVE is `ticket.cancelled`, or `ticket.no_show` when the visit had been called (it was called
  and then not served: counting it as an abandonment too would count the visit twice).
- VISIT_RECYCLE and VISIT_TRANSFER_TO_QUEUE / _SERVICE_POINT_POOL / _USER_POOL move the visit inside
  Orchestra and count nothing here: the visit keeps the queue it arrived in, its wait is the one to its
  first call, and its outcome is its end. Qmatic's own statistics take the wait to the *last* call; for
  a recalled, recycled or transferred visit queuepulse's wait is therefore shorter by the time between
  the first call and the last (it shows a wait once, when the visit is first called, and does not take
  it back).
- Every event of a visit counts in the queue of its VISIT_CREATE when that is known (stored, or in the
  same request); else in the queue its own `queueId` names; an event naming neither is refused.
- Queues: `b<branchId>-q<queueId>` (Qmatic's queue ids are numbered per branch, and names change);
  ids are digits, letters, `_` or `-`, lower-cased. Desks: `b<branchId>-sp<servicePointId>`, the id
  from the `servicePointId` parameter when there is one, else `unitId`, the same rule for visit and
  service-point events. A desk counts in the branch's desk queue `b<branchId>` (a service point serves
  several queues, and Orchestra does not name them on its events).
- SERVICE_POINT_OPEN and USER_SERVICE_POINT_SESSION_START are `desk.opened` (the latter with the agent
  `qmatic-u<userId>`), SERVICE_POINT_CLOSE and USER_SERVICE_POINT_SESSION_END `desk.closed`, where the
  service knows desk events. Everything else (USER_SESSION_*, work profiles, appointments) is ignored.
- `eventTime` is ISO 8601; a time without an offset is read in the time zone the caller names.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

SOURCE = "qmatic"
MAX_WAIT_SECONDS = 86_400.0
TICKET_NUMBER_MAX = 32
# Ids Orchestra numbers (Long, Integer), or short text ids: safe in a queue slug and an event id.
_ID = re.compile(r"^[0-9A-Za-z_-]{1,20}$")
ID_LIMIT = 10**20
# Two readings of one Qmatic event give the same instant; anything further apart is another event.
SAME_INSTANT_SECONDS = 0.001

OPENING = frozenset({"SERVICE_POINT_OPEN", "USER_SERVICE_POINT_SESSION_START"})
CLOSING = frozenset({"SERVICE_POINT_CLOSE", "USER_SERVICE_POINT_SESSION_END"})
OUTCOMES = {
    "VISIT_END": "ticket.completed",
    "VISIT_NOSHOW": "ticket.no_show",
    "VISIT_REMOVE": "ticket.cancelled",
}
VISIT_EVENTS = frozenset({"VISIT_CREATE", "VISIT_CALL", *OUTCOMES})
# Moves inside Orchestra that count nothing here (see the module's rules).
MOVES = frozenset(
    {
        "VISIT_RECYCLE",
        "VISIT_TRANSFER_TO_QUEUE",
        "VISIT_TRANSFER_TO_SERVICE_POINT_POOL",
        "VISIT_TRANSFER_TO_USER_POOL",
    }
)


@dataclass(frozen=True, slots=True)
class QPEvent:
    """One Orchestra event as read from its JSON."""

    name: str
    at: float
    branch: str
    unit: str | None
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str


def ident(value: Any) -> str | None:
    """An Orchestra id as text fit for a slug, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 <= value < ID_LIMIT:
        return str(value)
    if isinstance(value, str) and _ID.match(value):
        return value.lower()
    return None


def queue_slug(branch: str, queue_id: str) -> str:
    return f"b{branch}-q{queue_id}"


def desk_queue(branch: str) -> str:
    return f"b{branch}"


def contact_id(branch: str, visit: str) -> str:
    return f"{SOURCE}-b{branch}-v{visit}"


def visit_event_ids(branch: str, visit: str) -> tuple[str, str, str]:
    """The ids of the visit's arrival, call and outcome."""
    base = f"{SOURCE}:b{branch}:v{visit}"
    return f"{base}:issued", f"{base}:called", f"{base}:outcome"


def parse_time(text: Any, tz: tzinfo) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError, OSError):
        return None


def read(body: Any, tz: tzinfo) -> QPEvent | Malformed:
    """A QPEvent from its parsed JSON, or why it is none."""
    if not isinstance(body, dict):
        return Malformed("not a JSON object")
    name = body.get("eventName")
    if not isinstance(name, str) or not name:
        return Malformed("eventName: missing")
    at = parse_time(body.get("eventTime"), tz)
    if at is None:
        return Malformed("eventTime: missing or not an ISO 8601 date and time")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        return Malformed("parameters: not a JSON object")
    branch = ident(parameters.get("branchId"))
    if branch is None:
        return Malformed("parameters.branchId: missing or not an id")
    unit = body.get("unitId")
    return QPEvent(name, at, branch, ident(unit), parameters)


@dataclass(frozen=True, slots=True)
class StoredRow:
    type: str
    queue: str
    at: float


@dataclass
class Resolution:
    # (label, event as posted to /v1/events) for the events to store.
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    # Qmatic events whose queuepulse event is stored already (a redelivery).
    duplicates: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[int, str]] = field(default_factory=list)


def lookups(items: Sequence[QPEvent]) -> list[str]:
    """The event ids whose stored rows `resolve` needs: each named visit's arrival, call and outcome."""
    ids: set[str] = set()
    for item in items:
        visit = ident(item.parameters.get("visitId"))
        if item.name in VISIT_EVENTS and visit is not None:
            ids.update(visit_event_ids(item.branch, visit))
    return sorted(ids)


def _desk(item: QPEvent) -> str | None:
    service_point = ident(item.parameters.get("servicePointId")) or item.unit
    return None if service_point is None else f"b{item.branch}-sp{service_point}"


def _ticket_number(parameters: Mapping[str, Any]) -> str | None:
    value = parameters.get("ticket")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if 0 < len(text) <= TICKET_NUMBER_MAX else None


def _wait(parameters: Mapping[str, Any]) -> float | Malformed | None:
    value = parameters.get("waitingTime")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Malformed("parameters.waitingTime: not a number of seconds")
    wait = float(value)
    if not math.isfinite(wait) or not 0 <= wait <= MAX_WAIT_SECONDS:
        return Malformed(f"parameters.waitingTime: must lie between 0 and {MAX_WAIT_SECONDS:g} seconds")
    return wait


def _when(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


class _Visits:
    """What is known of the request's visits: the stored rows, then each event resolved before."""

    def __init__(self, stored: Mapping[str, StoredRow]) -> None:
        self.rows = dict(stored)

    def queue(self, item: QPEvent, visit: str) -> str | None:
        issued = self.rows.get(visit_event_ids(item.branch, visit)[0])
        if issued is not None:
            return issued.queue
        queue_id = ident(item.parameters.get("queueId"))
        return None if queue_id is None else queue_slug(item.branch, queue_id)


def resolve(items: Sequence[tuple[int, QPEvent]], stored: Mapping[str, StoredRow], desks: bool) -> Resolution:
    """The events to store for the request's Qmatic events, by label.

    `stored` holds the rows of the ids `lookups` named that are in the store. Arrivals are resolved first,
    so a visit's events in one request find its queue whatever their order; `desks` says whether the
    service knows desk events.
    """
    visits = _Visits(stored)
    result = Resolution()
    ordered = sorted(items, key=lambda labelled: labelled[1].name != "VISIT_CREATE")
    for label, item in ordered:
        if item.name in VISIT_EVENTS:
            _visit_event(label, item, visits, result)
        elif item.name in OPENING or item.name in CLOSING:
            if desks:
                _desk_event(label, item, result)
            else:
                result.ignored[f"{item.name} (no desk events in this service)"] += 1
        else:
            result.ignored[item.name] += 1
    result.events.sort(key=lambda labelled: labelled[0])
    return result


def _visit_event(label: int, item: QPEvent, visits: _Visits, result: Resolution) -> None:
    visit = ident(item.parameters.get("visitId"))
    if visit is None:
        result.errors.append((label, "parameters.visitId: missing or not an id"))
        return
    queue = visits.queue(item, visit)
    if queue is None:
        result.errors.append(
            (label, "parameters.queueId: missing, and the visit's VISIT_CREATE is not stored")
        )
        return
    issued_id, called_id, outcome_id = visit_event_ids(item.branch, visit)
    event: dict[str, Any] = {
        "contact_id": contact_id(item.branch, visit),
        "queue": queue,
        "occurred_at": _when(item.at),
        "source": SOURCE,
    }
    if item.name == "VISIT_CREATE":
        event_id, event_type = issued_id, "ticket.issued"
        event["ticket_number"] = _ticket_number(item.parameters)
    elif item.name == "VISIT_CALL":
        desk, wait = _desk(item), _wait(item.parameters)
        if desk is None:
            result.errors.append((label, "VISIT_CALL: no service point (servicePointId or unitId)"))
            return
        if isinstance(wait, Malformed):
            result.errors.append((label, wait.reason))
            return
        event_id, event_type = called_id, "ticket.called"
        event.update(desk=desk, wait_seconds=wait, ticket_number=_ticket_number(item.parameters))
    else:
        event_id, event_type = outcome_id, OUTCOMES[item.name]
        if event_type == "ticket.cancelled" and called_id in visits.rows:
            event_type = "ticket.no_show"
        if event_type != "ticket.cancelled":
            event["desk"] = _desk(item)
    earlier = visits.rows.get(event_id)
    if earlier is not None:
        if earlier.type == event_type and abs(earlier.at - item.at) < SAME_INSTANT_SECONDS:
            result.duplicates += 1
        else:
            result.ignored[f"{item.name} ({_taken[event_type]})"] += 1
        return
    event.update(event_id=event_id, type=event_type)
    visits.rows[event_id] = StoredRow(event_type, queue, item.at)
    result.events.append((label, {key: value for key, value in event.items() if value is not None}))


_taken = {
    "ticket.issued": "visit issued before",
    "ticket.called": "visit called before: a recall, or a call after a transfer or recycle",
    "ticket.completed": "visit ended before",
    "ticket.no_show": "visit ended before",
    "ticket.cancelled": "visit ended before",
}


def _desk_event(label: int, item: QPEvent, result: Resolution) -> None:
    desk = _desk(item)
    if desk is None:
        result.errors.append((label, f"{item.name}: no service point (servicePointId or unitId)"))
        return
    opened = item.name in OPENING
    event: dict[str, Any] = {
        "event_id": f"{SOURCE}:{desk}:{item.name}:{round(item.at * 1000)}",
        "type": "desk.opened" if opened else "desk.closed",
        "queue": desk_queue(item.branch),
        "occurred_at": _when(item.at),
        "desk": desk,
        "source": SOURCE,
    }
    agent = ident(item.parameters.get("userId"))
    if opened and agent is not None:
        # Orchestra's users are central, not per branch: one person is one agent at any branch.
        event["agent"] = f"{SOURCE}-u{agent}"
    result.events.append((label, event))
