"""Request and response shapes. Validation here is the only gate before the database."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired, cast

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    TypeAdapter,
    with_config,
)
from pydantic_core import CoreSchema, core_schema

# pydantic reads a TypedDict's field types only from typing_extensions' on Python < 3.12.
from typing_extensions import TypedDict

from app.core.events import EVENT_TYPES, Event, Step

EventType = Literal[
    "call.offered",
    "call.answered",
    "call.abandoned",
    "call.ended",
    "call.transferred",
    "ticket.issued",
    "ticket.called",
    "ticket.cancelled",
    "ticket.completed",
    "ticket.no_show",
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
    contact_id: Text128
    queue: Slug
    occurred_at: AwareDatetime
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
    # Positional, in Event's field order.
    return Event(
        fields["event_id"],
        event_type,
        fields["contact_id"],
        fields["queue"],
        fields["occurred_at"].timestamp(),
        fields.get("agent"),
        desk,
        ticket_number,
        wait,
        resolved,
        to_queue,
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


def future_issues(events: Sequence[Event], now: float, max_future_seconds: float) -> list[ValidationIssue]:
    latest = now + max_future_seconds
    return [
        ValidationIssue(
            index=index,
            field="occurred_at",
            message=f"is more than {max_future_seconds:g} seconds in the future",
        )
        for index, event in enumerate(events)
        if event.at > latest
    ]
