"""The group-commit writer on its own, against the real test database: no app, no window, no routes.

What it promises: a request is answered once its events are committed, each request is stored whole or
not at all and on its own (a conflicting or unstorable request never takes the others of its flush with
it), repeats are stored once, and the window hook sees the flushes in the order their rows went in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.events import Event
from app.db.connection import raw_connection
from app.db.embedded import asyncpg_dsn
from app.db.rows import COPY_COLUMNS, PAYLOAD_COLUMNS, copy_record
from app.db.writer import (
    Conflict,
    GroupCommitWriter,
    Refused,
    StoreUnavailable,
)

# A time with microseconds, which a float holds only approximately.
AT = 1_764_576_000.123456
# A session-level advisory lock key; the deferred trigger below takes it at commit.
COMMIT_LOCK = 7_312_001
POLL_SECONDS = 0.02
POLL_LIMIT_SECONDS = 20.0


def call(event_id: str, **fields: Any) -> Event:
    return Event(
        **{
            "event_id": event_id,
            "type": "call.offered",
            "contact_id": f"c-{event_id}",
            "queue": "borgerservice",
            "at": AT,
            **fields,
        }
    )


# An event with every field set, so that changing any one of them is a change of payload.
FULL = Event(
    event_id="full",
    type="call.answered",
    contact_id="c-full",
    queue="borgerservice",
    at=AT,
    agent="anna",
    desk="desk-3",
    ticket_number="A042",
    wait_seconds=12.5,
    resolved=True,
    to_queue="pas",
    source="pbx-1",
    reason="ABANDON",
)
CHANGES: list[tuple[str, dict[str, Any]]] = [
    ("type", {"type": "call.abandoned"}),
    ("contact_id", {"contact_id": "c-other"}),
    ("queue", {"queue": "pas"}),
    ("occurred_at", {"at": AT + 0.000001}),
    ("agent", {"agent": "bo"}),
    ("desk", {"desk": None}),
    ("ticket_number", {"ticket_number": "A043"}),
    ("wait_seconds", {"wait_seconds": 12.25}),
    ("resolved", {"resolved": False}),
    ("to_queue", {"to_queue": None}),
    ("source", {"source": "pbx-2"}),
    ("reason", {"reason": "EXITWITHTIMEOUT"}),
]


@dataclass
class Fed:
    """What the writer handed its hooks, in the order it did."""

    applied: list[str] = field(default_factory=list)
    duplicates: int = 0
    flushes: int = 0

    def commit(self, events: list[Event], now: float) -> None:
        self.applied.extend(event.event_id for event in events)

    def duplicate(self, count: int) -> None:
        self.duplicates += count

    def flushed(self, rows: int, seconds: float) -> None:
        self.flushes += 1


def make_writer(engine: AsyncEngine, **options: Any) -> tuple[GroupCommitWriter, Fed]:
    fed = Fed()
    writer = GroupCommitWriter(
        engine, on_commit=fed.commit, on_duplicates=fed.duplicate, on_flush=fed.flushed, **options
    )
    return writer, fed


@contextlib.asynccontextmanager
async def running(engine: AsyncEngine, **options: Any) -> AsyncIterator[tuple[GroupCommitWriter, Fed]]:
    writer, fed = make_writer(engine, **options)
    writer.start()
    try:
        yield writer, fed
    finally:
        await writer.close()


async def together(writer: GroupCommitWriter, *requests: Sequence[Event]) -> list[Any]:
    """Submit the requests at once, so they queue before the writer wakes: one flush when they fit."""
    return await asyncio.gather(*(writer.submit(events) for events in requests), return_exceptions=True)


async def stored(engine: AsyncEngine, columns: str = "event_id") -> list[Any]:
    async with raw_connection(engine) as driver:
        records = await driver.fetch(f"SELECT {columns} FROM events ORDER BY id")
    return [record[0] if len(record) == 1 else tuple(record) for record in records]


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(int(POLL_LIMIT_SECONDS / POLL_SECONDS)):
        if await check():
            return
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
async def outside(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, as another instance or an operator would hold."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def held_commit(
    clean_db: AsyncEngine, outside: asyncpg.Connection
) -> AsyncIterator[asyncpg.Connection]:
    """Commits that inserted an event_id starting "held" wait at COMMIT until the returned connection
    lets go of COMMIT_LOCK (a deferred trigger takes it), so a test decides when such a commit ends."""
    await outside.execute(
        f"""
        CREATE FUNCTION qp_test_hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_advisory_xact_lock({COMMIT_LOCK}); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER qp_test_hold_commit AFTER INSERT ON events
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.event_id LIKE 'held%')
        EXECUTE FUNCTION qp_test_hold_commit();
        """
    )
    await outside.execute("SELECT pg_advisory_lock($1)", COMMIT_LOCK)
    try:
        yield outside
    finally:
        await outside.execute("SELECT pg_advisory_unlock_all()")
        await outside.execute(
            "DROP TRIGGER qp_test_hold_commit ON events; DROP FUNCTION qp_test_hold_commit()"
        )


@contextlib.asynccontextmanager
async def letting_go(held: asyncpg.Connection) -> AsyncIterator[None]:
    """Let held commits finish on the way out, also when the test fails (the writer's close waits)."""
    try:
        yield
    finally:
        await held.execute("SELECT pg_advisory_unlock_all()")


async def waiting_on_a_lock(connection: asyncpg.Connection) -> bool:
    count: int = await connection.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    return count > 0


# ---- order, repeats, failure, draining, pausing (issue 13, item 5) ---------------------------------------


async def test_two_flushes_in_flight_feed_the_window_in_insert_order(
    clean_db: AsyncEngine, held_commit: asyncpg.Connection
) -> None:
    async with running(clean_db, max_batch=1) as (writer, fed), letting_go(held_commit):
        first = asyncio.create_task(writer.submit([call("held-1")]))
        second = asyncio.create_task(writer.submit([call("fast-2")]))

        async def second_committed() -> bool:
            return "fast-2" in await stored(clean_db)

        # The first flush sits in its COMMIT; the second inserts beside it and commits first.
        await until(second_committed, "the second flush commits while the first is in flight")
        assert await stored(clean_db) == ["fast-2"]
        # Committed, yet neither answered nor applied: the window takes flushes in insert order.
        assert fed.applied == []
        assert not second.done()

        await held_commit.execute("SELECT pg_advisory_unlock($1)", COMMIT_LOCK)
        assert await first == (1, 0)
        assert await second == (1, 0)
    assert fed.applied == ["held-1", "fast-2"] == await stored(clean_db)
    assert fed.flushes == 2


async def test_many_flushes_apply_in_the_order_their_rows_were_inserted(clean_db: AsyncEngine) -> None:
    async with running(clean_db, max_batch=3) as (writer, fed):
        await writer.submit([call("r-0"), call("r-1")])
        requests = [
            [call(f"n-{i}"), call(f"r-{i % 2}")] if i % 3 == 0 else [call(f"n-{i}")] for i in range(30)
        ]
        results = await together(writer, *requests)
    assert results == [(1, 1) if i % 3 == 0 else (1, 0) for i in range(30)]
    assert fed.flushes > 2
    assert fed.applied == await stored(clean_db)


async def test_a_repeat_fails_the_copy_and_goes_again_through_the_fallback(clean_db: AsyncEngine) -> None:
    async with running(clean_db) as (writer, fed):
        assert await writer.submit([call("a"), call("b")]) == (2, 0)
        assert await writer.submit([call("b"), call("c"), call("a")]) == (1, 2)
    assert await stored(clean_db) == ["a", "b", "c"]
    assert fed.applied == ["a", "b", "c"]
    assert fed.duplicates == 2


async def test_a_repeat_inside_one_request_is_stored_once(clean_db: AsyncEngine) -> None:
    async with running(clean_db) as (writer, fed):
        assert await writer.submit([call("twin"), call("other"), call("twin"), call("twin")]) == (2, 2)
    assert await stored(clean_db) == ["twin", "other"]
    assert fed.applied == ["twin", "other"]
    assert fed.duplicates == 2


async def test_a_repeat_across_requests_of_one_flush_is_credited_to_the_first(clean_db: AsyncEngine) -> None:
    async with running(clean_db) as (writer, fed):
        results = await together(writer, [call("x")], [call("x"), call("y")], [call("y")])
    assert results == [(1, 0), (1, 1), (0, 1)]
    assert fed.flushes == 1
    assert await stored(clean_db) == ["x", "y"] == fed.applied


async def test_a_flush_that_cannot_reach_the_database_fails_every_request_in_it() -> None:
    nowhere = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none", pool_size=1)
    try:
        async with running(nowhere) as (writer, fed):
            results = await together(writer, [call("a")], [call("b"), call("c")], [call("d")])
            assert writer.stats.errors == 1
            assert writer.stats.pending_rows == 0
    finally:
        await nowhere.dispose()
    assert [type(result) for result in results] == [StoreUnavailable] * 3
    assert fed.applied == []
    assert fed.flushes == 0


async def test_a_connection_lost_at_commit_fails_every_request_of_the_flush(
    clean_db: AsyncEngine, held_commit: asyncpg.Connection
) -> None:
    async with running(clean_db) as (writer, fed), letting_go(held_commit):
        requests = asyncio.gather(
            writer.submit([call("held-1"), call("a")]), writer.submit([call("b")]), return_exceptions=True
        )
        await until(lambda: waiting_on_a_lock(held_commit), "the flush waits in its COMMIT")
        # Whether a commit whose answer is lost happened is unknown: it is not retried request by request.
        await held_commit.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        results = await requests
        assert writer.stats.errors == 1
    assert [type(result) for result in results] == [StoreUnavailable, StoreUnavailable]
    # Through a connection of its own: the pool still holds the one that was cut.
    assert await held_commit.fetchval("SELECT count(*) FROM events") == 0
    assert fed.applied == []


async def test_close_answers_everything_accepted_before_it_then_refuses(clean_db: AsyncEngine) -> None:
    writer, fed = make_writer(clean_db, max_batch=2)
    writer.start()
    tasks = [asyncio.create_task(writer.submit([call(f"d-{i}")])) for i in range(7)]
    await asyncio.sleep(0)  # every submit is in the queue
    await writer.close()
    assert all(task.done() for task in tasks)
    assert [task.result() for task in tasks] == [(1, 0)] * 7
    assert await stored(clean_db) == [f"d-{i}" for i in range(7)] == fed.applied
    with pytest.raises(StoreUnavailable):
        await writer.submit([call("late")])
    assert "late" not in await stored(clean_db)


async def test_paused_holds_commits_until_it_ends(clean_db: AsyncEngine) -> None:
    async with running(clean_db) as (writer, fed):
        async with writer.paused():
            task = asyncio.create_task(writer.submit([call("p")]))
            for _ in range(25):
                await asyncio.sleep(POLL_SECONDS)  # every chance to commit, were it not held
            assert not task.done()
            assert await stored(clean_db) == []
            assert fed.applied == []
        assert await task == (1, 0)
    assert await stored(clean_db) == ["p"]


async def test_paused_waits_for_the_flushes_in_flight(
    clean_db: AsyncEngine, held_commit: asyncpg.Connection
) -> None:
    seen_inside: list[str] = []

    async def pause() -> None:
        async with writer.paused():
            seen_inside.extend(fed.applied)

    async with running(clean_db) as (writer, fed), letting_go(held_commit):
        first = asyncio.create_task(writer.submit([call("held-1")]))
        await until(lambda: waiting_on_a_lock(held_commit), "the flush waits in its COMMIT")
        pausing = asyncio.create_task(pause())
        for _ in range(10):
            await asyncio.sleep(POLL_SECONDS)  # every chance to enter, were it not held
        await held_commit.execute("SELECT pg_advisory_unlock($1)", COMMIT_LOCK)
        await pausing
        assert await first == (1, 0)
    # The pause began only once the flush in flight had committed and fed the window.
    assert seen_inside == ["held-1"]


# ---- origin -----------------------------------------------------------------------------------------------


async def test_origin_is_stored_as_ingested_by_and_a_repeat_keeps_the_first(clean_db: AsyncEngine) -> None:
    async with running(clean_db) as (writer, _):
        assert await writer.submit([call("k1"), call("k2")], origin="kiosk") == (2, 0)
        assert await writer.submit([call("k3")]) == (1, 0)
        # The same event through another token is a retry, not a conflict.
        assert await writer.submit([call("k1"), call("k4")], origin="pbx") == (1, 1)
    assert await stored(clean_db, "event_id, ingested_by") == [
        ("k1", "kiosk"),
        ("k2", "kiosk"),
        ("k3", None),
        ("k4", "pbx"),
    ]


# ---- conflicts (issue 12, defect 3) ----------------------------------------------------------------------


async def test_the_same_payload_again_is_a_duplicate(clean_db: AsyncEngine) -> None:
    async with running(clean_db) as (writer, fed):
        assert await writer.submit([FULL]) == (1, 0)
        again = dataclasses.replace(FULL)
        assert await writer.submit([again]) == (0, 1)
        assert writer.stats.conflicts == 0
    assert fed.applied == ["full"]


@pytest.mark.parametrize(("changed", "change"), CHANGES, ids=[name for name, _ in CHANGES])
async def test_the_same_event_id_with_another_payload_is_a_conflict(
    clean_db: AsyncEngine, changed: str, change: dict[str, Any]
) -> None:
    columns = ", ".join(("event_id", *PAYLOAD_COLUMNS))
    async with running(clean_db) as (writer, fed):
        assert await writer.submit([FULL]) == (1, 0)
        before = await stored(clean_db, columns)
        with pytest.raises(Conflict) as raised:
            await writer.submit([call("new-beside"), dataclasses.replace(FULL, **change)])
        assert writer.stats.conflicts == 1
        assert writer.stats.errors == 0
    [clash] = raised.value.clashes
    assert (clash.index, clash.event_id, clash.fields, clash.earlier) == (1, "full", (changed,), None)
    assert "'full'" in str(raised.value)
    assert changed in str(raised.value)
    # Nothing of the request: not its new event, and the stored one unchanged.
    assert await stored(clean_db, columns) == before
    assert fed.applied == ["full"]
    assert fed.duplicates == 0


async def test_a_stored_time_read_back_as_a_float_is_the_same_time(clean_db: AsyncEngine) -> None:
    # Times whose microseconds a float does not hold exactly; a replay reads them back as floats.
    events = [call(f"t-{i}", at=AT + i * 0.000_137 + i * 3.3) for i in range(300)]
    async with running(clean_db) as (writer, _):
        assert await writer.submit(events) == (300, 0)
        read_back = [moment.timestamp() for moment in await stored(clean_db, "occurred_at")]
        again = [dataclasses.replace(event, at=at) for event, at in zip(events, read_back, strict=True)]
        assert await writer.submit(again) == (0, 300)
        assert writer.stats.conflicts == 0


async def test_a_conflict_inside_one_request_stores_nothing_of_it(clean_db: AsyncEngine) -> None:
    async with running(clean_db) as (writer, fed):
        with pytest.raises(Conflict) as raised:
            await writer.submit([call("x"), call("y"), call("x", queue="pas"), call("y")])
    [clash] = raised.value.clashes
    assert (clash.index, clash.event_id, clash.fields, clash.earlier) == (2, "x", ("queue",), 0)
    assert "item 0" in clash.message
    assert await stored(clean_db) == []
    assert fed.applied == []


async def test_a_conflicting_request_leaves_the_others_of_its_flush_committed(clean_db: AsyncEngine) -> None:
    async with running(clean_db) as (writer, fed):
        assert await writer.submit([call("s")]) == (1, 0)
        results = await together(
            writer,
            [call("n1")],
            [call("n2"), call("s", contact_id="someone-else")],
            [call("n3"), call("s")],
            # n2 is new here: the request that also held it was not stored.
            [call("n2")],
            # z as the request before gave it would be a repeat; z otherwise, a conflict with it.
            [call("z")],
            [call("z", at=AT + 1)],
        )
        assert fed.flushes == 2
        assert writer.stats.conflicts == 2
        assert writer.stats.errors == 0
    assert results[0] == (1, 0)
    assert isinstance(results[1], Conflict)
    assert [(clash.index, clash.event_id) for clash in results[1].clashes] == [(1, "s")]
    assert results[2:5] == [(1, 1), (1, 0), (1, 0)]
    assert isinstance(results[5], Conflict)
    assert [(clash.index, clash.fields) for clash in results[5].clashes] == [(0, ("occurred_at",))]
    assert await stored(clean_db) == ["s", "n1", "n3", "n2", "z"] == fed.applied
    assert await stored(clean_db, "event_id, contact_id") == [
        ("s", "c-s"),
        ("n1", "c-n1"),
        ("n3", "c-n3"),
        ("n2", "c-n2"),
        ("z", "c-z"),
    ]


@pytest.mark.parametrize("same", [True, False], ids=["same payload", "other payload"])
async def test_an_id_another_writer_stores_meanwhile_is_checked_again(
    clean_db: AsyncEngine, outside: asyncpg.Connection, same: bool
) -> None:
    mine = call("r")
    theirs = mine if same else call("r", queue="pas")
    async with running(clean_db) as (writer, fed):
        assert await writer.submit([call("d")]) == (1, 0)
        # Another instance has inserted r but not committed: invisible to the look-up, a lock to the insert.
        transaction = outside.transaction()
        await transaction.start()
        await outside.copy_records_to_table(
            "events", records=[copy_record(theirs, datetime.now(UTC), "other")], columns=COPY_COLUMNS
        )
        # d first: the COPY fails on it at once, and the fallback's insert then waits for r.
        request = asyncio.create_task(writer.submit([call("d"), call("n"), mine]))
        await until(lambda: waiting_on_a_lock(outside), "the insert waits for the other instance")
        await transaction.commit()
        if same:
            assert await request == (1, 2)
        else:
            with pytest.raises(Conflict) as raised:
                await request
            assert [(clash.index, clash.event_id, clash.fields) for clash in raised.value.clashes] == [
                (2, "r", ("queue",))
            ]
    assert await stored(clean_db, "event_id, ingested_by") == (
        [("d", None), ("r", "other"), ("n", None)] if same else [("d", None), ("r", "other")]
    )
    assert fed.applied == (["d", "n"] if same else ["d"])


# ---- isolation (issue 12, defect 1: one bad event never fails another client's request) -------------------

UNSTORABLE: list[tuple[str, dict[str, Any]]] = [
    ("queue longer than the column", {"queue": "q" * 65}),
    ("NUL byte in a string", {"agent": "an\x00na"}),
    ("year 0 in UTC", {"at": -62_135_596_800.0 - 14 * 3600}),
    ("NaN time", {"at": float("nan")}),
    ("time past year 9999", {"at": 1e15}),
    ("a string for a number", {"wait_seconds": "soon"}),
]


@pytest.mark.parametrize(("bad", "value"), UNSTORABLE, ids=[name for name, _ in UNSTORABLE])
async def test_a_value_that_cannot_be_stored_fails_only_its_own_request(
    clean_db: AsyncEngine, bad: str, value: dict[str, Any]
) -> None:
    async with running(clean_db) as (writer, fed):
        results = await together(
            writer, [call("good-1")], [call("good-2"), call("bad", **value)], [call("good-3")]
        )
        assert fed.flushes == 1
        assert writer.stats.refused == 1
        # Nothing of the refused request is in doubt: no failed commit for the healer to rebuild after.
        assert writer.stats.errors == 0
    assert results[0] == results[2] == (1, 0)
    assert isinstance(results[1], Refused)
    assert await stored(clean_db) == ["good-1", "good-3"] == fed.applied


async def test_an_unstorable_request_beside_repeats_and_conflicts_fails_alone(clean_db: AsyncEngine) -> None:
    async with running(clean_db) as (writer, fed):
        assert await writer.submit([call("s")]) == (1, 0)
        results = await together(
            writer,
            [call("s"), call("n1")],
            [call("n2"), call("bad", queue="q" * 65)],
            [call("s", queue="pas")],
            [call("n2"), call("n3")],
        )
        assert fed.flushes == 2
    assert results[0] == (1, 1)
    assert isinstance(results[1], Refused)
    assert isinstance(results[2], Conflict)
    assert results[3] == (2, 0)
    assert await stored(clean_db) == ["s", "n1", "n2", "n3"] == fed.applied
