"""The queue registry in the `queues` table: every queue committed events admitted, and which are retired.

The service keeps it in memory (app/core/queues.py); this module reads and writes the table, for the
service and for `queuepulse queues`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.events import Channel
from app.core.queues import QueueKey
from app.db.tables import queues


@dataclass(frozen=True, slots=True)
class QueueRecord:
    channel: Channel
    queue: str
    admitted_by: str | None
    admitted_at: datetime
    retired_at: datetime | None

    @property
    def key(self) -> QueueKey:
        return (self.channel, self.queue)


_COLUMNS = (
    queues.c.channel,
    queues.c.queue,
    queues.c.admitted_by,
    queues.c.admitted_at,
    queues.c.retired_at,
)


def _record(row: Any) -> QueueRecord:
    return QueueRecord(Channel(row.channel), row.queue, row.admitted_by, row.admitted_at, row.retired_at)


async def load_queues(engine: AsyncEngine) -> list[QueueRecord]:
    """Every registered queue, retired ones included, in the order they were admitted."""
    statement = select(*_COLUMNS).order_by(queues.c.admitted_at, queues.c.channel, queues.c.queue)
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    return [_record(row) for row in rows]


async def save_admitted(engine: AsyncEngine, admitted: Mapping[QueueKey, str | None]) -> None:
    """Register queues admitted by committed events; a queue registered already keeps its row."""
    if not admitted:
        return
    values = [
        {"channel": channel.value, "queue": queue, "admitted_by": source}
        for (channel, queue), source in admitted.items()
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(queues).values(values).on_conflict_do_nothing())


async def retire_queue(engine: AsyncEngine, key: QueueKey, admitted_by: str | None) -> QueueRecord:
    """Mark the queue retired (registering it if its row is not written yet); retiring twice keeps the
    first time."""
    channel, queue = key
    statement = (
        insert(queues)
        .values(channel=channel.value, queue=queue, admitted_by=admitted_by, retired_at=func.now())
        .on_conflict_do_update(
            index_elements=[queues.c.channel, queues.c.queue],
            set_={"retired_at": func.coalesce(queues.c.retired_at, func.now())},
        )
        .returning(*_COLUMNS)
    )
    async with engine.begin() as connection:
        row = (await connection.execute(statement)).one()
    return _record(row)


async def restore_queue(engine: AsyncEngine, key: QueueKey) -> QueueRecord | None:
    """Clear the queue's retirement; None when no such queue is registered."""
    channel, queue = key
    statement = (
        update(queues)
        .where(queues.c.channel == channel.value, queues.c.queue == queue)
        .values(retired_at=None)
        .returning(*_COLUMNS)
    )
    async with engine.begin() as connection:
        row = (await connection.execute(statement)).one_or_none()
    return None if row is None else _record(row)
