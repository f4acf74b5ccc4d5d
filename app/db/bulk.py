"""Bulk storing for the history imports: a chunk of events COPYed straight into `events` when it is all
new, else into a temporary table and moved into `events` with one INSERT ... ON CONFLICT (event_id) DO
NOTHING; one transaction a chunk either way.

The live writer (app/db/writer.py) answers many small requests and applies them to the window; an import
has one connection, chunks of thousands and no window. COPY is PostgreSQL's fastest way in: into `events`
itself it inserts rows in batches (heap_multi_insert), against about twice the server's CPU for COPY into
the stage, a scan of it and a speculative insert per row. But COPY stops at the first event_id stored
before, so the direct way is tried only while chunks keep being all new (a first import): the chunk that
meets a stored event_id is rolled back and goes again through the stage, as do the chunks after it until
one is all new again. From the stage the INSERT decides new against stored in bulk; when some staged rows
did not go in, they are compared with the stored ones by PAYLOAD_COLUMNS, so an event_id stored before
with another payload is a clash and the chunk is rolled back. The records are app/db/rows.py's, so the
row mapping is the writer's. The `txid` column the replicas tail (migration 0006) is left to its default,
as in every other insert, so running instances pick the rows up once committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from asyncpg.transaction import Transaction

from app.db.rows import COPY_COLUMNS, PAYLOAD_COLUMNS, SELECT_STORED, Row, differing_fields, payload_of

STAGE = "import_stage"
_COLUMNS = ", ".join(COPY_COLUMNS)
# Emptied at each commit (and each rollback drops what the chunk put in), so a chunk sees only its own.
CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ON COMMIT DELETE ROWS AS "
    f"SELECT {_COLUMNS} FROM events WITH NO DATA"
)
# The new rows go in; the command's status says how many.
INSERT_FROM_STAGE = f"""
INSERT INTO events ({_COLUMNS})
SELECT {_COLUMNS} FROM {STAGE}
ON CONFLICT (event_id) DO NOTHING
"""
# When only some staged rows went in: the times of those this transaction inserted (xmin is the 32-bit
# transaction id; pg_current_xact_id() carries the epoch above it).
INSERTED_TIMES = f"""
SELECT extract(epoch from e.occurred_at)::float8
FROM {STAGE} s JOIN events e USING (event_id)
WHERE e.xmin::text::bigint = pg_current_xact_id()::text::bigint % 4294967296
"""
_payload = ", ".join(PAYLOAD_COLUMNS)
_staged = ", ".join(f"s.{name}" for name in PAYLOAD_COLUMNS)
_stored = ", ".join(f"e.{name}" for name in PAYLOAD_COLUMNS)
# Staged rows whose event_id is stored with another payload (rows this chunk inserted equal themselves).
STAGED_CLASHES = f"""
SELECT s.event_id, {_staged}, {_stored}
FROM {STAGE} s JOIN events e USING (event_id)
WHERE ({_staged}) IS DISTINCT FROM ({_stored})
"""
_WIDTH = len(PAYLOAD_COLUMNS)


@dataclass(frozen=True, slots=True)
class StoredClash:
    """A staged event whose event_id is stored with another payload; `fields` are those that differ."""

    event_id: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChunkStored:
    inserted: int
    duplicates: int
    # The occurrence times of the new rows, as Unix seconds; None when every record was new.
    inserted_at: list[float] | None


@dataclass(frozen=True, slots=True)
class ChunkClashed:
    """Nothing of the chunk was stored: these rows reuse a stored event_id for another payload."""

    clashes: tuple[StoredClash, ...]


# Each chunk commits without waiting for its WAL to reach the disk (PostgreSQL's WAL writer flushes it
# within a fraction of a second): an import that is killed keeps every chunk committed, and only a crash of
# PostgreSQL itself in that fraction of a second could lose the last chunks, which a re-run stores again.
# `make_durable` at the end waits for the disk once, for all of them.
ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"
# A transaction that is given an id commits with a WAL record, and a synchronous commit flushes the WAL up
# to it: every chunk committed before it is then on disk.
DURABLE = "SELECT pg_current_xact_id()"


# PostgreSQL's binary timestamptz: microseconds since this instant.
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _microseconds(value: datetime) -> tuple[int]:
    """A record's aware datetime as PostgreSQL's binary timestamptz. Exact (integer arithmetic), and half
    the CPU of asyncpg's own encoder, which took about 1.2 us a value: with two timestamps a row, the
    larger part of the import's COPY encoding."""
    delta = value - PG_EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds,)


def _datetime(value: tuple[int]) -> datetime:
    """A binary timestamptz read back (the clash look-ups), as asyncpg's own decoder gives it."""
    try:
        return PG_EPOCH + timedelta(microseconds=value[0])
    except OverflowError:
        # PostgreSQL's infinity and -infinity are the extreme int64 values.
        return datetime.max.replace(tzinfo=UTC) if value[0] > 0 else datetime.min.replace(tzinfo=UTC)


async def prepare(driver: asyncpg.Connection) -> None:
    """Make the connection ready for store_chunk: the stage (it lives as long as the session) and the
    faster timestamptz codec; `release` undoes the codec before the connection serves anything else."""
    await driver.execute(CREATE_STAGE)
    await driver.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=_microseconds, decoder=_datetime, format="tuple"
    )


async def release(driver: asyncpg.Connection) -> None:
    """Give the connection back its own timestamptz codec (it returns to the engine's pool)."""
    await driver.reset_type_codec("timestamptz", schema="pg_catalog")


async def make_durable(driver: asyncpg.Connection) -> None:
    """Wait until every chunk this connection committed is on disk."""
    async with driver.transaction():
        await driver.execute(DURABLE)


async def _start(driver: asyncpg.Connection) -> Transaction:
    transaction = driver.transaction()
    await transaction.start()
    try:
        await driver.execute(ASYNC_COMMIT)
    except BaseException:
        await transaction.rollback()
        raise
    return transaction


async def store_chunk(
    driver: asyncpg.Connection, records: Sequence[Row], direct: bool = False
) -> ChunkStored | ChunkClashed:
    """Store the records (COPY_COLUMNS order, event_ids distinct) in one transaction: all that are new,
    or none when one clashes with a stored payload. `direct`: first try COPY into `events` itself, which
    is cheaper when every record is new and costs a rolled-back try when one is not."""
    if not records:
        return ChunkStored(0, 0, None)
    if direct and await _copied_into_events(driver, records):
        return ChunkStored(len(records), 0, None)
    transaction = await _start(driver)
    try:
        await driver.copy_records_to_table(STAGE, records=records, columns=COPY_COLUMNS)
        inserted = int((await driver.execute(INSERT_FROM_STAGE)).rsplit(" ", 1)[1])
        inserted_at = None
        if inserted < len(records):
            clashes = [
                StoredClash(
                    record[0], differing_fields(tuple(record[1 : 1 + _WIDTH]), tuple(record[1 + _WIDTH :]))
                )
                for record in await driver.fetch(STAGED_CLASHES)
            ]
            if clashes:
                await transaction.rollback()
                return ChunkClashed(tuple(sorted(clashes, key=lambda clash: clash.event_id)))
            inserted_at = [record[0] for record in await driver.fetch(INSERTED_TIMES)] if inserted else []
    except BaseException:
        await transaction.rollback()
        raise
    await transaction.commit()
    return ChunkStored(inserted, len(records) - inserted, inserted_at)


async def _copied_into_events(driver: asyncpg.Connection, records: Sequence[Row]) -> bool:
    """COPY the records straight into `events`, committed; False (and nothing stored) when an event_id of
    them is stored already, as a unique violation tells."""
    transaction = await _start(driver)
    try:
        await driver.copy_records_to_table("events", records=records, columns=COPY_COLUMNS)
    except asyncpg.UniqueViolationError:
        await transaction.rollback()
        return False
    except BaseException:
        await transaction.rollback()
        raise
    await transaction.commit()
    return True


async def stored_clashes(driver: asyncpg.Connection, records: Sequence[Row]) -> list[StoredClash]:
    """The records whose event_id is stored with another payload, looked up without storing anything:
    for a chunk refused anyway, so its report names every bad line at once."""
    stored = {
        record[0]: tuple(record[1:])
        for record in await driver.fetch(SELECT_STORED, [row[0] for row in records])
    }
    clashes = []
    for row in records:
        known = stored.get(row[0])
        differing = None if known is None else differing_fields(payload_of(row), known)
        if differing:
            clashes.append(StoredClash(row[0], differing))
    return clashes
