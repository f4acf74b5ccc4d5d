"""The one mapping between an Event and a row of the events table.

Whatever writes events (the writer, the load-test seeders) builds its COPY records here, and whatever
reads them back as Events (the start-up replay, the rollup's day rebuild) selects EVENT_SELECT, so a
field added to Event, or a column moved, is mapped in this one place (tests/db/test_rows.py checks the
columns against app/db/tables.py and round-trips every field through PostgreSQL).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from app.core.events import CHANNEL_NAMES, Event

Row = tuple[Any, ...]

# The columns of a COPY record, in its order: the Event's fields (`at` as occurred_at) with the channel
# (which follows from the type) and the delivery's received_at and ingested_by beside them.
COPY_COLUMNS = (
    "event_id",
    "type",
    "channel",
    "contact_id",
    "queue",
    "occurred_at",
    "received_at",
    "agent",
    "desk",
    "ticket_number",
    "wait_seconds",
    "resolved",
    "to_queue",
    "source",
    "reason",
    "ingested_by",
)
# Event's fields in their declared order, and the column each is stored in where the names differ.
EVENT_FIELDS = tuple(field.name for field in dataclasses.fields(Event))
FIELD_COLUMNS = {"at": "occurred_at"}
# What a delivery must repeat to be a retry of the stored event: every field the event carries (channel
# follows from type). Not received_at or ingested_by: a retry comes later, perhaps through another token.
PAYLOAD_COLUMNS = tuple(FIELD_COLUMNS.get(name, name) for name in EVENT_FIELDS if name != "event_id")
_PAYLOAD_AT = tuple(COPY_COLUMNS.index(name) for name in PAYLOAD_COLUMNS)
# Each field as it is selected to build an Event: times as Unix seconds, the rest as stored.
_SELECTED = {"at": "extract(epoch from occurred_at)::float8"}
# Event's fields as a SELECT list in Event's order, so `Event(*record[:EVENT_WIDTH])` builds the event
# positionally (a million of them at start-up: by keyword would be slower). Whatever the query selects
# after them starts at record[EVENT_WIDTH].
EVENT_SELECT = ", ".join(_SELECTED.get(name, name) for name in EVENT_FIELDS)
EVENT_WIDTH = len(EVENT_FIELDS)
# The time the event was first received, as Unix seconds: what a replay applies it with.
RECEIVED_SELECT = "extract(epoch from received_at)::float8"

# The array type each column is sent as to INSERT_EVENTS; text where not named.
_ARRAY_TYPES = {
    "occurred_at": "timestamptz",
    "received_at": "timestamptz",
    "wait_seconds": "float8",
    "resolved": "bool",
}
_UNNESTED = ", ".join(
    f"${number}::{_ARRAY_TYPES.get(name, 'text')}[]" for number, name in enumerate(COPY_COLUMNS, start=1)
)
# The fallback's insert: the records as column arrays (zip(*records)), in COPY_COLUMNS order.
INSERT_EVENTS = f"""
INSERT INTO events ({", ".join(COPY_COLUMNS)})
SELECT * FROM unnest({_UNNESTED})
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""
SELECT_STORED = f"SELECT event_id, {', '.join(PAYLOAD_COLUMNS)} FROM events WHERE event_id = ANY($1::text[])"


def copy_records(
    deliveries: Iterable[tuple[Sequence[Event], str | None]], received_at: datetime
) -> list[Row]:
    """The events of each (events, ingested_by) delivery as COPY records, in COPY_COLUMNS order.

    One comprehension for the whole batch: it is on the ingest path, once per event.
    """
    from_timestamp = datetime.fromtimestamp
    return [
        (
            event.event_id,
            event.type,
            CHANNEL_NAMES[event.type],
            event.contact_id,
            event.queue,
            from_timestamp(event.at, UTC),
            received_at,
            event.agent,
            event.desk,
            event.ticket_number,
            event.wait_seconds,
            event.resolved,
            event.to_queue,
            event.source,
            event.reason,
            origin,
        )
        for events, origin in deliveries
        for event in events
    ]


def copy_record(event: Event, received_at: datetime, ingested_by: str | None = None) -> Row:
    """One event as a COPY record: for seeders and tests that write rows as the writer does."""
    return copy_records((((event,), ingested_by),), received_at)[0]


def payload_of(row: Row) -> Row:
    """The PAYLOAD_COLUMNS of a COPY record, comparable with a stored payload from SELECT_STORED."""
    return tuple(row[at] for at in _PAYLOAD_AT)


def differing_fields(given: Row, stored: Row) -> tuple[str, ...]:
    """The payload fields in which two payloads differ; NaN equals NaN (it is what was stored)."""
    return tuple(
        name
        for name, a, b in zip(PAYLOAD_COLUMNS, given, stored, strict=True)
        if a != b and not (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    )
