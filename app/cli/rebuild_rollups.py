"""`queuepulse rebuild-rollups`: rewrite the interval rollup from the stored events, day by day."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import date

HELP = "rewrite the history reports' interval rollup from the stored events"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="first",
        type=date.fromisoformat,
        help="first local day, YYYY-MM-DD (default: the first day with events)",
    )
    parser.add_argument(
        "--to", dest="last", type=date.fromisoformat, help="last local day, included (default: today)"
    )


async def _rebuild(args: argparse.Namespace) -> str:
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.cli.database import resolve_database
    from app.core.window import Window
    from app.db.rollup import rebuild_command
    from app.db.targets import load_targets
    from app.settings import Settings, target_book, window_config

    settings = Settings()
    engine = create_async_engine(resolve_database(settings))
    try:
        # The service's own configuration and targets, stored ones included, so the rows match live.
        targets = target_book(settings)
        await load_targets(engine, targets)
        config = window_config(settings)
        return await rebuild_command(
            engine,
            lambda: Window(config, targets),
            args.first,
            args.last,
            time.time(),
            on_month=lambda month: print(f"  {month:%Y-%m}", flush=True),
        )
    finally:
        await engine.dispose()


def cmd_rebuild_rollups(args: argparse.Namespace) -> int:
    from app.db.rollup import RebuildFailed

    try:
        print(asyncio.run(_rebuild(args)))
    except RebuildFailed as error:
        print(error, file=sys.stderr)
        return 1
    return 0
