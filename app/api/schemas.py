"""Request and response shapes. Validation here is the only gate before the database."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    TypeAdapter,
    with_config,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

# pydantic reads a TypedDict's field types only from typing_extensions' on Python < 3.12.
from typing_extensions import TypedDict

from app.core.events import EVENT_TYPES, STAFF_TYPES, Event, Step

EventType = Literal[
    "call.offered",
    "call.answered",
    "call.abandoned",
    "call.ended",
    "call.transferred",
    "call.cleared",
    "ticket.issued",
    "ticket.called",
    "ticket.cancelled",
    "ticket.completed",
    "ticket.no_show",
    "ticket.cleared",
    "agent.logged_in",
    "agent.logged_out",
    "agent.paused",
    "agent.resumed",
    "agent.ringing",
    "agent.ready",
    "desk.opened",
    "desk.closed",
]
SLUG_PATTERN = r"^[a-z0-9_-]{1,64}$"
# A day is the longest wait a source can sensibly report; larger values are unit mix-ups.
MAX_WAIT_SECONDS = 86_400.0


NUL_FREE_PATTERN = r"^[^\x00]*$"


@dataclass(frozen=True, slots=True)
class StorableText:
    """Text PostgreSQL can store, of 1 to max_length characters.

    PostgreSQL text cannot hold NUL, refused here by a pattern with a message of its own; lone
    surrogates never pass pydantic's own str validation. Both checks run inside pydantic-core, so the
    hot ingest path makes no Python call per text field.
    """

    max_length: int

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.chain_schema(
            [
                core_schema.str_schema(min_length=1, max_length=self.max_length),
                core_schema.custom_error_schema(
                    core_schema.str_schema(pattern=NUL_FREE_PATTERN),
                    custom_error_type="nul_character",
                    custom_error_message="must not contain NUL characters",
                ),
            ]
        )


# RFC 3339's date and time, as the text must begin; pydantic's parser then reads it whole. Without this
# gate pydantic also takes a JSON number or a numeric string as Unix seconds.
RFC3339_START = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
RFC3339_MESSAGE = "must be an RFC 3339 date and time with an offset, such as 2026-11-23T09:58:00+01:00"
# The instants any occurred_at must lie in, as Unix seconds: from 1970-01-01T00:00:00Z up to the end of
# 9999 in UTC. Outside them PostgreSQL, Python's datetime or the rollup's day arithmetic cannot follow
# (year 1 at +14:00 is year 0 in UTC); QUEUEPULSE_MAX_PAST_DAYS narrows the lower end per request.
EARLIEST_AT = 0.0
LATEST_AT = 253_402_300_800.0
BOUNDS_MESSAGE = "occurred_at: must lie between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z"


def _rfc3339_text(value: Any) -> Any:
    """A datetime as it is, or text shaped like RFC 3339 (parsed next); anything else is refused."""
    if isinstance(value, datetime) or (isinstance(value, str) and RFC3339_START.match(value)):
        return value
    raise PydanticCustomError("rfc3339_datetime", RFC3339_MESSAGE)


@dataclass(frozen=True, slots=True)
class Rfc3339:
    """An aware datetime given as RFC 3339 text (or, from Python, a datetime): never a bare number.

    JSON bodies are checked inside pydantic-core (a pattern on the string), so batch ingest makes no
    Python call for it; the Python path (queue_log lines, the lenient re-parse) takes one call.
    """

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        aware = core_schema.datetime_schema(tz_constraint="aware")
        text = core_schema.custom_error_schema(
            core_schema.str_schema(pattern=RFC3339_START.pattern),
            custom_error_type="rfc3339_datetime",
            custom_error_message=RFC3339_MESSAGE,
        )
        return core_schema.json_or_python_schema(
            json_schema=core_schema.chain_schema([text, aware]),
            python_schema=core_schema.chain_schema(
                [core_schema.no_info_plain_validator_function(_rfc3339_text), aware]
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(core_schema.datetime_schema())


OccurredAt = Annotated[datetime, Rfc3339()]
Text128 = Annotated[str, StorableText(128)]
Text64 = Annotated[str, StorableText(64)]
Text32 = Annotated[str, StorableText(32)]
Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]


@with_config(ConfigDict(extra="forbid"))
class EventIn(TypedDict):
    """One event from a telephony system, a kiosk or a desk terminal, as it is posted.

    Validated straight into the core Event (single_event, event_batch): a plain dict and one Python call
    per event, rather than a model instance and a conversion, on the path batch ingest takes 100 times
    per request.
    """

    event_id: Text128
    type: EventType
    # Required on contact events; staff events name their subject in `agent` or `desk` instead.
    contact_id: NotRequired[Text128]
    queue: Slug
    occurred_at: OccurredAt
    agent: NotRequired[Text128 | None]
    desk: NotRequired[Text64 | None]
    ticket_number: NotRequired[Text32 | None]
    wait_seconds: NotRequired[Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS)] | None]
    resolved: NotRequired[bool | None]
    to_queue: NotRequired[Slug | None]
    source: NotRequired[Text64 | None]
    reason: NotRequired[Text64 | None]


def _to_event(fields: EventIn) -> Event:
    """The rules that tie fields to the event's type, then the core Event."""
    event_type = fields["type"]
    desk, ticket_number = fields.get("desk"), fields.get("ticket_number")
    wait, resolved = fields.get("wait_seconds"), fields.get("resolved")
    to_queue, reason = fields.get("to_queue"), fields.get("reason")
    if event_type in STAFF_TYPES:
        return _to_staff_event(fields)
    contact_id = fields.get("contact_id")
    if contact_id is None:
        raise ValueError(f"contact_id: required on {event_type}")
    step = EVENT_TYPES[event_type][1]
    ticket = event_type.startswith("ticket.")
    if event_type == "ticket.called" and desk is None:
        raise ValueError("desk: required on ticket.called")
    if wait is not None and step not in (Step.START, Step.LEAVE):
        raise ValueError("wait_seconds: only allowed on start and leave events")
    if wait is not None and not math.isfinite(wait):
        raise ValueError("wait_seconds: must be a finite number")
    if resolved is not None and step is not Step.FINISH:
        raise ValueError("resolved: only allowed on finish events")
    if reason is not None and step is not Step.LEAVE:
        raise ValueError("reason: only allowed on leave events")
    if to_queue is not None and event_type != "call.transferred":
        raise ValueError("to_queue: only allowed on call.transferred")
    if ticket_number is not None and not ticket:
        raise ValueError("ticket_number: only allowed on ticket events")
    if desk is not None and not ticket:
        raise ValueError("desk: only allowed on ticket events")
    at = _instant(fields)
    # Positional, in Event's field order.
    return Event(
        fields["event_id"],
        event_type,
        contact_id,
        fields["queue"],
        at,
        fields.get("agent"),
        desk,
        ticket_number,
        wait,
        resolved,
        to_queue,
        fields.get("source"),
        reason,
    )


def _instant(fields: EventIn) -> float:
    try:
        at = fields["occurred_at"].timestamp()
    except (OverflowError, ValueError, OSError):
        raise ValueError(BOUNDS_MESSAGE) from None
    # One comparison on the hot path; `not` also refuses NaN.
    if not EARLIEST_AT <= at < LATEST_AT:
        raise ValueError(BOUNDS_MESSAGE)
    return at


# The fields a staff event may carry beside event_id, type, queue and occurred_at (and `source`).
_STAFF_OPTIONAL = ("agent", "desk", "reason")
_CONTACT_ONLY = ("ticket_number", "wait_seconds", "resolved", "to_queue")


def _to_staff_event(fields: EventIn) -> Event:
    """agent.* name the agent, desk.* the desk: the subject, stored in the row's contact_id column. The
    client sends no contact_id, so a staff event can never be mistaken for a step of some contact."""
    event_type = fields["type"]
    if "contact_id" in fields:
        raise ValueError(f"contact_id: not allowed on {event_type} (the subject is its agent or desk)")
    for name in _CONTACT_ONLY:
        if fields.get(name) is not None:
            raise ValueError(f"{name}: not allowed on {event_type}")
    agent, desk, reason = fields.get("agent"), fields.get("desk"), fields.get("reason")
    if event_type.startswith("agent."):
        if agent is None:
            raise ValueError(f"agent: required on {event_type}")
        if desk is not None:
            raise ValueError(f"desk: not allowed on {event_type}")
        subject = agent
    else:
        if desk is None:
            raise ValueError(f"desk: required on {event_type}")
        if agent is not None and event_type != "desk.opened":
            raise ValueError(f"agent: not allowed on {event_type}")
        subject = desk
    if reason is not None and event_type != "agent.paused":
        raise ValueError(f"reason: only allowed on leave events and agent.paused, not on {event_type}")
    return Event(
        fields["event_id"],
        event_type,
        subject,
        fields["queue"],
        _instant(fields),
        agent,
        desk,
        None,
        None,
        None,
        None,
        fields.get("source"),
        reason,
    )


ValidEvent = Annotated[EventIn, AfterValidator(_to_event)]
# What a body validates to: core Events (the after-validator's result), whatever the annotation says.
single_event = cast("TypeAdapter[Event]", TypeAdapter(ValidEvent))
event_batch = cast("TypeAdapter[list[Event]]", TypeAdapter(Annotated[list[ValidEvent], Field(min_length=1)]))
EVENT_JSON_SCHEMA: dict[str, Any] = TypeAdapter(EventIn).json_schema()


class IngestResult(BaseModel):
    accepted: int
    duplicates: int


class ValidationIssue(BaseModel):
    index: int | None
    field: str | None
    message: str


class ValidationFailed(BaseModel):
    detail: list[ValidationIssue]


DUPLICATE_KEY_MESSAGE = "given more than once in one object"
NON_FINITE_MESSAGE = "must be a finite number"


class _DuplicateKeys(dict[str, Any]):
    """A parsed JSON object that named some keys more than once (the last value kept, as JSON parsers do)."""

    __slots__ = ("duplicates",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        seen: set[str] = set()
        self.duplicates: list[str] = []
        for key, _ in pairs:
            if key in seen and key not in self.duplicates:
                self.duplicates.append(key)
            seen.add(key)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    return result if len(result) == len(pairs) else _DuplicateKeys(pairs)


@dataclass(frozen=True, slots=True)
class JsonProblem:
    path: tuple[str | int, ...]
    message: str


def _problems(value: Any, path: tuple[str | int, ...], found: list[JsonProblem]) -> None:
    if isinstance(value, dict):
        if isinstance(value, _DuplicateKeys):
            found.extend(JsonProblem((*path, key), DUPLICATE_KEY_MESSAGE) for key in value.duplicates)
        for key, item in value.items():
            _problems(item, (*path, key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _problems(item, (*path, index), found)
    elif isinstance(value, float) and not math.isfinite(value):
        found.append(JsonProblem(path, NON_FINITE_MESSAGE))


def strict_json_problems(body: bytes) -> list[JsonProblem]:
    """What JSON's grammar lets through but this service refuses: a key twice in one object (which value
    wins differs between parsers) and NaN, Infinity or a number too large for a float (1e309).

    Raises ValueError (or RecursionError) when the body is no JSON at all."""
    found: list[JsonProblem] = []
    _problems(json.loads(body, object_pairs_hook=_object), (), found)
    return found


def _keys_and_texts(events: Sequence[Event]) -> tuple[int, int]:
    """At most as many keys as the events were posted with (five required, plus each optional one that
    has a value; one given as null is not counted), and at least as many JSON strings among the values
    (the five required ones and each optional text with a value: pydantic turns no JSON number into text).
    """
    keys = texts = 5 * len(events)
    for event in events:
        if event.type in STAFF_TYPES:
            # No contact_id was posted: the subject is the agent or desk text counted below.
            keys -= 1
            texts -= 1
        optional_texts = (
            (event.agent is not None)
            + (event.desk is not None)
            + (event.ticket_number is not None)
            + (event.to_queue is not None)
            + (event.source is not None)
            + (event.reason is not None)
        )
        texts += optional_texts
        keys += optional_texts + (event.wait_seconds is not None) + (event.resolved is not None)
    return keys, texts


def _no_key_repeated(body: bytes, events: Sequence[Event]) -> bool:
    """True only when no object in the body names a key twice; False when that cannot be told cheaply.

    Without an escaped quote every quote byte opens or closes a string, and every string is a key or a
    value: so the keys in the body are at most quotes / 2 less the text values the events show. When that
    equals the distinct keys the events show, no key came twice. One count of one byte, and one loop over
    the events, against a second parse of the whole body.
    """
    if b"\\" in body and b'\\"' in body:
        return False
    keys, texts = _keys_and_texts(events)
    return body.count(b'"') == 2 * (keys + texts)


def duplicate_key_issues(body: bytes, events: Sequence[Event], batch: bool) -> list[ValidationIssue]:
    """Keys given twice in an event of a body that validated into `events`.

    Exact, and cheap for the bodies programs send; only a body with a null, an escaped quote, or a number
    or flag given as text is parsed a second time to tell.
    """
    if _no_key_repeated(body, events):
        return []
    try:
        problems = strict_json_problems(body)
    except (ValueError, RecursionError):
        return []
    issues = []
    for problem in problems:
        if problem.message != DUPLICATE_KEY_MESSAGE:
            continue
        path = list(problem.path)
        index = path.pop(0) if batch and path and isinstance(path[0], int) else None
        assert index is None or isinstance(index, int)
        field = ".".join(str(part) for part in path) or None
        issues.append(ValidationIssue(index=index, field=field, message=DUPLICATE_KEY_MESSAGE))
    return issues
