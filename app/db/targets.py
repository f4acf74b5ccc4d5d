"""Per-queue targets in the `targets` table: loaded into the TargetBook at start-up, written by the API."""

from __future__ import annotations

from typing import cast

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.events import Channel
from app.core.kpis import Formula, Target
from app.core.targets import TargetBook
from app.db.tables import targets


async def load_targets(engine: AsyncEngine, book: TargetBook) -> int:
    """Apply every stored target to the book (they win over the settings); returns how many."""
    async with engine.connect() as connection:
        rows = (await connection.execute(select(targets))).all()
    for row in rows:
        book.set(
            Channel(row.channel),
            row.queue,
            Target(row.threshold_seconds, row.goal_pct, cast(Formula, row.formula)),
        )
    return len(rows)


async def store_target(engine: AsyncEngine, channel: Channel, queue: str, target: Target) -> None:
    values = {
        "threshold_seconds": target.threshold_seconds,
        "goal_pct": target.goal_pct,
        "formula": target.formula,
    }
    statement = insert(targets).values(channel=channel.value, queue=queue, **values)
    statement = statement.on_conflict_do_update(
        index_elements=[targets.c.channel, targets.c.queue], set_={**values, "updated_at": func.now()}
    )
    async with engine.begin() as connection:
        await connection.execute(statement)
