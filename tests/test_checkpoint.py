"""Joining from the window checkpoint and the log after it gives exactly the figures of a full replay: the
window's (/v1/kpis, /v1/staff) and the lobby wait ledger's stored beside it (/v1/lobby/waits)."""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import random
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.checkpoint import dump_state, load_state
from app.core.waits import WaitLedger
from app.core.window import Window
from app.db import checkpoint as checkpoint_io
from app.db.checkpoint import Checkpointer, encode_in_child
from app.settings import Settings, target_book, window_config
from loadtests.lobby_waits import QUEUE, simulate_day
from tests.running import RunningApp, running_app
from tests.test_lobby_waits_api import as_json
from tests.test_replicas import caught_up, snapshots
from tests.test_restart import WINDOWS, extras, step_repeats
from tests.traffic import PHONE_QUEUES, Clock, hour_of_traffic

TZ = ZoneInfo("Europe/Copenhagen")
# A fixed afternoon: the replay's start (four hours before midnight) stands still all afternoon.
READ_AT = datetime(2026, 11, 23, 15, 0, tzinfo=TZ).timestamp()


def lobby_day() -> list[dict[str, Any]]:
    """A lobby's day up to READ_AT, desks and all, so the wait ledger gives estimates on both bases."""
    midnight = datetime.fromtimestamp(READ_AT, TZ).replace(hour=0, minute=0, second=0).timestamp()
    return [as_json(event) for event in simulate_day(6, start=midnight) if event.at <= READ_AT - 60]


def agent_sessions(rng: random.Random) -> list[dict[str, Any]]:
    """The agents the calls name log in, pause and resume, a few log out: staff figures to compare."""
    bodies: list[dict[str, Any]] = []
    for n in range(1, 13):
        agent, queue = f"agent-{n}", PHONE_QUEUES[n % len(PHONE_QUEUES)]
        steps = [("agent.logged_in", READ_AT - 3 * 3600 - 300)]
        for _ in range(3):
            paused = READ_AT - rng.uniform(1200, 3 * 3600)
            steps += [("agent.paused", paused), ("agent.resumed", paused + rng.uniform(60, 900))]
        if n % 4 == 0:
            steps.append(("agent.logged_out", READ_AT - rng.uniform(60, 300)))
        elif n % 4 == 1:
            steps.append(("agent.paused", READ_AT - rng.uniform(30, 300)))
        for index, (type_, at) in enumerate(steps):
            body = {"event_id": f"ck-{agent}-{index}", "type": type_, "agent": agent, "queue": queue}
            bodies.append(body | {"occurred_at": datetime.fromtimestamp(at, TZ).isoformat()})
    return bodies


def deliveries(rng: random.Random) -> list[tuple[float, dict[str, Any]]]:
    bodies = (
        hour_of_traffic(rng, READ_AT, seconds=3 * 3600, prefix="ck")
        + extras(READ_AT)
        + lobby_day()
        + agent_sessions(rng)
    )
    return sorted(
        (
            (
                min(READ_AT, datetime.fromisoformat(body["occurred_at"]).timestamp() + rng.uniform(0, 120)),
                body,
            )
            for body in bodies + step_repeats(bodies, rng, 15) + rng.sample(bodies, k=25)
        ),
        key=lambda delivery: delivery[0],
    )


async def feed(app: RunningApp, clock: Clock, batches: list[tuple[float, dict[str, Any]]]) -> None:
    tick = batches[0][0]
    while batches:
        tick += 30
        batch = [body for received, body in batches if received <= tick]
        batches = batches[len(batch) :]
        if batch:
            clock.now = tick
            response = await app.post(batch)
            assert response.status_code == 200, response.text


async def answers(app: RunningApp) -> dict[str, Any]:
    """Every figure compared: the KPIs (as tests/test_replicas.py compares them), the staff and the
    lobby's expected waits with their accuracy, each window."""
    found: dict[str, Any] = {"kpis": await snapshots(app)}
    for window in WINDOWS:
        response = await app.client.get("/v1/staff", params={"window": window})
        response.raise_for_status()
        staff = response.json()
        staff.pop("as_of")
        found[f"staff {window}"] = staff
    response = await app.client.get("/v1/lobby/waits")
    response.raise_for_status()
    found["lobby waits"] = response.json()
    return found


@pytest.mark.parametrize("fork", [True, False], ids=["encoded-in-a-child", "encoded-on-the-loop"])
async def test_checkpoint_and_tail_equal_a_full_replay(
    settings: Settings, clean_db: AsyncEngine, fork: bool
) -> None:
    settings = settings.model_copy(update={"checkpoint_fork": fork})
    planned = deliveries(random.Random(4))
    half = len(planned) // 2
    clock = Clock(planned[0][0])
    async with running_app(settings, clock) as writer:
        await feed(writer, clock, planned[:half])
        # The ledger as the checkpoint takes it: read up to the rows stored so far.
        assert writer.services.waits is not None
        await writer.services.waits.refresh()
        rollup = writer.services.rollup
        assert rollup is not None
        checkpoint = rollup.after_flush
        assert checkpoint is not None
        # The rollup writer's own checkpoints would come due as the clock moves on; this is the one kept,
        # so the joiner has half the day's log to apply after it.
        rollup.after_flush = None
        assert inspect.ismethod(checkpoint)
        checkpointer = checkpoint.__self__
        assert isinstance(checkpointer, Checkpointer)
        assert checkpointer.fork is fork
        checkpointer.written_at = float("-inf")
        assert await checkpointer.maybe_write()
        await feed(writer, clock, planned[half:])
        clock.now = READ_AT
        live = await answers(writer)
    async with clean_db.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM window_checkpoints"))).scalar() == 1
        stored = (await connection.execute(text("SELECT count(*) FROM events"))).scalar_one()

    async with running_app(settings, Clock(READ_AT)) as joined:
        assert joined.services.joined_from_checkpoint
        # Only the log after the checkpoint was applied, not the whole day; the ledger came with it.
        assert 0 < joined.services.replayed_events < stored
        assert joined.services.waits is not None
        assert joined.services.waits.restored
        from_checkpoint = await answers(joined)

    async with clean_db.begin() as connection:
        await connection.execute(text("DELETE FROM window_checkpoints"))
    async with running_app(settings, Clock(READ_AT)) as replayed:
        assert not replayed.services.joined_from_checkpoint
        assert replayed.services.waits is not None
        assert not replayed.services.waits.restored
        full = await answers(replayed)

    assert from_checkpoint == full
    assert from_checkpoint == live
    assert full["kpis"]["today"]["channels"]["phone"]["total"]["arrived"] > 0
    # The comparison covers figures that are there: agents at work and paused, the lobby scored.
    phone = full["staff today"]["channels"]["phone"]["total"]
    assert phone["staffed"] > 0
    assert phone["paused"] > 0
    assert phone["staffed_seconds"] > 0
    [lobby] = [queue for queue in full["lobby waits"]["queues"] if queue["queue"] == QUEUE]
    assert lobby["accuracy_today"]["scored"] > 50


async def test_a_checkpoint_made_with_other_targets_is_not_used(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    clock = Clock(READ_AT)
    async with running_app(settings, clock) as writer:
        rollup = writer.services.rollup
        assert rollup is not None
        assert rollup.after_flush is not None
        await rollup.after_flush()
        await caught_up(writer)
    async with running_app(settings, Clock(READ_AT)) as same:
        assert same.services.joined_from_checkpoint
    async with clean_db.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO targets (channel, queue, threshold_seconds, goal_pct, formula) "
                "VALUES ('phone', 'borgerservice', 20, 80, 'offered')"
            )
        )
    async with running_app(settings, Clock(READ_AT)) as changed:
        assert not changed.services.joined_from_checkpoint


async def test_a_checkpoint_far_behind_the_log_is_not_used(
    settings: Settings, clean_db: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows stored after the checkpoint past the limit (a bulk load): a full replay, with every row."""
    planned = deliveries(random.Random(5))
    clock = Clock(planned[0][0])
    async with running_app(settings, clock) as writer:
        await feed(writer, clock, planned[:200])
        rollup = writer.services.rollup
        assert rollup is not None
        checkpoint = rollup.after_flush
        # The one checkpoint, behind the rows fed next.
        rollup.after_flush = None
        assert inspect.ismethod(checkpoint)
        checkpointer = checkpoint.__self__
        assert isinstance(checkpointer, Checkpointer)
        checkpointer.written_at = float("-inf")
        assert await checkpointer.maybe_write()
        await feed(writer, clock, planned[200:400])
    async with clean_db.connect() as connection:
        after = await connection.execute(
            text(
                "SELECT count(*) FROM events, window_checkpoints AS c "
                "WHERE (txid, id) > (c.position_txid::text::xid8, c.position_id)"
            )
        )
        behind = after.scalar_one()
    assert behind > 100
    monkeypatch.setattr(checkpoint_io, "MAX_ROWS_BEHIND", behind + 1)
    async with running_app(settings, Clock(clock.now)) as near:
        assert near.services.rollup is not None
        near.services.rollup.after_flush = None
        assert near.services.joined_from_checkpoint
        expected = await answers(near)
    monkeypatch.setattr(checkpoint_io, "MAX_ROWS_BEHIND", behind)
    async with running_app(settings, Clock(clock.now)) as replayed:
        assert not replayed.services.joined_from_checkpoint
        assert await answers(replayed) == expected


def test_the_state_round_trips_every_part_of_the_window(settings: Settings) -> None:
    book = target_book(settings)
    window = Window(window_config(settings), book)
    restored = Window(window_config(settings), book)
    load_state(restored, dump_state(window))
    # Every attribute of the window is either the process's or came from the state.
    assert set(vars(restored)) == set(vars(window))
    assert restored.targets is book


async def test_the_forked_encoder_gives_the_bytes_the_loop_would(settings: Settings) -> None:
    window = Window(window_config(settings), target_book(settings))
    ledger = WaitLedger(settings.max_wait_seconds)
    for event in simulate_day(7, start=READ_AT - 15 * 3600)[:2000]:
        window.apply(event, event.at)
        ledger.apply(event)
    encoded = await encode_in_child(window, ledger)
    assert len(encoded) > 10_000
    assert encoded == dump_state(window, ledger)


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_forked_encoder_that_does_not_finish_is_ended(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stuck(window: Window, beside: object = None) -> bytes:
        time.sleep(30)
        return b""

    # The child runs what the parent holds at the fork: this encoder, which never finishes in time.
    monkeypatch.setattr(checkpoint_io, "dump_state", stuck)
    monkeypatch.setattr(checkpoint_io, "ENCODE_TIMEOUT_SECONDS", 0.3)
    forked: list[int] = []
    fork = os.fork

    def noted_fork() -> int:
        pid = fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", noted_fork)
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        with pytest.raises(TimeoutError):
            await checkpoint_io.encode_in_child(Window(window_config(settings), target_book(settings)), None)
        # Killed and reaped, long before its 30 s were up.
        [pid] = forked
        deadline = time.monotonic() + 5
        while running(pid):
            assert time.monotonic() < deadline, "the encoder was left running"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    # The reader's error about the killed child was taken, not left for asyncio to report.
    assert reported == []
