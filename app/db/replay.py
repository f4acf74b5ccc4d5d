"""Rebuilding the window from the events table at start-up."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.events import Event
from app.core.window import ROLLING_SECONDS, Window

# Each event is applied with the time it was first received, so late and expiry counts come out as live.
REPLAY_EVENTS = """
SELECT event_id, type, contact_id, queue, extract(epoch from occurred_at)::float8,
       extract(epoch from received_at)::float8, agent, desk, ticket_number, wait_seconds, resolved,
       to_queue, source, reason
FROM events
WHERE received_at >= to_timestamp($1) OR occurred_at >= to_timestamp($1)
ORDER BY id
"""
FETCH_ROWS = 20_000


def replay_since(window: Window, now: float) -> float:
    """The oldest time whose events can still shape the window as of `now`."""
    day_start = window.today_bounds(now)[0]
    oldest_needed = min(day_start, now - max(ROLLING_SECONDS.values()))
    return oldest_needed - window.config.max_wait_seconds


async def replay(engine: AsyncEngine, window: Window, now: float) -> int:
    """Apply the stored events that bear on today and the rolling windows; returns how many."""
    count = 0
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        async with driver.transaction(readonly=True):
            cursor = driver.cursor(REPLAY_EVENTS, replay_since(window, now), prefetch=FETCH_ROWS)
            async for row in cursor:
                window.apply(
                    Event(
                        event_id=row[0],
                        type=row[1],
                        contact_id=row[2],
                        queue=row[3],
                        at=row[4],
                        agent=row[6],
                        desk=row[7],
                        ticket_number=row[8],
                        wait_seconds=row[9],
                        resolved=row[10],
                        to_queue=row[11],
                        source=row[12],
                        reason=row[13],
                    ),
                    row[5],
                )
                count += 1
    window.housekeep(now)
    return count
