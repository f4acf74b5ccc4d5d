"""The event/row mapping (app/db/rows.py) through the real test database: every field of an Event,
written by the writer and read back by the start-up replay and the rollup's day rebuild, comes back equal,
and a retry of it is recognised as the stored event.

Also the raw-connection helper's transactions (app/db/connection.py): a rollup replace is one transaction.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.schemas import EARLIEST_AT, LATEST_AT
from app.core.events import CHANNEL_NAMES, Channel, Event
from app.core.kpis import Tally
from app.core.window import Window, WindowConfig
from app.db.connection import raw_connection
from app.db.replay import replay
from app.db.rollup import RollupItem, day_tallies, replace_rollup, upsert_rollup
from app.db.rows import COPY_COLUMNS, EVENT_FIELDS, FIELD_COLUMNS, PAYLOAD_COLUMNS
from app.db.tables import events as events_table
from app.db.writer import GroupCommitWriter
from tests.core.factory import local, targets

DAY = date(2026, 11, 30)
# The writer's clock: every event below is received then, a time with microseconds.
RECEIVED = local(2026, 11, 30, 21, 15, 7.654321)
ORIGIN = "token-ø"
# Letters from beyond the Basic Multilingual Plane, a combining mark and right-to-left text: a varchar's
# length counts characters, so a column's maximum holds this many of them.
UNICODE = "😀ǿ́שæ"


def longest(column: str) -> str:
    """A value filling the column's declared length, in characters that are not ASCII."""
    kind = events_table.c[column].type
    assert isinstance(kind, String)
    assert kind.length is not None
    return (UNICODE * kind.length)[: kind.length]


def day_events() -> list[Event]:
    """Events within DAY, between them holding every type, every field set and unset, and the edge
    values the schema admits: full-length unicode texts, empty texts, a wait of 0, microsecond times."""
    types = sorted(CHANNEL_NAMES)
    full = Event(
        event_id=longest("event_id"),
        type="call.abandoned",
        contact_id=longest("contact_id"),
        queue=longest("queue"),
        at=local(2026, 11, 30, 9, 0, 0.000001),
        agent=longest("agent"),
        desk=longest("desk"),
        ticket_number=longest("ticket_number"),
        wait_seconds=0.0,
        resolved=False,
        to_queue=longest("to_queue"),
        source=longest("source"),
        reason=longest("reason"),
    )
    empty_texts = Event(
        event_id="empty-texts",
        type="ticket.completed",
        contact_id="c-empty",
        queue="q",
        at=local(2026, 11, 30, 10, 30, 59.999999),
        agent="",
        desk="",
        ticket_number="",
        wait_seconds=86_400.0,
        resolved=True,
        to_queue="",
        source="",
        reason="",
    )
    # A binary fraction a decimal text would round, sent and stored as float8.
    odd_wait = Event(
        "odd-wait", "call.answered", "c-odd", "q", local(2026, 11, 30, 11), wait_seconds=0.1 + 0.2
    )
    bare = [
        Event(
            f"bare-{number}", event_type, f"c-{number}", "borgerservice", local(2026, 11, 30, 12, number, 0.5)
        )
        for number, event_type in enumerate(types)
    ]
    return [full, empty_texts, odd_wait, *bare]


def edge_time_events() -> list[Event]:
    """The first and the last instant the ingest schema admits (the last float before year 10000)."""
    return [
        Event("first-instant", "call.offered", "c-first", "q", EARLIEST_AT, reason="x"),
        Event("last-instant", "ticket.issued", "c-last", "q", math.nextafter(LATEST_AT, 0.0), source="s"),
    ]


class Recorder(Window):
    """A window that only keeps what it is given, with the time it is applied as of."""

    def __init__(self) -> None:
        super().__init__(WindowConfig(), targets())
        self.given: list[tuple[Event, float]] = []

    def apply(self, event: Event, now: float) -> None:
        self.given.append((event, now))


def writer_on(engine: AsyncEngine) -> GroupCommitWriter:
    return GroupCommitWriter(
        engine, on_commit=lambda _events, _now: None, on_duplicates=lambda _n: None, clock=lambda: RECEIVED
    )


async def store(engine: AsyncEngine, events: list[Event], path: str) -> tuple[int, int]:
    """Write the events through the writer, by COPY or, with a repeat in the request, by its fallback."""
    writer = writer_on(engine)
    writer.start()
    try:
        request = events if path == "copy" else [*events, events[0]]
        return await writer.submit(request, ORIGIN)
    finally:
        await writer.close()


def test_the_copy_columns_are_the_events_table_and_hold_every_event_field() -> None:
    # id and txid are the server's (the sequence, the storing transaction).
    assert set(COPY_COLUMNS) == {column.name for column in events_table.columns} - {"id", "txid"}
    assert len(set(COPY_COLUMNS)) == len(COPY_COLUMNS)
    stored_fields = {FIELD_COLUMNS.get(name, name) for name in EVENT_FIELDS}
    assert stored_fields <= set(COPY_COLUMNS)
    # Besides the event: the channel (from its type) and the delivery's time and token.
    assert set(COPY_COLUMNS) - stored_fields == {"channel", "received_at", "ingested_by"}
    assert set(PAYLOAD_COLUMNS) == stored_fields - {"event_id"}


async def test_the_migrated_events_table_has_the_copy_columns(clean_db: AsyncEngine) -> None:
    async with raw_connection(clean_db) as connection:
        names = await connection.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'events'"
        )
    assert {record[0] for record in names} - {"id", "txid"} == set(COPY_COLUMNS)


@pytest.mark.parametrize("path", ["copy", "fallback"])
async def test_every_field_written_comes_back_equal_from_the_replay(clean_db: AsyncEngine, path: str) -> None:
    written = day_events() + edge_time_events()
    assert await store(clean_db, written, path) == (len(written), 0 if path == "copy" else 1)

    window = Recorder()
    assert await replay(clean_db, window, RECEIVED) == len(written)
    assert [event for event, _ in window.given] == written
    assert {now for _, now in window.given} == {RECEIVED}

    async with raw_connection(clean_db) as connection:
        records = await connection.fetch(
            "SELECT channel, type, received_at, ingested_by FROM events ORDER BY id"
        )
    assert [(record[0], record[1]) for record in records] == [
        (CHANNEL_NAMES[e.type], e.type) for e in written
    ]
    assert {(record[2], record[3]) for record in records} == {(datetime.fromtimestamp(RECEIVED, UTC), ORIGIN)}


@pytest.mark.parametrize("path", ["copy", "fallback"])
async def test_a_retry_of_every_stored_event_is_a_duplicate_not_a_conflict(
    clean_db: AsyncEngine, path: str
) -> None:
    written = day_events() + edge_time_events()
    await store(clean_db, written, "copy")
    # Another token and later: neither is part of the payload a retry must repeat.
    writer = writer_on(clean_db)
    writer.start()
    try:
        request = written if path == "copy" else [*written, written[0]]
        assert await writer.submit(request, "another-token") == (0, len(request))
    finally:
        await writer.close()


async def test_the_rollup_day_rebuild_reads_every_field_including_the_reason(clean_db: AsyncEngine) -> None:
    written = day_events()
    assert any(event.reason for event in written)
    await store(clean_db, written + edge_time_events(), "copy")
    windows: list[Recorder] = []

    def new_window() -> Window:
        windows.append(Recorder())
        return windows[-1]

    count, _ = await day_tallies(clean_db, new_window, DAY)
    assert count == len(written)
    assert [event for event, _ in windows[0].given] == written
    assert {now for _, now in windows[0].given} == {RECEIVED}


async def test_a_rollup_replace_that_fails_keeps_the_rows_it_would_have_replaced(
    clean_db: AsyncEngine,
) -> None:
    start = local(2026, 11, 30, 9)
    kept: RollupItem = (Channel.PHONE, "borgerservice", int(start), Tally(arrived=3))
    await upsert_rollup(clean_db, [kept])
    # A queue longer than the column: PostgreSQL refuses the insert after the delete has run.
    refused: RollupItem = (Channel.PHONE, "q" * 65, int(start), Tally(arrived=1))
    with pytest.raises(Exception, match="too long"):
        await replace_rollup(clean_db, start - 3600, start + 3600, [refused])
    async with raw_connection(clean_db) as connection:
        rows = await connection.fetch("SELECT queue, arrived FROM interval_rollup")
    assert [tuple(row) for row in rows] == [("borgerservice", 3)]
