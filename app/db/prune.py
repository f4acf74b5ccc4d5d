"""Retention: deleting events older than N days, in batches so no single transaction holds the table long."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# Small enough that each delete's locks and WAL stay modest beside live ingest.
PRUNE_BATCH = 10_000

DELETE_BATCH = text(
    """
    DELETE FROM events
    WHERE id IN (SELECT id FROM events WHERE occurred_at < :cutoff ORDER BY id LIMIT :batch)
    """
)


async def prune_events(engine: AsyncEngine, cutoff: datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete every event that occurred before cutoff, batch by batch; returns how many were deleted."""
    deleted = 0
    while True:
        async with engine.begin() as connection:
            result = await connection.execute(DELETE_BATCH, {"cutoff": cutoff, "batch": batch})
        deleted += result.rowcount
        if result.rowcount < batch:
            return deleted
