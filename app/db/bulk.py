"""Bulk storing for the history imports: a chunk of events COPYed into a temporary table, then moved into
`events` with one INSERT ... ON CONFLICT (event_id) DO NOTHING, in one transaction.

The live writer (app/db/writer.py) answers many small requests and applies them to the window; an import
has one connection, chunks of thousands and no window, so it stages instead: COPY is PostgreSQL's fastest
way in, and the INSERT from the stage decides new against stored in bulk. When every staged row went in
(a first import) nothing else is asked; otherwise the staged rows are compared with the stored ones by
PAYLOAD_COLUMNS, so an event_id stored before with another payload is a clash and the chunk is rolled
back. The records are app/db/rows.py's, so the row mapping is the writer's. The `txid` column the replicas
tail (migration 0006) is left to its default, as in every other insert, so running instances pick the
rows up once committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

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


async def prepare(driver: asyncpg.Connection) -> None:
    """Create the stage on this connection (once per connection; it lives as long as the session)."""
    await driver.execute(CREATE_STAGE)


async def store_chunk(driver: asyncpg.Connection, records: Sequence[Row]) -> ChunkStored | ChunkClashed:
    """Store the records (COPY_COLUMNS order, event_ids distinct) in one transaction: all that are new,
    or none when one clashes with a stored payload."""
    if not records:
        return ChunkStored(0, 0, None)
    transaction = driver.transaction()
    await transaction.start()
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
