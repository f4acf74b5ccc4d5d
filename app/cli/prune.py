"""`queuepulse prune`: delete events older than N days (QUEUEPULSE_RETENTION_DAYS by default)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from app.settings import Settings

HELP = "delete events older than N days (retention)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--older-than-days",
        type=int,
        help="delete events that occurred more than N days ago (default: QUEUEPULSE_RETENTION_DAYS)",
    )


def cmd_prune(args: argparse.Namespace) -> int:
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.db.embedded import database_url, run_coroutine_blocking
    from app.db.prune import prune_events

    settings = Settings()
    days: int | None = args.older_than_days if args.older_than_days is not None else settings.retention_days
    if days is None:
        print("nothing to do: give --older-than-days N or set QUEUEPULSE_RETENTION_DAYS (default: keep all)")
        return 2
    if days < 1:
        print("--older-than-days must be at least 1: today's events feed the live window")
        return 2
    cutoff = datetime.now(UTC) - timedelta(days=days)
    url = database_url(settings)

    async def prune() -> int:
        engine = create_async_engine(url)
        try:
            return await prune_events(engine, cutoff)
        finally:
            await engine.dispose()

    deleted = run_coroutine_blocking(prune)
    print(f"deleted {deleted} events that occurred before {cutoff.isoformat(timespec='seconds')}")
    return 0
