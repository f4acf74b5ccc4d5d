"""`queuepulse tokens create NAME | list | revoke NAME`: named ingest tokens, one per source.

Each source gets its own token, so its events carry its name (`events.ingested_by`), the per-source queue
cap counts its queues, and revoking it cuts off that source alone. Only the token's SHA-256 is stored;
`create` prints the token once. A running service takes changes up within REFRESH_SECONDS.
"""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.database import run_on_database

HELP = "create, list or revoke named ingest tokens"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a token and print it (once)")
    create.add_argument("name", help="the source's name: lowercase letters, digits, '-', '_' (max 64)")
    actions.add_parser("list", help="every token's name and dates (never the token)")
    revoke = actions.add_parser("revoke", help="refuse a token from now on")
    revoke.add_argument("name")


def cmd_tokens(args: argparse.Namespace) -> int:
    from app.api.queues import REFRESH_SECONDS
    from app.db.tokens import DEFAULT_TOKEN_NAME, TokenError, create_token, list_tokens, revoke_token

    async def work(engine: Any) -> int:
        try:
            if args.action == "create":
                token = await create_token(engine, args.name)
                print(f"ingest token {args.name!r} (shown only now; only its SHA-256 is stored):")
                print(token)
                print(f"a running service accepts it within {REFRESH_SECONDS:g} s")
            elif args.action == "list":
                print(f"{'NAME':<24} {'CREATED':<25} REVOKED")
                print(f"{DEFAULT_TOKEN_NAME:<24} {'(QUEUEPULSE_INGEST_TOKEN)':<25} -")
                for record in await list_tokens(engine):
                    created = record.created_at.isoformat(timespec="seconds")
                    revoked = (
                        "-" if record.revoked_at is None else record.revoked_at.isoformat(timespec="seconds")
                    )
                    print(f"{record.name:<24} {created:<25} {revoked}")
            else:
                record = await revoke_token(engine, args.name)
                assert record.revoked_at is not None
                print(f"revoked {record.name!r} at {record.revoked_at.isoformat(timespec='seconds')}")
                print(f"a running service refuses it (403) within {REFRESH_SECONDS:g} s")
        except TokenError as error:
            print(f"error: {error}")
            return 1
        return 0

    return run_on_database(work)
