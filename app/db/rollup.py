"""The interval rollup: the window's 15-minute tallies kept in Postgres, so history never scans events.

The live window already counts every outcome per channel, queue and quarter-hour by the rules of the live
numbers. The rollup writer copies the tallies it changed (absolute values, so writing twice is harmless)
every few seconds and at shutdown. An interval the window cannot hold completely (older than what it
replayed at start-up, or pruned) is never written from memory: its local day is rebuilt from the stored
events through a fresh window instead, which is also what `queuepulse rebuild-rollups` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.clock import day_bounds, interval_start, local_date
from app.core.events import Channel, Event
from app.core.kpis import COUNTED, Tally
from app.core.staff import STAFF_REPLAY_SECONDS
from app.core.window import INTERVALS_KEPT_SECONDS, Window
from app.db.connection import raw_connection
from app.db.replay import STORABLE_OCCURRED_AT
from app.db.rows import EVENT_SELECT, EVENT_WIDTH, RECEIVED_SELECT
from app.db.staff import STAFF_EVENTS_PREDICATE
from app.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# The counted fields as the core declares them (app/core/kpis.py COUNTED): whole counts, then sums.
_ROLLED_UP = [counted for counted in COUNTED if counted.kind == "count"] + [
    counted for counted in COUNTED if counted.kind == "sum"
]
COUNT_COLUMNS = tuple(counted.column for counted in _ROLLED_UP if counted.kind == "count")
SUM_COLUMNS = tuple(counted.column for counted in _ROLLED_UP if counted.kind == "sum")
ROLLUP_COLUMNS = COUNT_COLUMNS + SUM_COLUMNS
# The Tally field each of ROLLUP_COLUMNS stores, in the same order.
ROLLUP_FIELDS = tuple(counted.field for counted in _ROLLED_UP)

# Quoted: "left" is a reserved word in SQL.
_quoted = [f'"{name}"' for name in ROLLUP_COLUMNS]
_placeholders = ", ".join(
    [f"${i}::{kind}[]" for i, kind in enumerate(["text", "text", "timestamptz"], start=1)]
    + [f"${i}::int[]" for i in range(4, 4 + len(COUNT_COLUMNS))]
    + [f"${i}::float8[]" for i in range(4 + len(COUNT_COLUMNS), 4 + len(ROLLUP_COLUMNS))]
)
UPSERT_ROLLUP = f"""
INSERT INTO interval_rollup (channel, queue, interval_start, {", ".join(_quoted)})
SELECT * FROM unnest({_placeholders})
ON CONFLICT (channel, queue, interval_start) DO UPDATE SET
    {", ".join(f"{name} = EXCLUDED.{name}" for name in _quoted)}
"""
DELETE_RANGE = "DELETE FROM interval_rollup WHERE interval_start >= $1 AND interval_start < $2"

# Event's fields first (app/db/rows.py), then the time received. The events of [$1, $2), and the staff
# events of [$3, $4) (the STAFF_REPLAY_SECONDS before the start): day_events_bounds gives the bounds,
# clamped in Python to what STORABLE_OCCURRED_AT admits, so the query need not name that range. Named, a
# range over every event, it is what the planner picks on a table with no statistics yet (just after an
# import of a year, say): a scan of the whole table for each day rebuilt, about 0.4 s a day a million
# events. These two ranges each go to their index with or without statistics.
DAY_EVENTS = f"""
SELECT {EVENT_SELECT}, {RECEIVED_SELECT}
FROM events
WHERE (occurred_at >= $1 AND occurred_at < $2)
   OR ({STAFF_EVENTS_PREDICATE} AND occurred_at >= $3 AND occurred_at < $4)
ORDER BY id
"""
# The earliest instant STORABLE_OCCURRED_AT admits. Its upper end needs no clamp: a bound passed as a
# datetime is at most the year 9999.
STORABLE_FROM = datetime(1970, 1, 1, tzinfo=UTC)
# Small fetches: a rebuild inside the service yields to requests between them.
FETCH_ROWS = 2000
# In a rebuild an event is applied as if received at most this long after it happened, so a day imported
# long afterwards is still counted (the window keeps interval tallies for 50 hours) while ordinary late
# events keep the time they were received, as in the live window and the start-up replay.
REBUILD_MAX_LATENESS_SECONDS = 24 * 3600.0
# How far back the service heals days the rollup may have missed while it was down; older gaps need
# `queuepulse rebuild-rollups`.
HEAL_DAYS = 7
# A day whose rebuild fails this many times running is given up (logged, counted), so it cannot hold the
# writer in a loop; a passing outage fails the interval write first and does not count against a day.
DAY_ATTEMPTS = 5
# The days a rebuild can take: their local midnights, less a maximum wait, convert to UTC and back.
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 2), date(9998, 12, 31)

Key = tuple[Channel, str, int]
RollupItem = tuple[Channel, str, int, Tally]


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def rollup_columns(items: Iterable[RollupItem]) -> list[list[Any]]:
    """The items as the column arrays UPSERT_ROLLUP takes."""
    columns: list[list[Any]] = [[] for _ in range(3 + len(ROLLUP_COLUMNS))]
    for channel, queue, start, tally in items:
        columns[0].append(channel.value)
        columns[1].append(queue)
        columns[2].append(_utc(start))
        for index, name in enumerate(ROLLUP_FIELDS, start=3):
            columns[index].append(getattr(tally, name))
    return columns


async def upsert_rollup(engine: AsyncEngine, items: Sequence[RollupItem]) -> None:
    if not items:
        return
    async with raw_connection(engine) as driver:
        await driver.execute(UPSERT_ROLLUP, *rollup_columns(items))


async def replace_rollup(
    engine: AsyncEngine, since: float, until: float, items: Sequence[RollupItem]
) -> None:
    """Make the rows of [since, until) exactly `items`, in one transaction."""
    async with raw_connection(engine) as driver, driver.transaction():
        await driver.execute(DELETE_RANGE, _utc(since), _utc(until))
        if items:
            await driver.execute(UPSERT_ROLLUP, *rollup_columns(items))


def day_events_bounds(since: float, until: float) -> tuple[datetime, datetime, datetime, datetime]:
    """DAY_EVENTS's parameters: the events of [since, until) and the staff events of the
    STAFF_REPLAY_SECONDS before `since`, each storable (STORABLE_OCCURRED_AT)."""
    start = _utc(since)
    staff_from = start - timedelta(seconds=int(STAFF_REPLAY_SECONDS))
    return max(start, STORABLE_FROM), _utc(until), max(staff_from, STORABLE_FROM), start


async def day_tallies(
    engine: AsyncEngine, new_window: Callable[[], Window], day: date
) -> tuple[int, list[RollupItem]]:
    """Replay the events bearing on a local day through a fresh window; its interval tallies of that day.

    The events start one maximum wait before midnight, so a contact that arrived the evening before and
    was served after midnight gets its wait, as it would have in the live window.
    """
    window = new_window()
    day_start, day_end = day_bounds(day, window.tz)
    since = day_start - window.config.max_wait_seconds
    count = 0
    async with raw_connection(engine) as driver, driver.transaction(readonly=True):
        # Fetched a batch at a time rather than row by row: the cursor's iterator costs about a
        # microsecond a row, a tenth of what the window's apply does.
        cursor = await driver.cursor(DAY_EVENTS, *day_events_bounds(since, day_end))
        apply = window.apply
        while rows := await cursor.fetch(FETCH_ROWS):
            for row in rows:
                event = Event(*row[:EVENT_WIDTH])
                apply(event, min(row[EVENT_WIDTH], event.at + REBUILD_MAX_LATENESS_SECONDS))
            count += len(rows)
    # Staff still logged in at midnight count up to it (or up to now, for today).
    return count, window.interval_tallies(day_start, day_end, now=min(day_end, time.time()))


ROWS_BETWEEN = (
    "SELECT EXISTS (SELECT 1 FROM interval_rollup WHERE interval_start >= $1 AND interval_start < $2)"
)


async def _pruned(engine: AsyncEngine, day_start: float, day_end: float) -> bool:
    """Whether the rollup holds quarter-hours of this day from before the oldest stored event (pruned)."""
    async with raw_connection(engine) as driver:
        oldest = await driver.fetchval(f"SELECT min(occurred_at) FROM events WHERE {STORABLE_OCCURRED_AT}")
        # The quarter-hour holding the oldest event may hold older, pruned events too; it is not protected.
        until = day_end if oldest is None else min(day_end, interval_start(oldest.timestamp()))
        if until <= day_start:
            return False
        return bool(await driver.fetchval(ROWS_BETWEEN, _utc(day_start), _utc(until)))


async def rebuild_day(engine: AsyncEngine, new_window: Callable[[], Window], day: date) -> int:
    """Rewrite one local day's rollup rows from the stored events; returns how many events were replayed.

    A day whose events were pruned while the rollup still holds its rows is left alone: the rollup is then
    the only record of it, and a rebuild from what is left would erase history.
    """
    tz = new_window().tz
    day_start, day_end = day_bounds(day, tz)
    if await _pruned(engine, day_start, day_end):
        log.warning("rollup of %s kept: its events are no longer all stored (pruned)", day)
        return 0
    count, items = await day_tallies(engine, new_window, day)
    await replace_rollup(engine, day_start, day_end, items)
    return count


async def rebuild_range(
    engine: AsyncEngine,
    new_window: Callable[[], Window],
    first: date,
    last: date,
    progress: Callable[[date, int], None] | None = None,
    failed: list[date] | None = None,
) -> int:
    """Rebuild every local day from first to last inclusive; returns the events replayed.

    With a `failed` list a day that cannot be rebuilt is logged and listed there, and the others go on;
    without one its error is raised.
    """
    total = 0
    day = first
    while day <= last:
        try:
            count = await rebuild_day(engine, new_window, day)
        except Exception as error:
            if failed is None:
                raise
            log.warning("rollup of %s not rebuilt: %s: %s", day, type(error).__name__, error)
            failed.append(day)
            count = 0
        total += count
        if progress is not None:
            progress(day, count)
        day += timedelta(days=1)
    return total


async def event_days(engine: AsyncEngine, tz_name: str) -> tuple[date, date] | None:
    """The first and last local day holding events, or None when there are none."""
    async with raw_connection(engine) as driver:
        row = await driver.fetchrow(
            "SELECT (min(occurred_at) AT TIME ZONE $1)::date, (max(occurred_at) AT TIME ZONE $1)::date "
            f"FROM events WHERE {STORABLE_OCCURRED_AT}",
            tz_name,
        )
    if row is None or row[0] is None:
        return None
    return row[0], row[1]


async def rebuild_command(
    engine: AsyncEngine,
    new_window: Callable[[], Window],
    first: date | None,
    last: date | None,
    now: float,
    on_month: Callable[[date], None] | None = None,
) -> str:
    """`queuepulse rebuild-rollups`: rebuild the days asked for (default: every day with events); the
    summary line. `on_month` is called with each first of a month the rebuild reaches (the CLI's progress).
    """
    tz = new_window().tz
    if first is None or last is None:
        span = await event_days(engine, tz.key)
        if span is None and first is None:
            return "no events stored: nothing to rebuild"
        first = first or (max(span[0], EARLIEST_DAY) if span else local_date(now, tz))
        last = last or local_date(now, tz)
    if first > last:
        raise ValueError(f"--from {first} is after --to {last}")
    if first < EARLIEST_DAY or last > LATEST_DAY:
        raise ValueError(f"--from and --to must lie between {EARLIEST_DAY} and {LATEST_DAY}")

    def progress(day: date, _count: int) -> None:
        if on_month is not None and day.day == 1:
            on_month(day)

    started = time.perf_counter()
    failed: list[date] = []
    events = await rebuild_range(engine, new_window, first, last, progress=progress, failed=failed)
    days = (last - first).days + 1
    seconds = time.perf_counter() - started
    rebuilt = days - len(failed)
    summary = f"rebuilt {rebuilt} days ({first} to {last}) from {events:,} events in {seconds:.1f} s"
    if failed:
        raise RebuildFailed(f"{summary}; failed, run again for them: {', '.join(map(str, failed))}")
    return summary


class RebuildFailed(Exception):
    """Some days of a rebuild-rollups run failed; the message says which, the others were rebuilt."""


@dataclass(slots=True)
class RollupStats:
    flushes: int = 0
    rows: int = 0
    days_rebuilt: int = 0
    # Days given up after DAY_ATTEMPTS failed rebuilds: `queuepulse rebuild-rollups` redoes them.
    days_failed: int = 0
    errors: int = 0
    last_error: str | None = None


# The PostgreSQL advisory lock whose holder is the one rollup (and checkpoint) writer among the instances
# on a database: a constant key, 'qp' 'rollup' in ASCII.
ROLLUP_LOCK_KEY = 0x7170_726F_6C6C_7570


@dataclass
class Leadership:
    """Holds ROLLUP_LOCK_KEY on a connection of its own, so one instance at a time writes the rollup.

    Session-level: when the holder dies, or PostgreSQL restarts, its session ends and the lock goes with it;
    another instance takes it at its next attempt (every rollup period). A holder checks its connection at
    each attempt, so after a PostgreSQL restart it knows it lost the lock. Two writers for a moment would
    do no harm: every instance's window holds the same tallies and the rows are absolute values.
    """

    dsn: str
    key: int = ROLLUP_LOCK_KEY
    _connection: asyncpg.Connection | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None

    async def hold(self) -> bool:
        """Whether this instance holds the lock now: checks the one held, else tries to take it."""
        if self._connection is not None:
            try:
                await self._connection.fetchval("SELECT 1", timeout=2.0)
                return True
            except Exception as error:
                log.warning("rollup lock lost: %s: %s", type(error).__name__, error)
                await self.release()
        connection = await asyncpg.connect(self.dsn, timeout=5.0)
        try:
            taken = bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", self.key))
        except BaseException:
            await connection.close()
            raise
        if not taken:
            await connection.close()
            return False
        self._connection = connection
        log.info("this instance now writes the rollup (holds its advisory lock)")
        return True

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2.0)


@dataclass
class RollupWriter:
    """Keeps interval_rollup equal to the window's interval tallies, a few seconds behind.

    With `leadership`, only the instance holding the rollup lock writes; the others drop what their window
    marked dirty, and heal today whole when they take the lock over.
    """

    engine: AsyncEngine
    window: Window
    new_window: Callable[[], Window]
    clock: Callable[[], float] = time.time
    period_seconds: float = 5.0
    stats: RollupStats = field(default_factory=RollupStats)
    # Intervals from here on are complete in the window: it replayed all of this day at start-up.
    complete_from: float = float("inf")
    _retry: set[Key] = field(default_factory=set)
    _stale_days: set[date] = field(default_factory=set)
    _day_failures: dict[date, int] = field(default_factory=dict)
    _heal_pending: bool = False
    _task: asyncio.Task[None] | None = None
    # The window generation last seen: a new one means the window adopted a fresh replay.
    _generation_seen: int = -1
    leadership: Leadership | None = None
    # Called after each flush while this instance writes (the checkpoint, app/db/checkpoint.py).
    after_flush: Callable[[], Awaitable[object]] | None = None

    def open(self, now: float) -> None:
        """Call right after the start-up replay: today is written whole, missed days are rebuilt."""
        day_start, _ = self.window.today_bounds(now)
        self.complete_from = day_start
        self._generation_seen = self.window.generation
        # Whatever the window marked while replaying is covered by healing today and older days.
        self.window.take_dirty()
        self._heal_pending = True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rollup-writer")

    async def close(self) -> None:
        """Stop the periodic task and write what is still dirty (if this instance writes the rollup)."""
        await cancel_and_wait(self._task)
        self._task = None
        try:
            # A writer that never got its turn (it stops before its first period) takes the lock if free.
            if await self._leading():
                await self.flush()
        except Exception as error:
            self._failed(error)
        if self.leadership is not None:
            await self.leadership.release()
        if self._stale_days:
            days = ", ".join(map(str, sorted(self._stale_days)))
            log.warning("rollup days not rebuilt (run queuepulse rebuild-rollups): %s", days)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period_seconds)
            try:
                if not await self._leading():
                    continue
                await self.flush()
                if self.after_flush is not None:
                    await self.after_flush()
            except Exception as error:
                self._failed(error)

    async def _leading(self) -> bool:
        """Whether to write now; a writer newly in charge rewrites today whole, as after a start-up."""
        if self.leadership is None:
            return True
        was_held = self.leadership.held
        try:
            held = await self.leadership.hold()
        except Exception:
            held = False
            if was_held:
                raise
        if not held:
            # Another instance writes: what this window marked changed is its to write.
            self.window.take_dirty()
            self._retry = set()
            return False
        if not was_held:
            self._heal_pending = True
        return True

    def _failed(self, error: Exception) -> None:
        self.stats.errors += 1
        self.stats.last_error = f"{type(error).__name__}: {error}"
        log.warning("rollup write failed, will retry: %s", self.stats.last_error)

    async def _heal(self) -> None:
        now = self.clock()
        tz = self.window.tz
        day_start, day_end = self.window.today_bounds(now)
        # Read synchronously with no await between, so the rows are one consistent state of the window.
        items = self.window.interval_tallies(day_start, day_end, now=now)
        await replace_rollup(self.engine, day_start, day_end, items)
        async with raw_connection(self.engine) as driver:
            last = await driver.fetchval(
                "SELECT max(interval_start) FROM interval_rollup WHERE interval_start < $1", _utc(day_start)
            )
        today = local_date(now, tz)
        oldest = today - timedelta(days=HEAL_DAYS)
        if last is not None:
            day = max(oldest, local_date(last.timestamp(), tz))
            while day < today:
                self._stale_days.add(day)
                day += timedelta(days=1)
        self._heal_pending = False

    async def flush(self) -> None:
        """Write the changed intervals; rebuild the days of those the window does not hold whole."""
        if self._heal_pending:
            await self._heal()
        now = self.clock()
        if self.window.generation != self._generation_seen:
            # The window adopted a fresh replay (a target change, a heal): it holds only today in full.
            self._generation_seen = self.window.generation
            self.complete_from = max(self.complete_from, self.window.today_bounds(now)[0])
        keys = self._retry | self.window.take_dirty(now)
        self._retry = set()
        horizon = max(self.complete_from, now - INTERVALS_KEPT_SECONDS + 3600)
        items: list[RollupItem] = []
        for channel, queue, start in keys:
            tally = self.window.interval_tally(channel, queue, start)
            if start < horizon or tally is None:
                self._stale_days.add(local_date(start, self.window.tz))
            else:
                items.append((channel, queue, start, tally))
        try:
            await upsert_rollup(self.engine, items)
        except Exception:
            self._retry |= {(channel, queue, start) for channel, queue, start, _ in items}
            raise
        self.stats.flushes += 1
        self.stats.rows += len(items)
        # Each day on its own: one that fails (say, an event time no day arithmetic can follow) must not
        # keep the days after it, and with them late events, out of the rollup.
        for day in sorted(self._stale_days):
            try:
                await rebuild_day(self.engine, self.new_window, day)
            except Exception as error:
                self._day_failed(day, error)
                continue
            self._stale_days.discard(day)
            self._day_failures.pop(day, None)
            self.stats.days_rebuilt += 1

    def _day_failed(self, day: date, error: Exception) -> None:
        self.stats.errors += 1
        self.stats.last_error = f"{type(error).__name__}: {error}"
        attempts = self._day_failures.get(day, 0) + 1
        if attempts < DAY_ATTEMPTS:
            self._day_failures[day] = attempts
            log.warning("rollup of %s not rebuilt, will retry: %s", day, self.stats.last_error)
            return
        self._day_failures.pop(day, None)
        self._stale_days.discard(day)
        self.stats.days_failed += 1
        log.error(
            "rollup of %s given up after %d failed rebuilds (rebuild-rollups --from %s --to %s): %s",
            day,
            attempts,
            day,
            day,
            self.stats.last_error,
        )
