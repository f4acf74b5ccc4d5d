"""`queuepulse follow-queue-log`: tail an Asterisk queue_log into the service (app/asterisk/follower.py)."""

from __future__ import annotations

import argparse
import hashlib
import logging
import signal
import threading
from pathlib import Path

import httpx

from app.asterisk.follower import (
    DEFAULT_BATCH_LINES,
    DEFAULT_POLL_SECONDS,
    DEFAULT_URL,
    INGEST_PATH,
    REQUEST_TIMEOUT_SECONDS,
    Follower,
)
from app.forwarding import DeliveryError, endpoint_url, ingest_token
from app.settings import Settings

HELP = "tail an Asterisk queue_log into the service"
log = logging.getLogger("queuepulse.follow")


def _default_state_file(settings: Settings, path: Path) -> Path:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    return settings.data_dir / "follow-queue-log" / f"{path.name}-{digest}.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="the queue_log file, e.g. /var/log/asterisk/queue_log")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the queuepulse service (default: {DEFAULT_URL})")
    parser.add_argument(
        "--token-file",
        type=Path,
        help="file holding the ingest token (default: QUEUEPULSE_INGEST_TOKEN, or DATA_DIR/ingest_token)",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        help="where the read position is kept (default: DATA_DIR/follow-queue-log/<file>-<hash>.json)",
    )
    parser.add_argument(
        "--time-zone", help="where dates without an offset in the file were written (default: the service's)"
    )
    parser.add_argument("--batch-lines", type=int, default=DEFAULT_BATCH_LINES, help="most lines per request")
    parser.add_argument(
        "--poll-seconds", type=float, default=DEFAULT_POLL_SECONDS, help="how often to look for new lines"
    )
    parser.add_argument("--once", action="store_true", help="send what the file holds now, then exit")


def cmd_follow(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # One line per request would bury the warnings that matter.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = Settings()
    path: Path = args.path.absolute()
    stopping = threading.Event()

    def stop(_signal: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS) as client:
            follower = Follower(
                path=path,
                endpoint=endpoint_url(args.url, INGEST_PATH),
                token=ingest_token(settings, args.token_file),
                state_file=args.state_file or _default_state_file(settings, path),
                client=client,
                once=args.once,
                batch_lines=max(1, args.batch_lines),
                poll_seconds=args.poll_seconds,
                time_zone=args.time_zone,
                wait=stopping.wait,
            )
            code = follower.run()
    except DeliveryError as error:
        log.error("%s", error)
        return 2
    log.info("stopped")
    return code
