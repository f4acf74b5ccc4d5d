"""Rebuilding the window from the events table at start-up."""

from __future__ import annotations

import gc

from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.events import Event
from app.core.window import ROLLING_SECONDS, Window
from app.db.connection import raw_connection
from app.db.position import LogPosition, covered_by, snapshot_xmin
from app.db.rows import EVENT_SELECT, EVENT_WIDTH, RECEIVED_SELECT
from app.db.staff import staff_since

# The instants the ingest schema admits (EARLIEST_AT and LATEST_AT in app/api/schemas.py). A row outside
# them was stored before that check (year 1 went in as -infinity): it can be no real contact, and its
# time would turn the window's arithmetic to NaN or overflow, so replays and rebuilds pass it by.
STORABLE_OCCURRED_AT = "occurred_at >= '1970-01-01T00:00:00Z' AND occurred_at < '10000-01-01T00:00:00Z'"
# Each event is applied with the time it was first received, so late and expiry counts come out as live.
# The columns come in the order of Event's fields (app/db/rows.py), so a row builds its Event positionally.
REPLAY_EVENTS = f"""
SELECT {EVENT_SELECT}, {RECEIVED_SELECT}
FROM events
WHERE (received_at >= to_timestamp($1) OR occurred_at >= to_timestamp($1)
       OR {staff_since("to_timestamp($1)")}) AND {STORABLE_OCCURRED_AT}
  AND NOT EXISTS (SELECT 1 FROM queues AS retired WHERE retired.retired_at IS NOT NULL
                  AND retired.channel = events.channel AND retired.queue = events.queue)
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
    return (await replay_covering(engine, window, now))[0]


async def replay_covering(engine: AsyncEngine, window: Window, now: float) -> tuple[int, LogPosition]:
    """As replay(), and what of the log the replayed window holds, for the tail to go on from."""
    window.replay_until(now)
    # A million new long-lived objects would trigger the cyclic collector over and over, each pass
    # walking everything built so far: that tripled the replay's time. Collect once at the end (thawing
    # what an earlier replay froze, so a replaced window's cycles can go too), then freeze the survivors
    # so later collections no longer walk the window at all.
    gc.disable()
    try:
        count, covered = await _apply_stored(engine, window, now)
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
    window.housekeep(now)
    return count, covered


async def _apply_stored(engine: AsyncEngine, window: Window, now: float) -> tuple[int, LogPosition]:
    count = 0
    # One snapshot for the rows and the log position they cover.
    async with (
        raw_connection(engine) as driver,
        driver.transaction(isolation="repeatable_read", readonly=True),
    ):
        xmin = await snapshot_xmin(driver)
        since = replay_since(window, now)
        cursor = await driver.cursor(REPLAY_EVENTS, since)
        apply = window.apply
        width = EVENT_WIDTH
        while rows := await cursor.fetch(FETCH_ROWS):
            for row in rows:
                apply(Event(*row[:width]), row[width])
            count += len(rows)
        covered = await covered_by(driver, xmin, since)
    return count, covered
