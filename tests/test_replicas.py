"""Several instances on one database: each feeds its window from the events table in commit order."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.events import Event
from app.core.targets import TargetBook
from app.core.window import Window
from app.db.connection import raw_connection
from app.db.embedded import asyncpg_dsn
from app.db.rollup import Leadership
from app.db.rows import COPY_COLUMNS, copy_record
from app.db.tail import Tail
from app.settings import Settings, target_book, window_config
from tests.running import ADMIN_HEADERS, RunningApp, running_app
from tests.test_restart import WINDOWS, extras, step_repeats
from tests.traffic import Clock, hour_of_traffic, stamp

CATCH_UP_SECONDS = 20.0


async def snapshots(app: RunningApp) -> dict[str, Any]:
    result = {}
    for window in WINDOWS:
        body: dict[str, Any] = await app.kpis(window)
        body.pop("as_of")
        # Deliveries of a stored event_id are recognised by the instance they reached only.
        body["data_quality"].pop("duplicates")
        # Order-dependent, and ordered only within a bounded wait (app/db/tail.py ORDER_WAIT_SECONDS): on a
        # PostgreSQL shared with other work the horizon can be held longer (the chaos run, on a server of
        # its own, compares it too).
        body["data_quality"].pop("out_of_order")
        result[window] = body
    return result


async def caught_up(*apps: RunningApp) -> None:
    """Until every app's tail has found nothing left below the horizon after all commits so far."""
    mark = time.monotonic()
    deadline = time.monotonic() + CATCH_UP_SECONDS
    for app in apps:
        tail = app.services.tail
        assert tail is not None
        while not (tail.stats.polls and tail.stats.caught_up_at >= mark and not tail.pending):
            assert time.monotonic() < deadline, "tail never caught up"
            tail.ring()
            await asyncio.sleep(0.02)


async def test_two_instances_agree_with_each_other_and_a_fresh_replay(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    rng = random.Random(14)
    read_at = float(int(time.time())) - 5
    bodies = hour_of_traffic(rng, read_at, seconds=2 * 3600, prefix="rep") + extras(read_at)
    deliveries = sorted(
        (
            (
                min(read_at, datetime.fromisoformat(body["occurred_at"]).timestamp() + rng.uniform(0, 120)),
                body,
            )
            for body in bodies + step_repeats(bodies, rng, 15) + rng.sample(bodies, k=25)
        ),
        key=lambda delivery: delivery[0],
    )
    # Real time for the tails' bookkeeping is fine: every event is applied with its stored received_at.
    clock = Clock(read_at - 3 * 3600)
    async with running_app(settings, clock) as first, running_app(settings, clock) as second:
        tick = deliveries[0][0]
        turn = 0
        while deliveries:
            tick += 30
            batch = [body for received, body in deliveries if received <= tick]
            deliveries = deliveries[len(batch) :]
            if batch:
                clock.now = tick
                half = len(batch) // 2
                # Both instances take ingest at once; each half goes to a different one.
                answers = await asyncio.gather(
                    (first if turn % 2 else second).post(batch[:half] or batch),
                    (second if turn % 2 else first).post(batch[half:] or batch),
                )
                assert all(answer.status_code == 200 for answer in answers), answers
                turn += 1
                await caught_up(first, second)
        clock.now = read_at
        await caught_up(first, second)
        one, two = await snapshots(first), await snapshots(second)
        assert first.services.tail is not None
        assert first.services.tail.stats.applied > 0
    assert one == two
    assert one["today"]["channels"]["phone"]["total"]["arrived"] > 0

    async with running_app(settings, Clock(read_at)) as fresh:
        assert await snapshots(fresh) == one


def _event(number: int, at: float) -> Event:
    return Event(f"late-{number}", "call.offered", f"late-c{number}", "borgerservice", at)


async def _insert(driver: asyncpg.Connection, event: Event) -> None:
    record = copy_record(event, datetime.fromtimestamp(event.at, UTC))
    await driver.copy_records_to_table("events", records=[record], columns=COPY_COLUMNS)


async def test_the_tail_never_skips_a_row_that_commits_late_under_a_smaller_id(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    now = time.time()
    window = Window(window_config(settings), target_book(settings))
    tail = Tail(clean_db, window)
    dsn = asyncpg_dsn(clean_db.url.render_as_string(hide_password=False))
    slow = await asyncpg.connect(dsn)
    try:
        transaction = slow.transaction()
        await transaction.start()
        # Takes id 1 and holds it uncommitted while a later transaction commits id 2.
        await _insert(slow, _event(1, now - 10))
        async with raw_connection(clean_db) as driver:
            await _insert(driver, _event(2, now - 5))
            ids = await driver.fetch("SELECT id FROM events ORDER BY id")
        assert [record[0] for record in ids] == [2]
        await tail.poll()
        # The committed row sits above the horizon held by the open transaction: not taken yet.
        assert tail.stats.applied == 0
        await transaction.commit()
    finally:
        await slow.close()
    # Once the horizon passes both (on a shared server another database's transaction may hold it a while).
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while tail.stats.applied < 2:
        assert time.monotonic() < deadline
        await tail.poll()
        await asyncio.sleep(0.05)
    assert tail.stats.applied == 2
    assert window.waiting_now(*window.queues()[0]) == 2


async def test_own_commits_are_skipped_and_an_abandoned_one_is_taken(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    now = time.time()
    window = Window(window_config(settings), TargetBook({}, {}))
    tail = Tail(clean_db, window)
    async with raw_connection(clean_db) as driver:
        for number, outcome in ((1, "applied"), (2, "abandoned"), (3, "pending")):
            async with driver.transaction():
                await _insert(driver, _event(number, now))
                txid = await driver.fetchval("SELECT pg_current_xact_id()::text::bigint")
                tail.begin(txid)
            if outcome == "applied":
                window.apply_many([_event(number, now)], now)
                tail.applied(txid)
            elif outcome == "abandoned":
                tail.abandoned(txid)
            else:
                pending = txid
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while tail.through < pending:
        assert time.monotonic() < deadline
        await tail.poll()
        await asyncio.sleep(0.05)
    # The own commit skipped, the abandoned one (it did commit) applied; the pending one waits.
    assert tail.stats.applied == 1
    assert window.waiting_now(*window.queues()[0]) == 2
    tail.applied(pending)
    await tail.poll()
    assert tail.stats.applied == 1
    assert tail.position.txid >= pending


async def test_a_target_put_on_one_instance_recomputes_the_others(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    now = time.time()
    call = {"contact_id": "t1", "queue": "borgerservice"}
    async with running_app(settings) as first, running_app(settings) as second:
        for event_id, step, at in (("t-a", "call.offered", now - 100), ("t-s", "call.answered", now - 50)):
            body = {**call, "event_id": event_id, "type": step, "occurred_at": stamp(at)}
            assert (await first.post(body)).status_code == 200
        await caught_up(first, second)

        def within(kpis: dict[str, Any]) -> float:
            """The queue's service level: 100 while the one start counts as within the threshold."""
            return float(kpis["channels"]["phone"]["queues"]["borgerservice"]["service_level_pct"])

        # A 50 s wait: within the default 60 s threshold on both.
        assert within(await first.kpis()) == within(await second.kpis()) == 100
        answer = await first.client.put(
            "/v1/targets/phone/borgerservice",
            json={"threshold_seconds": 20, "goal_pct": 80},
            headers=ADMIN_HEADERS,
        )
        assert answer.status_code == 200, answer.text
        assert within(await first.kpis()) == 0
        # The other instance takes the stored target up within its refresh and a replay.
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while within(await second.kpis()) != 0:
            assert time.monotonic() < deadline, "the other instance kept the old target"
            await asyncio.sleep(0.1)
        assert second.services.targets("phone", "borgerservice").threshold_seconds == 20  # type: ignore[arg-type]


async def test_one_rollup_writer_at_a_time_and_another_takes_over(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    dsn = asyncpg_dsn(clean_db.url.render_as_string(hide_password=False))
    first, second = Leadership(dsn), Leadership(dsn)
    try:
        assert await first.hold()
        assert not await second.hold()
        assert await first.hold()
        # Its session gone (the instance died): the next attempt of the other takes the lock.
        assert first._connection is not None
        first._connection.terminate()
        assert await second.hold()
        assert not await first.hold()
    finally:
        await first.release()
        await second.release()


async def test_lag_and_position_are_exported_and_readyz_fails_when_behind(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    async with running_app(settings) as app:
        await caught_up(app)
        metrics = (await app.client.get("/metrics")).text
        assert "queuepulse_tail_lag_seconds " in metrics
        assert "queuepulse_tail_position_txid " in metrics
        assert (await app.client.get("/readyz")).status_code == 200
        tail = app.services.tail
        assert tail is not None
        await tail.close()
        # A tail stopped 11 s ago is further behind than the default 10 s allowed.
        tail.stats.caught_up_at = time.monotonic() - 11
        answer = await app.client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["status"] == "behind"


async def test_each_instance_counts_the_instances_on_its_database(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    async with running_app(settings) as first:
        tail = first.services.tail
        assert tail is not None
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while tail.instances != 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        async with running_app(settings):
            while tail.instances != 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        while tail.instances != 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
