"""The group-commit writer: concurrent requests share one transaction, and each is answered after commit.

Each request is stored whole or not at all, on its own: a request that repeats a stored event_id with
another payload (Conflict), or holds a value PostgreSQL refuses (Refused), is answered with that error
and the other requests of its flush are committed as if it had not been sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.events import Event
from app.db.connection import raw_connection
from app.db.rows import (
    COPY_COLUMNS,
    INSERT_EVENTS,
    SELECT_STORED,
    Row,
    copy_records,
    differing_fields,
    payload_of,
)
from app.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Nearly every delivery is new, so a batch is first COPYed in whole: PostgreSQL inserts the rows in
# bulk, with no ON CONFLICT check, and asyncpg encodes them without inspecting every array element.
# A repeat anywhere in the batch makes the COPY fail whole, and the same rows go again through the
# fallback (_sort), which looks up the stored rows of the batch's ids, sorts new from repeated and
# conflicting, and inserts the new ones with INSERT_EVENTS. The records, and the payload a repeat is
# compared by, are app/db/rows.py's.

# Looking the request's ids up again after another flush committed one of them meanwhile: once more
# settles it, unless yet another delivery of the same id commits in between.
RACE_ATTEMPTS = 3

# Two: while one commit waits for the disk the next batch inserts; more would only queue in Postgres.
FLUSHES_IN_FLIGHT = 2

# SQLSTATE classes of a failure in the server or the link to it, not in the rows: connection (08),
# insufficient resources (53), operator intervention such as a shutdown (57), system (58), internal (XX).
# These fail the whole flush; any other error PostgreSQL raises is sorted out request by request.
_SERVER_CLASSES = frozenset({"08", "53", "57", "58", "XX"})
# SQLSTATE classes of a value PostgreSQL refuses (data exception, integrity constraint): sending the same
# request again fails the same way.
_REFUSED_CLASSES = frozenset({"22", "23"})
# What building or encoding a row raises for a value that cannot be stored (a timestamp out of range; a
# wrong type or an unknown event type in an Event built by hand); asyncpg's encoding errors are ValueErrors.
_VALUE_ERRORS = (ValueError, TypeError, OverflowError, KeyError)


class Backpressure(Exception):
    """The writer's queue is full: the client should retry later."""


class StoreUnavailable(Exception):
    """The events could not be committed; nothing of the request was stored."""


@dataclass(frozen=True, slots=True)
class Clash:
    """One event whose event_id is already taken by another payload."""

    index: int  # in the request's events
    event_id: str
    type: str
    fields: tuple[str, ...]  # those of PAYLOAD_COLUMNS that differ
    earlier: int | None  # the index of the same event_id earlier in the request; None: already stored

    @property
    def message(self) -> str:
        return self.describe(None if self.earlier is None else f"item {self.earlier}")

    def describe(self, earlier: str | None) -> str:
        """The message, with the earlier item of the request (if the clash is with one) named so."""
        where = "stored before" if earlier is None else f"given earlier in this request ({earlier})"
        return f"event_id {self.event_id!r} was {where} with a different {', '.join(self.fields)}"


class Conflict(StoreUnavailable):
    """The request reuses an event_id for another payload; nothing of the request was stored.

    A StoreUnavailable, so whoever only needs "not stored" treats it so; routes catch it first, since
    sending the request again gets the same answer.
    """

    def __init__(self, clashes: Sequence[Clash]) -> None:
        self.clashes = tuple(clashes)
        super().__init__("; ".join(clash.message for clash in self.clashes))


class Refused(StoreUnavailable):
    """PostgreSQL, or the encoding for it, refused a value of the request; nothing of it was stored.

    Sending the same request again fails the same way.
    """


@dataclass(slots=True)
class _Request:
    events: Sequence[Event]
    future: asyncio.Future[tuple[int, int]]
    origin: str | None = None


@dataclass(slots=True)
class WriterStats:
    flushes: int = 0
    rows: int = 0
    # Flushes that failed whole: their commit may or may not have happened (the healer rebuilds after).
    errors: int = 0
    last_error: str | None = None
    pending_rows: int = 0
    # Requests answered Conflict or Refused; their flush committed the others.
    conflicts: int = 0
    refused: int = 0


class CommitLog(Protocol):
    """Who must know which transactions' rows this process applied itself (app/db/tail.py): told a
    transaction's id before it commits, then whether its rows went into the window or not."""

    def begin(self, txid: int) -> None: ...

    def applied(self, txid: int) -> None: ...

    def abandoned(self, txid: int) -> None: ...

    async def ordered(self, txid: int) -> None: ...


# The id of the flush's transaction, once its rows are in; NULL when it stored nothing.
CURRENT_TXID = "SELECT pg_current_xact_id_if_assigned()::text::bigint"

CommitHook = Callable[[list[Event], float], None]
FlushHook = Callable[[int, float], None]
# Per committed request: all its events, then those that were new (the rest were duplicates).
RequestHook = Callable[[Sequence[Event], list[Event]], None]

# Per request of a flush: the events that were new, or why nothing of it was stored.
Outcome = list[Event] | StoreUnavailable


def _rows(batch: Sequence[_Request], received_at: datetime) -> list[Row]:
    """The batch's events as COPY records, in COPY_COLUMNS order."""
    return copy_records([(request.events, request.origin) for request in batch], received_at)


def _refusal(error: BaseException) -> StoreUnavailable | None:
    """What a request gets for an error that came from its rows; None when the error is not theirs."""
    if isinstance(error, _VALUE_ERRORS):
        return Refused(f"a value cannot be stored: {error}")
    if isinstance(error, asyncpg.PostgresError) and not isinstance(error, asyncpg.PostgresConnectionError):
        sqlstate = str(getattr(error, "sqlstate", "") or "")
        if sqlstate[:2] in _REFUSED_CLASSES:
            return Refused(f"PostgreSQL refused a value: {error}")
        if sqlstate[:2] not in _SERVER_CLASSES:
            return StoreUnavailable(f"{type(error).__name__}: {error}")
    return None


def _sort_request(
    events: Sequence[Event], rows: Sequence[Row], known: dict[str, Row]
) -> Conflict | list[int]:
    """Which of a request's events are new (their positions), given the payloads already stored by id;
    a Conflict when one reuses a known id, or an id earlier in the request, with another payload."""
    first: dict[str, int] = {}
    new: list[int] = []
    clashes: list[Clash] = []
    for index, row in enumerate(rows):
        event_id = row[0]
        earlier = first.get(event_id)
        if earlier is not None:
            taken, where = payload_of(rows[earlier]), earlier
        else:
            first[event_id] = index
            stored = known.get(event_id)
            if stored is None:
                new.append(index)
                continue
            taken, where = stored, None
        differing = differing_fields(payload_of(row), taken)
        if differing:
            clashes.append(Clash(index, event_id, events[index].type, differing, where))
    return Conflict(clashes) if clashes else new


async def _stored(driver: asyncpg.Connection, ids: list[str]) -> dict[str, Row]:
    """The stored payload of each of the ids that is stored, as this transaction sees it."""
    if not ids:
        return {}
    return {record[0]: tuple(record[1:]) for record in await driver.fetch(SELECT_STORED, ids)}


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
    # Told each flush's transaction id, so a tail of the events table skips what this writer applied.
    log: CommitLog | None = None
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

    async def submit(self, events: Sequence[Event], origin: str | None = None) -> tuple[int, int]:
        """Store the events, with `origin` as their `ingested_by`; returns (accepted, duplicates) once
        they are committed. Raises Conflict or Refused for this request alone, StoreUnavailable when the
        commit failed."""
        if self._closing:
            raise StoreUnavailable("the service is shutting down")
        if self.stats.pending_rows + len(events) > self.queue_limit:
            raise Backpressure
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(events, future, origin))
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
        """Wait for the flushes in flight. Each leaves the deque only once done: the run loop drains
        when it runs out of work, and a paused() waiting beside it must not see an empty deque (and
        replay) while a flush is still committing."""
        while self._in_flight:
            oldest = self._in_flight[0]
            # Shielded: a waiter that is cancelled must not cancel the flush.
            await asyncio.shield(oldest)
            if self._in_flight and self._in_flight[0] is oldest:
                self._in_flight.popleft()

    async def close(self) -> None:
        """Refuse new work, finish what was accepted, then stop."""
        self._closing = True
        await self._idle.wait()
        await cancel_and_wait(self._task)

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
        outcomes: list[Outcome] | None = None
        failure: Exception | None = None
        txids: list[int] = []
        try:
            outcomes = await self._insert(batch, datetime.fromtimestamp(now, UTC), sent, txids)
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
        self.stats.pending_rows -= rows
        if failure is not None:
            self.stats.errors += 1
            self.stats.last_error = f"{type(failure).__name__}: {failure}"
            log.warning("commit of %d events failed: %s", rows, self.stats.last_error)
            if self.log is not None:
                # Whether it committed is unknown: if it did, the tail finds its rows and applies them.
                for txid in txids:
                    self.log.abandoned(txid)
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(StoreUnavailable(self.stats.last_error))
            return
        self.stats.flushes += 1
        if self.log is not None and txids:
            # Other instances' transactions before this one go into the window first.
            await self.log.ordered(txids[0])
        for index, request in enumerate(batch):
            outcome = list(request.events) if outcomes is None else outcomes[index]
            if isinstance(outcome, StoreUnavailable):
                if isinstance(outcome, Conflict):
                    self.stats.conflicts += 1
                else:
                    self.stats.refused += 1
                log.info("a request of %d events was not stored: %s", len(request.events), outcome)
                if not request.future.done():
                    request.future.set_exception(outcome)
                continue
            self.stats.rows += len(request.events)
            duplicates = len(request.events) - len(outcome)
            self.on_commit(outcome, now)
            self.on_duplicates(duplicates)
            if self.on_request is not None:
                self.on_request(request.events, outcome)
            if not request.future.done():
                request.future.set_result((len(outcome), duplicates))
        if self.log is not None:
            for txid in txids:
                self.log.applied(txid)
        if self.on_flush is not None:
            self.on_flush(rows, time.perf_counter() - started)

    async def _learn_txid(self, driver: asyncpg.Connection, txids: list[int]) -> None:
        """Before commit: the transaction's id, announced as pending to the commit log."""
        if self.log is None:
            return
        txid = await driver.fetchval(CURRENT_TXID)
        if txid is not None:
            txids.append(txid)
            self.log.begin(txid)

    async def _insert(
        self, batch: list[_Request], received_at: datetime, sent: asyncio.Event, txids: list[int]
    ) -> list[Outcome] | None:
        """Insert and commit the batch; each request's outcome, or None when every event was new."""
        async with raw_connection(self.engine) as driver:
            try:
                rows = _rows(batch, received_at)
            except _VALUE_ERRORS:
                return await self._sort(driver, batch, received_at, sent, txids)
            transaction = driver.transaction()
            await transaction.start()
            try:
                await driver.copy_records_to_table("events", records=rows, columns=COPY_COLUMNS)
            except Exception as error:
                await transaction.rollback()
                if not isinstance(error, asyncpg.UniqueViolationError) and _refusal(error) is None:
                    raise
                return await self._sort(driver, batch, received_at, sent, txids)
            except BaseException:
                await transaction.rollback()
                raise
            # Its rows hold their ids and locks now: the next batch may insert beside this commit.
            sent.set()
            try:
                await self._learn_txid(driver, txids)
            except BaseException:
                await transaction.rollback()
                raise
            await transaction.commit()
            return None

    async def _sort(
        self,
        driver: asyncpg.Connection,
        batch: list[_Request],
        received_at: datetime,
        sent: asyncio.Event,
        txids: list[int],
    ) -> list[Outcome]:
        """The fallback, in one transaction: sort each request's events into new, repeated and
        conflicting by the stored rows of their ids, and insert the new ones of the requests that hold
        no conflict. Tried for the whole batch at once first; when that meets a value PostgreSQL refuses,
        or an id another flush stored meanwhile with another payload, request by request, each in a
        savepoint, so only the request at fault is left out.
        """
        transaction = driver.transaction()
        await transaction.start()
        try:
            outcomes = await self._sort_together(driver, batch, received_at)
            if outcomes is None:
                outcomes = [await self._sort_alone(driver, request, received_at) for request in batch]
            await self._learn_txid(driver, txids)
        except BaseException:
            await transaction.rollback()
            raise
        sent.set()
        await transaction.commit()
        return outcomes

    async def _sort_together(
        self, driver: asyncpg.Connection, batch: list[_Request], received_at: datetime
    ) -> list[Outcome] | None:
        """The whole batch in one savepoint; None (and nothing done) when it must go request by request."""
        savepoint = driver.transaction()
        await savepoint.start()
        try:
            outcomes = await self._sort_rows(driver, batch, received_at)
        except Exception as error:
            await savepoint.rollback()
            if _refusal(error) is None:
                raise
            return None
        except BaseException:
            await savepoint.rollback()
            raise
        if outcomes is None:
            await savepoint.rollback()
            return None
        await savepoint.commit()
        return outcomes

    async def _sort_rows(
        self, driver: asyncpg.Connection, batch: list[_Request], received_at: datetime
    ) -> list[Outcome] | None:
        """Sort and insert; None when an id was stored meanwhile by another flush with another payload."""
        rows = _rows(batch, received_at)
        known = await _stored(driver, [row[0] for row in rows])
        sorted_out: list[Conflict | list[int]] = []
        inserting: list[Row] = []
        start = 0
        for request in batch:
            mine = rows[start : start + len(request.events)]
            start += len(mine)
            new = _sort_request(request.events, mine, known)
            sorted_out.append(new)
            if isinstance(new, Conflict):
                continue
            for index in new:
                row = mine[index]
                # A later request of this batch repeating the id is then a repeat of this one.
                known[row[0]] = payload_of(row)
                inserting.append(row)
        if inserting:
            records = await driver.fetch(INSERT_EVENTS, *zip(*inserting, strict=True))
            if len(records) < len(inserting):
                # Neither new nor stored when looked up: another flush (or instance) committed it meanwhile.
                inserted = {record[0] for record in records}
                raced = {row[0]: payload_of(row) for row in inserting if row[0] not in inserted}
                now_stored = await _stored(driver, list(raced))
                if any(
                    event_id not in now_stored or differing_fields(payload, now_stored[event_id])
                    for event_id, payload in raced.items()
                ):
                    return None
                sorted_out = [
                    new
                    if isinstance(new, Conflict)
                    else [i for i in new if request.events[i].event_id not in raced]
                    for request, new in zip(batch, sorted_out, strict=True)
                ]
        return [
            new if isinstance(new, Conflict) else [request.events[index] for index in new]
            for request, new in zip(batch, sorted_out, strict=True)
        ]

    async def _sort_alone(
        self, driver: asyncpg.Connection, request: _Request, received_at: datetime
    ) -> Outcome:
        """One request in its own savepoint: its new events, or why nothing of it was stored."""
        for _ in range(RACE_ATTEMPTS):
            savepoint = driver.transaction()
            await savepoint.start()
            try:
                outcome = await self._sort_rows(driver, [request], received_at)
            except Exception as error:
                await savepoint.rollback()
                refusal = _refusal(error)
                if refusal is None:
                    raise
                return refusal
            except BaseException:
                await savepoint.rollback()
                raise
            if outcome is not None:
                await savepoint.commit()
                return outcome[0]
            # What the other flush stored is committed now, so the next look-up sees it.
            await savepoint.rollback()
        return StoreUnavailable(
            "event_ids of the request were being stored by other requests meanwhile; retry"
        )
