"""What the store holds of the visits one Qmatic request names: the rows of their arrival, call and outcome.

The ids are fixed per visit (app/qmatic/mapping.py), so this is a look-up by the events table's unique
event_id index: no index of its own, and state that lives in PostgreSQL rather than in a process.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.connection import raw_connection
from app.qmatic.mapping import StoredRow

STORED_ROWS = """
SELECT event_id, type, queue, extract(epoch from occurred_at)::float8
FROM events WHERE event_id = ANY($1::text[])
"""


async def stored_rows(engine: AsyncEngine, event_ids: Sequence[str]) -> dict[str, StoredRow]:
    if not event_ids:
        return {}
    async with raw_connection(engine) as driver:
        records = await driver.fetch(STORED_ROWS, list(event_ids))
    return {record[0]: StoredRow(record[1], record[2], record[3]) for record in records}
