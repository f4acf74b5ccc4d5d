"""`queuepulse db status | stop`: the embedded PostgreSQL under the data directory.

`make run` leaves that server running when the service stops, on purpose (the next start is fast); these
say whether it runs and stop it. A service given QUEUEPULSE_DATABASE_URL uses no embedded server.
"""

from __future__ import annotations

import argparse

from app.settings import Settings

HELP = "show or stop the embedded PostgreSQL (QUEUEPULSE_DATA_DIR/pg)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("status", help="the data directory, and whether its server runs (and its pid)")
    actions.add_parser("stop", help="stop the embedded server (fast shutdown: sessions end, data is kept)")


def cmd_db(args: argparse.Namespace) -> int:
    from app.db.embedded import embedded_status, stop_embedded

    settings = Settings()
    status = embedded_status(settings.data_dir)
    if settings.database_url:
        print("QUEUEPULSE_DATABASE_URL is set: the service uses that database, not the embedded one")
    if not status.exists:
        print(f"no embedded PostgreSQL in {status.pgdata}")
        return 0
    if args.action == "status":
        state = f"running, pid {status.pid}" if status.running else "not running"
        print(f"embedded PostgreSQL in {status.pgdata}: {state}")
        return 0
    if not status.running:
        print(f"embedded PostgreSQL in {status.pgdata}: not running, nothing to stop")
        return 0
    try:
        stop_embedded(settings.data_dir)
    except RuntimeError as error:
        print(f"error: {error}")
        return 1
    print(f"stopped the embedded PostgreSQL in {status.pgdata} (pid {status.pid})")
    return 0
