"""The lobby's wait ledger fed from the events table, and its score kept in `wait_estimates`.

The ledger (app/core/waits.py) reads the visit channel's stored events itself, in id order as a replay
does, rather than riding on the writer: so it sees every event however it was stored (this instance,
another one, a rebuild), and after a restart it rebuilds the same estimates from the same rows. A row
may commit a moment after rows with higher ids (flushes overlap), so each read goes back over the ids of
the last READ_BACK_SECONDS and skips the rows it applied already.

Scored estimates are written to `wait_estimates` (upserted: a rebuilt one is the same row), which keeps
the accuracy per period for as long as the events are kept and longer.

The window checkpoint (app/db/checkpoint.py) carries the ledger with its read position (`FeedState`), so a
joining instance restores it and reads only the rows after that instead of the day's visit events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.clock import day_bounds
from app.core.events import Channel, Event
from app.core.waits import Score, Scored, WaitLedger
from app.db.connection import raw_connection
from app.db.replay import STORABLE_OCCURRED_AT
from app.db.rows import EVENT_SELECT, EVENT_WIDTH
from app.db.tables import wait_estimates
from app.tasks import cancel_and_wait

log = logging.getLogger("queuepulse.waits")

REFRESH_SECONDS = 2.0
# How long a flush takes at most from its ids being drawn to its commit, with a wide margin.
READ_BACK_SECONDS = 30.0
RETRY_SECONDS = 5.0
VISIT = Channel.VISIT.value

_CATCH_UP = f"""
SELECT id, {EVENT_SELECT}
FROM events
WHERE channel = '{VISIT}' AND id <= $2
  AND (received_at >= to_timestamp($1) OR occurred_at >= to_timestamp($1)) AND {STORABLE_OCCURRED_AT}
  AND NOT EXISTS (SELECT 1 FROM queues AS retired WHERE retired.retired_at IS NOT NULL
                  AND retired.channel = events.channel AND retired.queue = events.queue)
ORDER BY id
"""
_NEW = f"""
SELECT id, {EVENT_SELECT}
FROM events
WHERE id > $1 AND channel = '{VISIT}' AND {STORABLE_OCCURRED_AT}
ORDER BY id
"""


@dataclass(frozen=True, slots=True)
class FeedState:
    """The ledger with what of the events table it holds: every visit row up to `floor` that bears on the
    day from `since`, and the rows of `applied` above it (up to `top`, the highest id seen)."""

    ledger: WaitLedger
    floor: int
    top: int
    applied: frozenset[int]
    since: float


@dataclass
class WaitFeed:
    engine: AsyncEngine
    ledger: WaitLedger
    # How fresh the ledger is goes by the monotonic clock: the service's clock may stand still (tests).
    clock: Callable[[], float] = time.monotonic
    # Read back to here at every refresh (the highest id seen READ_BACK_SECONDS ago).
    floor: int = 0
    last_refresh: float = float("-inf")
    # The oldest time the caught-up events bear on (app/db/replay.py replay_since), as in the window.
    since: float | None = None
    # The ledger came from a checkpoint (restore) rather than a catch-up of the day.
    restored: bool = False

    def __post_init__(self) -> None:
        self._marks: deque[tuple[float, int]] = deque()
        self._applied: set[int] = set()
        self._top = 0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def catch_up(self, since: float) -> int:
        """Apply the stored visit events that bear on today (from `since`), as the replay does."""
        async with raw_connection(self.engine) as driver, driver.transaction(isolation="repeatable_read"):
            top = await driver.fetchval("SELECT coalesce(max(id), 0) FROM events")
            rows = await driver.fetch(_CATCH_UP, since, top)
        for row in rows:
            self.ledger.apply(Event(*row[1 : 1 + EVENT_WIDTH]))
        self._top = self.floor = int(top)
        self._marks.append((self.clock(), self._top))
        self.last_refresh = self.clock()
        self.since, self.restored = since, False
        return len(rows)

    def state(self) -> FeedState | None:
        """The ledger and its position, for a checkpoint (taken with no await before it is encoded: the
        ledger is the live one); None before a catch-up."""
        if self.since is None:
            return None
        return FeedState(self.ledger, self.floor, self._top, frozenset(self._applied), self.since)

    def restore(self, state: FeedState) -> None:
        """Take a checkpointed ledger instead of catching up; the next refresh reads the rows after it."""
        self.ledger = state.ledger
        self.floor, self._top, self._applied = state.floor, state.top, set(state.applied)
        # Read back over the checkpoint's rows for READ_BACK_SECONDS from now: later than its writer would
        # stop, so a row committed late under a low id is still found.
        self._marks = deque([(self.clock(), state.top)])
        self.since, self.restored = state.since, True
        self.last_refresh = self.clock()

    async def rebuild(self, since: float) -> None:
        """Catch a fresh ledger up from `since` and swap it in (the replay's start moved since the first)."""
        async with self._lock:
            kept = (self.ledger, self.floor, self._top, self._applied, self._marks, self.since, self.restored)
            self.ledger = WaitLedger(self.ledger.max_wait_seconds)
            self._applied, self._marks = set(), deque()
            try:
                await self.catch_up(since)
            except BaseException:
                (
                    self.ledger,
                    self.floor,
                    self._top,
                    self._applied,
                    self._marks,
                    self.since,
                    self.restored,
                ) = kept
                raise

    async def refresh(self) -> int:
        """Apply the visit events stored since the last read; how many were new."""
        async with self._lock:
            now = self.clock()
            async with raw_connection(self.engine) as driver:
                rows = await driver.fetch(_NEW, self.floor)
            applied = 0
            for row in rows:
                row_id = int(row[0])
                self._top = max(self._top, row_id)
                if row_id in self._applied:
                    continue
                self._applied.add(row_id)
                self.ledger.apply(Event(*row[1 : 1 + EVENT_WIDTH]))
                applied += 1
            self._marks.append((now, self._top))
            while len(self._marks) > 1 and self._marks[1][0] <= now - READ_BACK_SECONDS:
                self._marks.popleft()
            if self._marks[0][0] <= now - READ_BACK_SECONDS:
                self.floor = self._marks[0][1]
                self._applied = {row_id for row_id in self._applied if row_id > self.floor}
            self.last_refresh = now
            return applied

    async def persist(self) -> int:
        """Write the estimates scored since the last call; how many."""
        records = self.ledger.take_new()
        if not records:
            return 0
        try:
            await store(self.engine, records)
        except Exception:
            # Kept for the next attempt; a restart would rebuild them from the events anyway.
            self.ledger.give_back(records)
            raise
        return len(records)

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
                await self.persist()
                await asyncio.sleep(REFRESH_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("wait ledger refresh failed, retrying: %s: %s", type(error).__name__, error)
                await asyncio.sleep(RETRY_SECONDS)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="wait-ledger")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        try:
            await self.refresh()
            await self.persist()
        except Exception as error:
            log.warning("wait ledger not written at shutdown: %s", error)


async def store(engine: AsyncEngine, records: list[Scored]) -> None:
    rows = [
        {
            "queue": record.given.queue,
            "contact_id": record.given.contact_id,
            "issued_at": datetime.fromtimestamp(record.given.issued_at, UTC),
            "estimate_seconds": record.given.seconds,
            "estimate_range": record.given.range,
            "basis": record.given.basis,
            "called_at": datetime.fromtimestamp(record.called_at, UTC),
            "actual_seconds": record.actual_seconds,
            "inside": record.inside,
        }
        for record in records
    ]
    statement = insert(wait_estimates)
    statement = statement.on_conflict_do_update(
        index_elements=["queue", "contact_id", "issued_at"],
        set_={name: statement.excluded[name] for name in rows[0] if name not in ("queue", "contact_id")},
    )
    async with engine.begin() as connection:
        await connection.execute(statement, rows)


_HISTORY = text(
    """
SELECT (issued_at AT TIME ZONE :tz)::date AS day, queue, count(*) AS scored,
       count(*) FILTER (WHERE inside) AS inside, sum(abs(actual_seconds - estimate_seconds)) AS error_sum
FROM wait_estimates
WHERE issued_at >= :since AND issued_at < :until
GROUP BY 1, 2
ORDER BY 1, 2
"""
)


async def accuracy_by_day(
    engine: AsyncEngine, first: date, last: date, time_zone: str
) -> list[dict[str, Any]]:
    """Per local day (by issue time) and queue: the stored score, as Score.as_dict gives it."""
    tz = ZoneInfo(time_zone)
    since, until = day_bounds(first, tz)[0], day_bounds(last, tz)[1]
    async with engine.connect() as connection:
        result = await connection.execute(
            _HISTORY,
            {
                "tz": time_zone,
                "since": datetime.fromtimestamp(since, UTC),
                "until": datetime.fromtimestamp(until, UTC),
            },
        )
        found = []
        for day, queue, scored, inside, error_sum in result:
            score = Score(scored=int(scored), inside=int(inside), error_sum=float(error_sum))
            row = {"date": day.isoformat(), "queue": queue, **score.as_dict()}
            # Hidden and left are counted live only (today, from the ledger), not stored per ticket.
            del row["hidden"], row["left"]
            found.append(row)
        return found
