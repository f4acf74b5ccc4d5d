"""Request and response shapes. Validation here is the only gate before the database."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    TypeAdapter,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

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


class EventIn(BaseModel):
    """One event from a telephony system, a kiosk or a desk terminal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Text128
    type: EventType
    contact_id: Text128
    queue: Slug
    occurred_at: AwareDatetime
    agent: Text128 | None = None
    desk: Text64 | None = None
    ticket_number: Text32 | None = None
    wait_seconds: float | None = Field(default=None, ge=0, le=MAX_WAIT_SECONDS)
    resolved: bool | None = None
    to_queue: Slug | None = None
    source: Text64 | None = None
    reason: Text64 | None = None

    @model_validator(mode="after")
    def _fields_fit_type(self) -> EventIn:
        step = EVENT_TYPES[self.type][1]
        if self.type == "ticket.called" and self.desk is None:
            raise ValueError("desk: required on ticket.called")
        if self.wait_seconds is not None and step not in (Step.START, Step.LEAVE):
            raise ValueError("wait_seconds: only allowed on start and leave events")
        if self.wait_seconds is not None and not math.isfinite(self.wait_seconds):
            raise ValueError("wait_seconds: must be a finite number")
        if self.resolved is not None and step is not Step.FINISH:
            raise ValueError("resolved: only allowed on finish events")
        if self.reason is not None and step is not Step.LEAVE:
            raise ValueError("reason: only allowed on leave events")
        if self.to_queue is not None and self.type != "call.transferred":
            raise ValueError("to_queue: only allowed on call.transferred")
        if self.ticket_number is not None and not self.type.startswith("ticket."):
            raise ValueError("ticket_number: only allowed on ticket events")
        if self.desk is not None and not self.type.startswith("ticket."):
            raise ValueError("desk: only allowed on ticket events")
        return self

    def to_core(self) -> Event:
        # Positional, in Event's field order: ingest builds one per event on the hot path.
        return Event(
            self.event_id,
            self.type,
            self.contact_id,
            self.queue,
            self.occurred_at.timestamp(),
            self.agent,
            self.desk,
            self.ticket_number,
            self.wait_seconds,
            self.resolved,
            self.to_queue,
            self.source,
            self.reason,
        )


single_event = TypeAdapter(EventIn)
event_batch = TypeAdapter(Annotated[list[EventIn], Field(min_length=1)])


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
