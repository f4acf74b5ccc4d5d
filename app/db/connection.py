"""The asyncpg connection beneath an engine's pooled connection, for the queries that go to it directly.

The hot and bulk paths (COPY, array inserts, cursors over a million rows) talk to asyncpg itself: no SQL
compilation, no row objects. Statements sent so run outside SQLAlchemy's transaction handling, each in
its own transaction unless the caller opens one with `connection.transaction()`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine


@contextlib.asynccontextmanager
async def raw_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A connection from the engine's pool, as asyncpg's own; it goes back to the pool afterwards."""
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        if driver is None:
            raise RuntimeError("the engine's pooled connection has no asyncpg connection beneath it")
        yield driver
