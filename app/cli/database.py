"""The database the commands work on: the service's own (QUEUEPULSE_DATABASE_URL or the embedded one)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from app.settings import Settings


def resolve_database(settings: Settings) -> str:
    """The service's database URL, its schema migrated to the latest revision first."""
    from app.db.embedded import database_url
    from app.db.migrate import run_migrations

    url = database_url(settings)
    run_migrations(url)
    return url


def run_on_database(work: Callable[[Any], Coroutine[Any, Any, int]]) -> int:
    """Run `work(engine)` on the service's database (migrated first, like the other commands)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.db.embedded import run_coroutine_blocking

    url = resolve_database(Settings())

    async def run() -> int:
        engine = create_async_engine(url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return run_coroutine_blocking(run)
