"""Joining from the window checkpoint and the log after it gives exactly the figures of a full replay."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.checkpoint import dump_state, load_state
from app.core.window import Window
from app.settings import Settings, target_book, window_config
from tests.running import RunningApp, running_app
from tests.test_replicas import caught_up, snapshots
from tests.test_restart import extras, step_repeats
from tests.traffic import Clock, hour_of_traffic

TZ = ZoneInfo("Europe/Copenhagen")
# A fixed afternoon: the replay's start (four hours before midnight) stands still all afternoon.
READ_AT = datetime(2026, 11, 23, 15, 0, tzinfo=TZ).timestamp()


def deliveries(rng: random.Random) -> list[tuple[float, dict[str, Any]]]:
    bodies = hour_of_traffic(rng, READ_AT, seconds=3 * 3600, prefix="ck") + extras(READ_AT)
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


async def test_checkpoint_and_tail_equal_a_full_replay(settings: Settings, clean_db: AsyncEngine) -> None:
    planned = deliveries(random.Random(4))
    half = len(planned) // 2
    clock = Clock(planned[0][0])
    async with running_app(settings, clock) as writer:
        await feed(writer, clock, planned[:half])
        rollup = writer.services.rollup
        assert rollup is not None
        assert rollup.after_flush is not None
        await rollup.after_flush()
        await feed(writer, clock, planned[half:])
        clock.now = READ_AT
        live = await snapshots(writer)
    async with clean_db.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM window_checkpoints"))).scalar() == 1
        stored = (await connection.execute(text("SELECT count(*) FROM events"))).scalar_one()

    async with running_app(settings, Clock(READ_AT)) as joined:
        assert joined.services.joined_from_checkpoint
        # Only the log after the checkpoint was applied, not the whole day.
        assert 0 < joined.services.replayed_events < stored
        from_checkpoint = await snapshots(joined)

    async with clean_db.begin() as connection:
        await connection.execute(text("DELETE FROM window_checkpoints"))
    async with running_app(settings, Clock(READ_AT)) as replayed:
        assert not replayed.services.joined_from_checkpoint
        full = await snapshots(replayed)

    assert from_checkpoint == full
    assert from_checkpoint == live
    assert full["today"]["channels"]["phone"]["total"]["arrived"] > 0


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


def test_the_state_round_trips_every_part_of_the_window(settings: Settings) -> None:
    book = target_book(settings)
    window = Window(window_config(settings), book)
    restored = Window(window_config(settings), book)
    load_state(restored, dump_state(window))
    # Every attribute of the window is either the process's or came from the state.
    assert set(vars(restored)) == set(vars(window))
    assert restored.targets is book
