"""The group-commit writer: concurrent requests share one transaction, and each is answered after commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.events import CHANNEL_NAMES, Event

log = logging.getLogger(__name__)

# Nearly every delivery is new, so a batch is first COPYed in whole: PostgreSQL inserts the rows in
# bulk, with no ON CONFLICT check, and asyncpg encodes them without inspecting every array element.
# A repeat anywhere in the batch makes the COPY fail whole, and the same rows go again, column by
# column, through INSERT_EVENTS, which sorts new from repeated.
COPY_COLUMNS = (
    "event_id",
    "type",
    "channel",
    "contact_id",
    "queue",
    "occurred_at",
    "received_at",
    "agent",
    "desk",
    "ticket_number",
    "wait_seconds",
    "resolved",
    "to_queue",
    "source",
    "reason",
)
INSERT_EVENTS = f"""
INSERT INTO events ({", ".join(COPY_COLUMNS)})
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                     $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::float8[], $12::bool[],
                     $13::text[], $14::text[], $15::text[])
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""


# Two: while one commit waits for the disk the next batch inserts; more would only queue in Postgres.
FLUSHES_IN_FLIGHT = 2


class Backpressure(Exception):
    """The writer's queue is full: the client should retry later."""


class StoreUnavailable(Exception):
    """The events could not be committed; nothing of the request was stored."""


@dataclass(slots=True)
class _Request:
    events: Sequence[Event]
    future: asyncio.Future[tuple[int, int]]


@dataclass(slots=True)
class WriterStats:
    flushes: int = 0
    rows: int = 0
    errors: int = 0
    last_error: str | None = None
    pending_rows: int = 0


CommitHook = Callable[[list[Event], float], None]
FlushHook = Callable[[int, float], None]
# Per committed request: all its events, then those that were new (the rest were duplicates).
RequestHook = Callable[[Sequence[Event], list[Event]], None]


def _rows(events: Sequence[Event], received_at: datetime) -> list[tuple[Any, ...]]:
    """The events as COPY records, in COPY_COLUMNS order."""
    from_timestamp = datetime.fromtimestamp
    return [
        (
            event.event_id,
            event.type,
            CHANNEL_NAMES[event.type],
            event.contact_id,
            event.queue,
            from_timestamp(event.at, UTC),
            received_at,
            event.agent,
            event.desk,
            event.ticket_number,
            event.wait_seconds,
            event.resolved,
            event.to_queue,
            event.source,
            event.reason,
        )
        for event in events
    ]


@dataclass
class GroupCommitWriter:
    engine: AsyncEngine
    on_commit: CommitHook
    on_duplicates: Callable[[int], None]
    max_batch: int = 2000
    queue_limit: int = 50_000
    clock: Callable[[], float] = time.time
    on_flush: FlushHook | None = None
    on_request: RequestHook | None = None
    stats: WriterStats = field(default_factory=WriterStats)
    _pending: deque[_Request] = field(default_factory=deque)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    # Held to start each flush; paused() takes it, then waits for the flushes in flight, so nothing
    # commits while the window is rebuilt.
    _gate: asyncio.Lock = field(default_factory=asyncio.Lock)
    _in_flight: deque[asyncio.Task[None]] = field(default_factory=deque)
    _closing: bool = False
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._idle.set()
        self._task = asyncio.create_task(self._run(), name="group-commit-writer")

    async def submit(self, events: Sequence[Event]) -> tuple[int, int]:
        """Store the events; returns (accepted, duplicates) once they are committed."""
        if self._closing:
            raise StoreUnavailable("the service is shutting down")
        if self.stats.pending_rows + len(events) > self.queue_limit:
            raise Backpressure
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(events, future))
        self.stats.pending_rows += len(events)
        self._idle.clear()
        self._wakeup.set()
        # A client that disconnects cancels only its wait: the flush goes on and still feeds the window.
        return await future

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Hold commits (after those in flight) for the duration; submissions queue meanwhile."""
        async with self._gate:
            await self._drain()
            yield

    async def _drain(self) -> None:
        while self._in_flight:
            await self._in_flight.popleft()

    async def close(self) -> None:
        """Refuse new work, finish what was accepted, then stop."""
        self._closing = True
        await self._idle.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        """Start a flush as soon as the one before has sent its rows, so one commit's round trip to
        the disk overlaps the next batch's insert. Flushes still apply to the window in commit order.
        """
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = [self._pending.popleft()]
                rows = len(batch[0].events)
                while self._pending and rows + len(self._pending[0].events) <= self.max_batch:
                    request = self._pending.popleft()
                    batch.append(request)
                    rows += len(request.events)
                async with self._gate:
                    while len(self._in_flight) >= FLUSHES_IN_FLIGHT:
                        await self._in_flight.popleft()
                    sent = asyncio.Event()
                    previous = self._in_flight[-1] if self._in_flight else None
                    self._in_flight.append(asyncio.create_task(self._flush(batch, rows, previous, sent)))
                    await sent.wait()
            await self._drain()
            self._idle.set()

    async def _flush(
        self, batch: list[_Request], rows: int, previous: asyncio.Task[None] | None, sent: asyncio.Event
    ) -> None:
        started = time.perf_counter()
        now = self.clock()
        events = [event for request in batch for event in request.events]
        inserted: set[str] | None = None
        failure: Exception | None = None
        try:
            inserted = await self._insert(events, datetime.fromtimestamp(now, UTC), sent)
        except Exception as error:
            failure = error
        finally:
            sent.set()
        if previous is not None:
            # The window takes flushes in the order their rows were inserted, as a replay would.
            try:
                await previous
            except Exception:
                log.exception("an earlier flush failed after its commit")
        if failure is not None:
            self.stats.errors += 1
            self.stats.last_error = f"{type(failure).__name__}: {failure}"
            log.warning("commit of %d events failed: %s", rows, self.stats.last_error)
            self.stats.pending_rows -= rows
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(StoreUnavailable(self.stats.last_error))
            return
        self.stats.pending_rows -= rows
        self.stats.flushes += 1
        self.stats.rows += rows
        credited: set[str] = set()
        for request in batch:
            if inserted is None:
                new = list(request.events)
            else:
                new = []
                for event in request.events:
                    if event.event_id in inserted and event.event_id not in credited:
                        credited.add(event.event_id)
                        new.append(event)
            duplicates = len(request.events) - len(new)
            self.on_commit(new, now)
            self.on_duplicates(duplicates)
            if self.on_request is not None:
                self.on_request(request.events, new)
            if not request.future.done():
                request.future.set_result((len(new), duplicates))
        if self.on_flush is not None:
            self.on_flush(rows, time.perf_counter() - started)

    async def _insert(
        self, events: list[Event], received_at: datetime, sent: asyncio.Event
    ) -> set[str] | None:
        """Insert and commit the events; the ids that were new, or None when all were."""
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            rows = _rows(events, received_at)
            for all_new in (True, False):
                transaction = driver.transaction()
                await transaction.start()
                try:
                    if all_new:
                        await driver.copy_records_to_table("events", records=rows, columns=COPY_COLUMNS)
                        inserted = None
                    else:
                        records = await driver.fetch(INSERT_EVENTS, *zip(*rows, strict=True))
                        inserted = {record[0] for record in records}
                except asyncpg.UniqueViolationError:
                    await transaction.rollback()
                    if all_new:
                        continue
                    raise
                except BaseException:
                    await transaction.rollback()
                    raise
                # Its rows hold their ids and locks now: the next batch may insert beside this commit.
                sent.set()
                await transaction.commit()
                return inserted
        raise AssertionError("unreachable: the second attempt returns or raises")
