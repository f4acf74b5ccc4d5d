"""The events table as a log: every instance feeds its window from it in commit order.

Each instance applies its own writer's commits at once (so an event is in the acknowledging instance's
figures when its 2xx goes out) and tails the table for everything else. A bigserial id is handed out
before commit, so a high-water mark on it alone skips a row that commits late under a smaller id. The
tail reads by (txid, id) instead, and only below the oldest transaction still running
(`pg_snapshot_xmin(pg_current_snapshot())`): no transaction below that horizon can commit any more, so a
position there never needs to go back.

What the window already holds is told apart by transaction id: the writer announces its transaction's id
before commit (`begin`), and once the rows are in the window (`applied`) or their commit failed with an
unknown outcome (`abandoned`: if it did commit, the tail applies them like anyone else's). The tail stops
at a transaction still pending, so it can never race the writer to the same rows. A replay tells the
tail where it left off: every row below its snapshot's xmin, plus the transactions above it that the
snapshot saw (`LogPosition`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.events import Event
from app.core.window import Window
from app.db.connection import raw_connection
from app.db.position import LogPosition, Position
from app.db.replay import STORABLE_OCCURRED_AT
from app.db.rows import EVENT_SELECT, EVENT_WIDTH, RECEIVED_SELECT
from app.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Rows read per poll; a tail further behind catches up at this many per round trip.
TAIL_BATCH = 5000
# Whether the window takes the row: stored poison (see app/db/replay.py) and retired queues stay out, as
# in a replay.
_TAKEN = f"""({STORABLE_OCCURRED_AT} AND NOT EXISTS (
    SELECT 1 FROM queues AS retired WHERE retired.retired_at IS NOT NULL
    AND retired.channel = events.channel AND retired.queue = events.queue))"""
# The horizon first (one row even when nothing is new: then the other columns are NULL), then the rows
# after the position below it, in commit order, but for those of transactions the window holds already
# (this process's own commits: a lone instance reads nothing back). One statement, so one snapshot for
# both. xid8 travels as text (asyncpg has no binary codec for it) and is held as a Python int.
TAIL_EVENTS = f"""
WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
SELECT horizon.xmin::text::bigint, tailed.*
FROM horizon LEFT JOIN LATERAL (
    SELECT {EVENT_SELECT}, {RECEIVED_SELECT}, txid::text::bigint, id, {_TAKEN}
    FROM events
    WHERE (txid, id) > ($1::text::xid8, $2) AND txid < horizon.xmin
      AND txid::text::bigint <> ALL($4::bigint[])
    ORDER BY txid, id
    LIMIT $3
) AS tailed ON true
"""
# How long a commit of this process waits for the tail to take every earlier transaction before its
# events go into the window regardless: the horizon is the oldest transaction running in the whole
# PostgreSQL cluster, which another application's long transaction can hold back.
ORDER_WAIT_SECONDS = 0.25
# A commit waits for that order only while other instances run (Presence counts them) or wrote lately
# (the tail applied their rows within this time). A single instance never waits.
REPLICATED_SECONDS = 300.0
# Every instance holds this advisory lock shared on a connection of its own while it runs; the number of
# holders on the database is the number of instances.
PRESENCE_KEY = (0x7170, 1)
PRESENCE_SECONDS = 0.5
_PRESENT = "SELECT pg_advisory_lock_shared($1::int4, $2::int4)"
# A lone instance polls this seldom: nobody else writes (a second instance is counted within
# PRESENCE_SECONDS, and its rows are read then at the usual pace).
ALONE_POLL_SECONDS = 0.5
_INSTANCES = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND classid = $1::int4::oid AND objid = $2::int4::oid
  AND objsubid = 2 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


@dataclass(slots=True)
class TailStats:
    polls: int = 0
    rows: int = 0
    applied: int = 0
    errors: int = 0
    last_error: str | None = None
    # Monotonic time of the start of the last poll that found the tail caught up to the horizon.
    caught_up_at: float = 0.0
    # The received_at of the last row applied.
    last_received_at: float = 0.0
    # Monotonic time the tail last applied another instance's rows.
    foreign_at: float = float("-inf")


AppliedHook = Callable[[Sequence[Event]], None]


@dataclass
class Tail:
    """Polls the events table below the horizon and applies other instances' commits to the window."""

    engine: AsyncEngine
    window: Window
    clock: Callable[[], float] = time.time
    poll_seconds: float = 0.025
    on_applied: AppliedHook | None = None
    stats: TailStats = field(default_factory=TailStats)
    position: Position = field(default_factory=lambda: Position(0, 0))
    # Transactions at or above `position` whose rows the window holds already (own commits, a replay).
    applied_txids: set[int] = field(default_factory=set)
    # This process's transactions between their insert and the window taking (or giving up) their rows.
    pending: set[int] = field(default_factory=set)
    # Every transaction below this one is in the window (or is this process's own, pending).
    through: int = 0
    # The oldest time the window's events were replayed from (kept in a checkpoint).
    since: float = 0.0
    # How many instances run on the database (Presence); None while unknown.
    instances: int | None = None
    # Held for each poll's read and apply; a rebuild holds it so no poll applies to a window being swapped.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _advanced: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    # ---- the writer's side (app/db/writer.py CommitLog) ----------------------------------------

    def begin(self, txid: int) -> None:
        self.pending.add(txid)

    def applied(self, txid: int) -> None:
        self.pending.discard(txid)
        if txid >= self.position.txid:
            self.applied_txids.add(txid)

    def abandoned(self, txid: int) -> None:
        self.pending.discard(txid)
        self._wakeup.set()

    def alone(self) -> bool:
        """The only instance on the database, and no other one wrote lately."""
        return self.instances == 1 and time.monotonic() - self.stats.foreign_at > REPLICATED_SECONDS

    async def ordered(self, txid: int) -> None:
        """Once every transaction before `txid` is in the window: so this process applies its own commit
        after them, in the order a replay (and every other instance) applies them, and order-dependent
        counters (out_of_order) come out the same everywhere. Only while other instances write
        (REPLICATED_SECONDS), and for at most ORDER_WAIT_SECONDS: then the events go in regardless."""
        if self._task is None or self.alone():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ORDER_WAIT_SECONDS):
                while self.through < txid:
                    self._advanced.clear()
                    self._wakeup.set()
                    await self._advanced.wait()

    # ---- position -------------------------------------------------------------------------------

    def reset(self, covered: LogPosition) -> None:
        """After a replay swapped in: the window holds what `covered` says. Own transactions still pending
        stay pending (a rebuild pauses the writer, so there are none)."""
        self.position = covered.position
        self.applied_txids = set(covered.applied)
        self.through = covered.position.txid
        self.since = covered.since

    def covered(self) -> LogPosition:
        """What the window holds now (for a checkpoint taken with no await in between)."""
        return LogPosition(self.position, frozenset(self.applied_txids), self.since)

    def lag_seconds(self) -> float:
        """How long ago the tail last found nothing left below the horizon; 0 before it first ran."""
        if not self.stats.caught_up_at:
            return 0.0
        return max(0.0, time.monotonic() - self.stats.caught_up_at)

    # ---- running --------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="log-tail")

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
            self._advanced.set()

    async def catch_up(self) -> int:
        """Poll until nothing is left below the horizon (before the tail runs: joining from a checkpoint);
        returns the events applied."""
        before = self.stats.applied
        while await self.poll():
            pass
        return self.stats.applied - before

    def ring(self) -> None:
        """Poll now rather than at the next period (a doorbell; polling stays the truth)."""
        self._wakeup.set()

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        async with self.lock:
            yield

    async def _run(self) -> None:
        while True:
            try:
                more = await self.poll()
            except Exception as error:
                self.stats.errors += 1
                self.stats.last_error = f"{type(error).__name__}: {error}"
                log.info("log tail poll failed, will retry: %s", self.stats.last_error)
                more = False
            if more:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds if not self.alone() else ALONE_POLL_SECONDS):
                    await self._wakeup.wait()
            self._wakeup.clear()

    async def poll(self) -> bool:
        """Read and apply one batch; True when there may be more right away."""
        async with self.lock:
            started = time.monotonic()
            async with raw_connection(self.engine) as driver:
                rows = await driver.fetch(
                    TAIL_EVENTS,
                    str(self.position.txid),
                    self.position.id,
                    TAIL_BATCH,
                    list(self.applied_txids),
                )
            self.stats.polls += 1
            horizon: int = rows[0][0]
            if rows[0][1] is None:
                rows = []
            stopped_at = self._take(rows)
            if stopped_at is not None:
                self.through = max(self.through, stopped_at)
            elif len(rows) < TAIL_BATCH:
                # Everything below the horizon is taken (the rows left out were the window's already).
                self.through = max(self.through, horizon)
                self._advance(Position(horizon, 0))
                self.stats.caught_up_at = started
            self._advanced.set()
            return stopped_at is None and len(rows) == TAIL_BATCH

    def _take(self, rows: Iterable[asyncpg.Record]) -> int | None:
        """Apply the rows in order up to the first of a transaction still pending; that transaction if it
        stopped there.

        Runs with no await: the window, the position and the sets change together.
        """
        width = EVENT_WIDTH + 1
        window = self.window
        group: list[Event] = []
        group_key: tuple[int, float] | None = None
        applied_count = 0
        newest = self.position
        stopped: int | None = None
        last_received = self.stats.last_received_at
        for row in rows:
            txid = row[width + 1]
            if txid in self.pending:
                stopped = txid
                break
            newest = Position(txid, row[width + 2])
            self.stats.rows += 1
            if txid in self.applied_txids or not row[width + 3]:
                continue
            received = row[width]
            key = (txid, received)
            if key != group_key:
                if group and group_key is not None:
                    window.apply_many(group, group_key[1])
                    applied_count += len(group)
                    self._notify(group)
                group, group_key = [], key
            group.append(Event(*row[1:width]))
            last_received = received
        if group and group_key is not None:
            window.apply_many(group, group_key[1])
            applied_count += len(group)
            self._notify(group)
        self.stats.applied += applied_count
        self.stats.last_received_at = last_received
        if applied_count:
            self.stats.foreign_at = time.monotonic()
        self._advance(newest)
        return stopped

    def _advance(self, newest: Position) -> None:
        if newest > self.position:
            self.position = newest
            self.applied_txids = {txid for txid in self.applied_txids if txid >= newest.txid}

    def _notify(self, events: Sequence[Event]) -> None:
        if self.on_applied is not None:
            self.on_applied(events)


@dataclass
class Presence:
    """Announces this instance on the database and counts the instances there (PRESENCE_KEY), so a lone
    instance knows its commits need no ordering against anyone's (Tail.ordered)."""

    dsn: str
    tail: Tail
    every: float = PRESENCE_SECONDS
    _connection: asyncpg.Connection | None = None
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="presence")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._drop()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2.0)

    async def count(self) -> int:
        if self._connection is None:
            connection = await asyncpg.connect(self.dsn, timeout=5.0)
            try:
                await connection.execute(_PRESENT, *PRESENCE_KEY)
            except BaseException:
                await connection.close()
                raise
            self._connection = connection
        instances: int = await self._connection.fetchval(_INSTANCES, *PRESENCE_KEY, timeout=2.0)
        return instances

    async def _run(self) -> None:
        while True:
            try:
                self.tail.instances = await self.count()
            except Exception as error:
                # Unknown: commits keep waiting for their order (a bounded wait), as with company.
                self.tail.instances = None
                log.info("instance count unknown: %s: %s", type(error).__name__, error)
                await self._drop()
            await asyncio.sleep(self.every)
