"""Places in the events table read as a log in commit order (app/db/tail.py)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

# The oldest transaction still running: no transaction below it can commit any more. xid8 travels as
# text (asyncpg has no binary codec for it) and is held as a Python int.
HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
# In a snapshot: the transactions at or above its xmin whose rows it sees.
SEEN_ABOVE = "SELECT DISTINCT txid::text::bigint FROM events WHERE txid >= $1::text::xid8"


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A place in the log: every row with (txid, id) at or below it has been taken."""

    txid: int
    id: int


@dataclass(frozen=True, slots=True)
class LogPosition:
    """What a window holds of the log: every row up to `position`, and all rows of `applied` above it."""

    position: Position
    applied: frozenset[int]
    # The oldest time the window's events were replayed from (app/db/replay.py replay_since).
    since: float = 0.0


async def snapshot_xmin(driver: asyncpg.Connection) -> int:
    """The xmin of the connection's snapshot (in REPEATABLE READ: the transaction's, if read first)."""
    xmin: int = await driver.fetchval(HORIZON)
    return xmin


async def covered_by(driver: asyncpg.Connection, xmin: int, since: float) -> LogPosition:
    """What a REPEATABLE READ transaction whose snapshot has this xmin saw of the log (same transaction)."""
    seen = await driver.fetch(SEEN_ABOVE, str(xmin))
    return LogPosition(Position(xmin, 0), frozenset(record[0] for record in seen), since)
