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

from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.events import Event

log = logging.getLogger(__name__)

INSERT_EVENTS = """
INSERT INTO events (event_id, type, channel, contact_id, queue, occurred_at, received_at,
                    agent, desk, ticket_number, wait_seconds, resolved, to_queue, source, reason)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                     $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::float8[], $12::bool[],
                     $13::text[], $14::text[], $15::text[])
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""


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


def _columns(events: Sequence[Event], received_at: datetime) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(15)]
    (
        ids,
        types,
        channels,
        contacts,
        queues,
        occurred,
        received,
        agents,
        desks,
        tickets,
        waits,
        resolved,
        to_queues,
        sources,
        reasons,
    ) = columns
    for event in events:
        ids.append(event.event_id)
        types.append(event.type)
        channels.append(event.channel.value)
        contacts.append(event.contact_id)
        queues.append(event.queue)
        occurred.append(datetime.fromtimestamp(event.at, UTC))
        received.append(received_at)
        agents.append(event.agent)
        desks.append(event.desk)
        tickets.append(event.ticket_number)
        waits.append(event.wait_seconds)
        resolved.append(event.resolved)
        to_queues.append(event.to_queue)
        sources.append(event.source)
        reasons.append(event.reason)
    return columns


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
    # Held for each flush; paused() takes it so nothing commits while the window is rebuilt.
    _gate: asyncio.Lock = field(default_factory=asyncio.Lock)
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
        # The flush goes on if the client disconnects: its outcome still reaches the window.
        return await asyncio.shield(future)

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Hold commits (after the one in progress) for the duration; submissions queue meanwhile."""
        async with self._gate:
            yield

    async def close(self) -> None:
        """Refuse new work, finish what was accepted, then stop."""
        self._closing = True
        await self._idle.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
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
                    await self._flush(batch, rows)
            self._idle.set()

    async def _flush(self, batch: list[_Request], rows: int) -> None:
        started = time.perf_counter()
        now = self.clock()
        events = [event for request in batch for event in request.events]
        try:
            inserted = await self._insert(events, datetime.fromtimestamp(now, UTC))
        except Exception as error:
            self.stats.errors += 1
            self.stats.last_error = f"{type(error).__name__}: {error}"
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

    async def _insert(self, events: list[Event], received_at: datetime) -> set[str]:
        async with self.engine.begin() as connection:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            records = await driver.fetch(INSERT_EVENTS, *_columns(events, received_at))
        return {record[0] for record in records}
