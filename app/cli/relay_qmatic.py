"""`queuepulse relay-qmatic`: Orchestra's webhook in, a spool on disk, the service out (qmatic/relay.py)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

import httpx

from app.forwarding import (
    BACKOFF_MAX_SECONDS,
    REQUEST_TIMEOUT_SECONDS,
    DeliveryError,
    endpoint_url,
    ingest_token,
)
from app.qmatic.relay import (
    DEFAULT_BATCH_EVENTS,
    DEFAULT_REGISTER_SECONDS,
    DEFAULT_STATUS_SECONDS,
    INGEST_PATH,
    Relay,
    Spool,
    offline_status,
)
from app.settings import Settings

HELP = "receive Qmatic Orchestra's events, spool them on disk and forward them to the service"
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_LISTEN = "0.0.0.0:8071"
log = logging.getLogger("queuepulse.relay")


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: give HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host or "0.0.0.0", int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--orchestra",
        help="Orchestra's webhook registry, e.g. http://orchestra:8080/qpevents/hooks (required to run)",
    )
    parser.add_argument(
        "--public-url",
        help="the URL Orchestra is to POST to, as Orchestra reaches this host, e.g. http://relay:8071/",
    )
    parser.add_argument(
        "--listen",
        type=_listen,
        default=DEFAULT_LISTEN,
        help=f"HOST:PORT to listen on (default: {DEFAULT_LISTEN})",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the queuepulse service (default: {DEFAULT_URL})")
    parser.add_argument(
        "--token-file",
        type=Path,
        help="file holding the ingest token (default: QUEUEPULSE_INGEST_TOKEN, or DATA_DIR/ingest_token)",
    )
    parser.add_argument("--spool-dir", type=Path, help="where events wait (default: DATA_DIR/relay-qmatic)")
    parser.add_argument(
        "--time-zone", help="where Orchestra's times without an offset are (default: the service's)"
    )
    parser.add_argument(
        "--batch-events", type=int, default=DEFAULT_BATCH_EVENTS, help="most events per forwarded request"
    )
    parser.add_argument(
        "--register-seconds",
        type=float,
        default=DEFAULT_REGISTER_SECONDS,
        help="how often to register again with Orchestra, which forgets a receiver after one failed POST",
    )
    parser.add_argument(
        "--status-seconds", type=float, default=DEFAULT_STATUS_SECONDS, help="how often to log the backlog"
    )
    parser.add_argument(
        "--max-backoff-seconds",
        type=float,
        default=BACKOFF_MAX_SECONDS,
        help="longest wait between two forwarding attempts while the service is away",
    )
    parser.add_argument("--status", action="store_true", help="print the spool's backlog as JSON and exit")


def cmd_relay(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # One line per request would bury the warnings that matter.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = Settings()
    spool_dir: Path = args.spool_dir or settings.data_dir / "relay-qmatic"
    try:
        if args.status:
            print(json.dumps(offline_status(spool_dir)))
            return 0
        if not args.orchestra or not args.public_url:
            log.error("--orchestra and --public-url are needed to run the relay")
            return 2
        with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS) as client:
            relay = Relay(
                spool=Spool(spool_dir),
                endpoint=endpoint_url(args.url, INGEST_PATH),
                token=ingest_token(settings, args.token_file),
                hooks_url=args.orchestra,
                public_url=args.public_url,
                listen=args.listen,
                client=client,
                time_zone=args.time_zone,
                batch_events=max(1, args.batch_events),
                register_seconds=args.register_seconds,
                status_seconds=args.status_seconds,
                backoff_max=args.max_backoff_seconds,
            )

            def stop(_signal: int, _frame: object) -> None:
                relay.stopping.set()

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            code = relay.run()
    except (DeliveryError, OSError) as error:
        log.error("%s", error)
        return 2
    log.info("stopped")
    sys.stdout.flush()
    return code
