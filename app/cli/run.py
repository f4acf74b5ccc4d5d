"""`queuepulse run`: migrate the database and serve the API."""

from __future__ import annotations

import argparse
import os
import shlex

from app.cli.database import resolve_database
from app.settings import Settings

HELP = "migrate the database and serve the API"
# Where sources post events, and how they authenticate; the curl example printed by `run` uses these.
INGEST_PATH = "/v1/events"
INGEST_AUTH_HEADER = "Authorization: Bearer {token}"


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address (default: QUEUEPULSE_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default: QUEUEPULSE_PORT or 8000)")


def cmd_run(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings()
    host: str = args.host or settings.host
    port: int = args.port or settings.port
    url = resolve_database(settings)
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
