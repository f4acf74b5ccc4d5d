"""The `queuepulse` command: `run` serves the API, `migrate` upgrades the database."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Sequence

from app.asterisk import follower
from app.queues_cli import add_queues_arguments, cmd_queues
from app.retention import add_prune_arguments, cmd_prune
from app.rollup_cli import add_rebuild_arguments, cmd_rebuild_rollups
from app.settings import Settings
from app.simulate import add_simulate_arguments, cmd_simulate
from app.tokens_cli import add_tokens_arguments, cmd_tokens

# Where sources post events, and how they authenticate; the curl example printed by `run` uses these.
INGEST_PATH = "/v1/events"
INGEST_AUTH_HEADER = "Authorization: Bearer {token}"


def _resolve_database(settings: Settings) -> str:
    from app.db.embedded import database_url
    from app.db.migrate import run_migrations

    url = database_url(settings)
    run_migrations(url)
    return url


def curl_example(base_url: str, token: str) -> str:
    """A shell command posting one call.offered event stamped with the current UTC time."""
    body = (
        '{"event_id": "demo-\'"$(date +%s%N)"\'", "type": "call.offered", "contact_id": "demo-call",'
        ' "queue": "borgerservice", "occurred_at": "\'"$(date -u +%Y-%m-%dT%H:%M:%SZ)"\'"}'
    )
    return (
        f"curl -sS -X POST {shlex.quote(base_url + INGEST_PATH)} \\\n"
        f"  -H {shlex.quote(INGEST_AUTH_HEADER.format(token=token))} \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d '{body}'"
    )


def cmd_run(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings()
    host: str = args.host or settings.host
    port: int = args.port or settings.port
    url = _resolve_database(settings)
    token = settings.resolved_ingest_token()
    # create_app builds its own Settings from the environment: hand it what was resolved here.
    os.environ["QUEUEPULSE_DATABASE_URL"] = url
    os.environ["QUEUEPULSE_INGEST_TOKEN"] = token

    base_url = f"http://{host}:{port}"
    print(f"queuepulse serving on {base_url}")
    # A configured token is a secret the operator already has: it stays out of the output (and the logs).
    shown = token if settings.token("ingest") is None else "<the configured ingest token>"
    print(f"ingest token: {shown}")
    print("post an event:")
    print(curl_example(base_url, shown))
    print(f"wallboard: {base_url}/screens/wallboard  lobby: {base_url}/screens/lobby")
    print(f"reports: {base_url}/reports  metrics: {base_url}/metrics")
    print(f"live demo feed: .venv/bin/queuepulse simulate --url {base_url} --token {shown}", flush=True)
    from app.server import bounded_protocol

    # One worker only: the live window lives in the process's memory. httptools, with the header size
    # limit and the header and body deadlines it lacks (app/server.py); no WebSocket route, so no upgrades.
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=1,
        loop="uvloop",
        http=bounded_protocol(settings),
        ws="none",
        access_log=False,
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.db.migrate import run_migrations

    settings = Settings()
    if args.database_url:
        run_migrations(args.database_url)
    else:
        _resolve_database(settings)
    print("database migrated to head")
    return 0


def _add_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address (default: QUEUEPULSE_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default: QUEUEPULSE_PORT or 8000)")


def _add_migrate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", help="database to migrate (default: QUEUEPULSE_DATABASE_URL or the embedded one)"
    )


Handler = Callable[[argparse.Namespace], int]
# name -> (help, add arguments, handler); a new subcommand is one more entry.
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {
    "run": ("migrate the database and serve the API", _add_run, cmd_run),
    "migrate": ("upgrade the database schema to the latest revision", _add_migrate, cmd_migrate),
    "follow-queue-log": (
        "tail an Asterisk queue_log into the service",
        follower.add_arguments,
        follower.command,
    ),
    "prune": ("delete events older than N days (retention)", add_prune_arguments, cmd_prune),
    "simulate": ("post a live demo stream of calls and tickets", add_simulate_arguments, cmd_simulate),
    "rebuild-rollups": (
        "rewrite the history reports' interval rollup from the stored events",
        add_rebuild_arguments,
        cmd_rebuild_rollups,
    ),
    "queues": ("list, retire or restore the tracked queues", add_queues_arguments, cmd_queues),
    "tokens": ("create, list or revoke named ingest tokens", add_tokens_arguments, cmd_tokens),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="queuepulse", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, _handler) in COMMANDS.items():
        add_arguments(subparsers.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())
