"""`queuepulse migrate`: upgrade the database schema to the latest revision."""

from __future__ import annotations

import argparse

from app.cli.database import resolve_database
from app.settings import Settings

HELP = "upgrade the database schema to the latest revision"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", help="database to migrate (default: QUEUEPULSE_DATABASE_URL or the embedded one)"
    )


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.db.migrate import run_migrations

    if args.database_url:
        run_migrations(args.database_url)
    else:
        resolve_database(Settings())
    print("database migrated to head")
    return 0
