"""The Qmatic relay (`queuepulse relay-qmatic`, app/cli/relay_qmatic.py): Orchestra's webhook in, a spool on
disk, queuepulse's Qmatic route out.

Why: Orchestra's orchestra-events module POSTs each event once, to every URL registered with
`GET <hooks>/register?url=...`, and removes a URL from its (in-memory) registry the first time a POST to
it fails at the transport level: refused, reset, timed out. It never retries, and an HTTP error answer is
as final for the event. A receiver that is away for a moment (a restart, a database outage behind it)
loses the lobby until someone registers it again.

So the relay answers Orchestra from its own disk and nothing else: each body is appended to the spool
and fsynced before the 204 goes back. A forwarder thread sends what is spooled, in order, in batches, with
the retries and backoff the Asterisk follower uses (app/forwarding.py), and moves its acknowledged mark
(written atomically) only after queuepulse answered 200; a crash re-sends at most the batch in flight,
which the route counts once by its event ids. A registrar thread registers the relay at start and again
every few seconds (registering twice is a no-op in Orchestra), so a relay that was dropped, or an
Orchestra that restarted and forgot its registry, is back within that interval. What Orchestra posted in
between is lost by Orchestra itself (its log says "removing endpoint").

The spool: `spool-<first seq>.jsonl` segment files of one record per line,
`{"seq": n, "received_at": "...", "body": "<the body as posted>"}`, and `acked.json` holding the last
sequence number queuepulse acknowledged. A segment whose records are all acknowledged is deleted. A line
cut short by a crash was never answered 2xx, and is cut off at start-up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import httpx

from app.forwarding import BACKOFF_MAX_SECONDS, DeliveryError, Sender, fsync_directory, write_atomically

log = logging.getLogger("queuepulse.relay")

INGEST_PATH = "/v1/qmatic/events"
STATE_VERSION = 1
ACKED_FILE = "acked.json"
SEGMENT_PREFIX = "spool-"
SEGMENT_SUFFIX = ".jsonl"
# A new segment after this many records: small files to delete once acknowledged.
SEGMENT_RECORDS = 10_000
# Orchestra's events are a few hundred bytes; anything near this is no Qmatic event.
MAX_BODY_BYTES = 256 * 1024
DEFAULT_BATCH_EVENTS = 200
DEFAULT_REGISTER_SECONDS = 10.0
DEFAULT_STATUS_SECONDS = 60.0
REGISTER_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    received_at: float
    body: bytes


def _segment_name(first_seq: int) -> str:
    return f"{SEGMENT_PREFIX}{first_seq:012d}{SEGMENT_SUFFIX}"


def _segment_first(path: Path) -> int:
    return int(path.name.removeprefix(SEGMENT_PREFIX).removesuffix(SEGMENT_SUFFIX))


def read_acked(directory: Path) -> int:
    path = directory / ACKED_FILE
    if not path.exists():
        return 0
    data = json.loads(path.read_text())
    if data.get("version") != STATE_VERSION:
        raise DeliveryError(f"{path}: unknown state version {data.get('version')!r}")
    return int(data["acked"])


def _segments(directory: Path) -> list[Path]:
    return sorted(
        (path for path in directory.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}") if path.is_file()),
        key=_segment_first,
    )


def _read_segment(path: Path, last: bool) -> tuple[list[Record], int]:
    """The segment's whole records, and the byte length they take. A line cut short by a crash can only
    be the last segment's last line; anything else unreadable is damage the relay must not paper over."""
    data = path.read_bytes()
    records: list[Record] = []
    position = 0
    while position < len(data):
        end = data.find(b"\n", position)
        line = data[position:] if end < 0 else data[position:end]
        try:
            if end < 0:
                raise ValueError("no line end")
            item = json.loads(line)
            records.append(
                Record(
                    int(item["seq"]),
                    datetime.fromisoformat(item["received_at"]).timestamp(),
                    str(item["body"]).encode(),
                )
            )
        except (ValueError, KeyError, TypeError) as error:
            if last and end < 0:
                log.warning(
                    "%s: a record cut short by a crash (never acknowledged to Orchestra) cut off", path
                )
                return records, position
            raise DeliveryError(f"{path} byte {position}: unreadable spool record: {error}") from error
        position = end + 1
    return records, position


class Spool:
    """The received bodies not yet acknowledged by queuepulse: on disk, fsynced, and in memory in order.

    The backlog is held in memory too (a lobby sends some thousands of events a day, a few hundred bytes
    each: a week's outage is tens of megabytes).
    """

    def __init__(self, directory: Path, segment_records: int = SEGMENT_RECORDS) -> None:
        self.directory = directory
        self.segment_records = segment_records
        self.acked = 0
        self.next_seq = 1
        self.pending: deque[Record] = deque()
        self.received = 0
        self.forwarded = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._handle: BinaryIO | None = None
        self._segment_count = 0
        self._segment_firsts: list[int] = []

    def open(self) -> None:
        """Read the spool back: the acknowledged mark, and every record after it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.acked = read_acked(self.directory)
        segments = _segments(self.directory)
        last_seq = self.acked
        for index, path in enumerate(segments):
            last = index == len(segments) - 1
            records, length = _read_segment(path, last)
            if last and length < path.stat().st_size:
                with path.open("r+b") as handle:
                    handle.truncate(length)
                    os.fsync(handle.fileno())
            if records:
                last_seq = max(last_seq, records[-1].seq)
            self.pending.extend(record for record in records if record.seq > self.acked)
            self._segment_firsts.append(_segment_first(path))
            if last:
                self._segment_count = len(records)
        self.next_seq = last_seq + 1
        if segments and self._segment_count < self.segment_records:
            self._handle = segments[-1].open("ab")
        self._drop_acknowledged_segments()
        if self.pending:
            log.info("spool %s: %d events not yet forwarded", self.directory, len(self.pending))

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
            self._arrived.notify_all()

    def append(self, body: bytes) -> int:
        """Spool one body durably; its sequence number. Returns only once it is on disk."""
        with self._lock:
            seq = self.next_seq
            now = time.time()
            line = json.dumps(
                {
                    "seq": seq,
                    "received_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
                    "body": body.decode(),
                },
                ensure_ascii=False,
            )
            handle = self._segment_for(seq)
            handle.write(line.encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
            self._segment_count += 1
            self.next_seq = seq + 1
            self.pending.append(Record(seq, now, body))
            self.received += 1
            self._arrived.notify_all()
            return seq

    def _segment_for(self, seq: int) -> BinaryIO:
        if self._handle is not None and self._segment_count < self.segment_records:
            return self._handle
        if self._handle is not None:
            self._handle.close()
        self._handle = (self.directory / _segment_name(seq)).open("ab")
        # The new file's name must survive a crash as surely as the record in it.
        fsync_directory(self.directory)
        self._segment_firsts.append(seq)
        self._segment_count = 0
        return self._handle

    def take(self, most: int, timeout: float) -> list[Record]:
        """Up to `most` of the oldest records not acknowledged, waiting up to `timeout` for one."""
        with self._lock:
            if not self.pending:
                self._arrived.wait(timeout)
            return [self.pending[index] for index in range(min(most, len(self.pending)))]

    def acknowledge(self, through_seq: int) -> None:
        """queuepulse has the records up to `through_seq`: move the mark (durably), then forget them."""
        with self._lock:
            if through_seq <= self.acked:
                return
            write_atomically(
                self.directory / ACKED_FILE,
                json.dumps({"version": STATE_VERSION, "acked": through_seq}) + "\n",
            )
            self.acked = through_seq
            while self.pending and self.pending[0].seq <= through_seq:
                self.pending.popleft()
                self.forwarded += 1
            self._drop_acknowledged_segments()

    def _drop_acknowledged_segments(self) -> None:
        """Delete each segment but the one being written whose records are all acknowledged."""
        while len(self._segment_firsts) > 1 and self._segment_firsts[1] - 1 <= self.acked:
            first = self._segment_firsts.pop(0)
            with contextlib.suppress(FileNotFoundError):
                (self.directory / _segment_name(first)).unlink()

    def backlog(self) -> tuple[int, float | None]:
        """Records not yet acknowledged, and when the oldest of them arrived."""
        with self._lock:
            return len(self.pending), (self.pending[0].received_at if self.pending else None)


@dataclass
class Status:
    started_at: float = field(default_factory=time.time)
    registered_at: float | None = None
    registration_problem: str | None = None
    forward_problem: str | None = None
    refused_items: int = 0


def _array(items: Sequence[bytes]) -> bytes:
    return b"[" + b",".join(items) + b"]"


def _describer(batch: list[Record]) -> Callable[[int], str]:
    return lambda position: f"spooled event {batch[position].seq}"


def _conflicting_items(response: httpx.Response) -> dict[int, str] | None:
    try:
        return {int(issue["index"]): str(issue["reason"]) for issue in response.json()["errors"]}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass
class Relay:
    spool: Spool
    endpoint: str
    token: str
    hooks_url: str
    public_url: str
    listen: tuple[str, int]
    client: httpx.Client
    time_zone: str | None = None
    batch_events: int = DEFAULT_BATCH_EVENTS
    register_seconds: float = DEFAULT_REGISTER_SECONDS
    status_seconds: float = DEFAULT_STATUS_SECONDS
    backoff_max: float = BACKOFF_MAX_SECONDS
    stopping: threading.Event = field(default_factory=threading.Event)
    status: Status = field(default_factory=Status)
    server: ThreadingHTTPServer | None = field(default=None, init=False)
    sender: Sender | None = field(default=None, init=False)

    # ---- running ------------------------------------------------------------------------------

    def run(self) -> int:
        """Receive, forward and register until `stopping` is set."""
        self.spool.open()
        self.server = _server(self)
        log.info("listening on %s:%d for Orchestra's events", *self.server.server_address[:2])
        threads = [
            threading.Thread(target=self.server.serve_forever, name="receive", daemon=True),
            threading.Thread(target=self._forward_forever, name="forward", daemon=True),
            threading.Thread(target=self._register_forever, name="register", daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            while not self.stopping.wait(self.status_seconds):
                log.info("%s", self.status_line())
        finally:
            self.server.shutdown()
            self.server.server_close()
            self.spool.close()
            for thread in threads[1:]:
                thread.join(timeout=REGISTER_TIMEOUT_SECONDS + 5)
        log.info("%s", self.status_line())
        return 0

    def _pause(self, seconds: float) -> bool:
        return self.stopping.wait(seconds)

    # ---- registering with Orchestra -----------------------------------------------------------

    def register(self) -> bool:
        try:
            response = self.client.get(
                self.hooks_url.rstrip("/") + "/register",
                params={"url": self.public_url},
                timeout=REGISTER_TIMEOUT_SECONDS,
            )
        except httpx.TransportError as error:
            problem = f"{type(error).__name__}: {error}"
        else:
            if response.is_success:
                if self.status.registration_problem is not None or self.status.registered_at is None:
                    log.info("registered %s with Orchestra at %s", self.public_url, self.hooks_url)
                self.status.registered_at = time.time()
                self.status.registration_problem = None
                return True
            problem = f"{response.status_code} {response.text.strip()[:200]}"
        if self.status.registration_problem is None:
            log.warning("registering with Orchestra failed (%s); trying again", problem)
        self.status.registration_problem = problem
        return False

    def _register_forever(self) -> None:
        while True:
            self.register()
            if self.stopping.wait(self.register_seconds):
                return

    # ---- forwarding to queuepulse -------------------------------------------------------------

    def _forward_forever(self) -> None:
        sender = Sender(
            client=self.client,
            endpoint=self.endpoint,
            token=self.token,
            content_type="application/json",
            encode=_array,
            pause=self._pause,
            conflicts=_conflicting_items,
            blank=b"null",
            params={"time_zone": self.time_zone} if self.time_zone else None,
            backoff_max=self.backoff_max,
        )
        self.sender = sender
        while not self.stopping.is_set():
            batch = self.spool.take(self.batch_events, timeout=1.0)
            if not batch:
                continue
            sender.describe = _describer(batch)
            try:
                delivered = sender.send([record.body for record in batch])
            except DeliveryError as error:
                # Never stop receiving: Orchestra would drop the relay. Keep the events, say why loudly,
                # and try again (the token may be put right meanwhile).
                self.status.forward_problem = str(error)
                log.error("%s; the events stay spooled, trying again in %.0f s", error, self.backoff_max)
                self._pause(self.backoff_max)
                continue
            self.status.forward_problem = None
            if delivered is None:
                return
            self.spool.acknowledge(batch[delivered.count - 1].seq)
            if delivered.result is not None:
                self._report(delivered.result, batch)

    def _report(self, result: dict[str, Any], batch: list[Record]) -> None:
        for issue in result.get("errors", []):
            index = int(issue["index"])
            seq = batch[index].seq if 0 <= index < len(batch) else "?"
            self.status.refused_items += 1
            log.warning("spooled event %s not used: %s", seq, issue["reason"])
        log.debug("forwarded %d events: %s", len(batch), result)

    # ---- reporting ----------------------------------------------------------------------------

    def status_json(self) -> dict[str, Any]:
        backlog, oldest = self.spool.backlog()
        now = time.time()
        return {
            "backlog": backlog,
            "oldest_backlog_seconds": None if oldest is None else round(now - oldest, 1),
            "received": self.spool.received,
            "forwarded": self.spool.forwarded,
            "acked_seq": self.spool.acked,
            "refused_items": self.status.refused_items,
            "registered": self.status.registration_problem is None and self.status.registered_at is not None,
            "last_registered_seconds_ago": (
                None if self.status.registered_at is None else round(now - self.status.registered_at, 1)
            ),
            "registration_problem": self.status.registration_problem,
            # The refusal that holds the forwarder, else the last failed attempt of the batch in flight.
            "forward_problem": self.status.forward_problem
            or (self.sender.last_problem if self.sender is not None else None),
        }

    def status_line(self) -> str:
        status = self.status_json()
        line = (
            f"backlog {status['backlog']} events"
            + (
                ""
                if status["oldest_backlog_seconds"] is None
                else f" (oldest {status['oldest_backlog_seconds']} s)"
            )
            + f", received {status['received']}, forwarded {status['forwarded']}"
            + (
                ", registered"
                if status["registered"]
                else f", NOT registered ({status['registration_problem']})"
            )
        )
        if status["forward_problem"]:
            line += f", forwarding: {status['forward_problem']}"
        return line

    def metrics_text(self) -> str:
        status = self.status_json()
        lines = [
            "# HELP queuepulse_relay_backlog_events Events spooled and not yet acknowledged by queuepulse.",
            "# TYPE queuepulse_relay_backlog_events gauge",
            f"queuepulse_relay_backlog_events {status['backlog']}",
            "# HELP queuepulse_relay_backlog_age_seconds Age of the oldest event not yet forwarded.",
            "# TYPE queuepulse_relay_backlog_age_seconds gauge",
            f"queuepulse_relay_backlog_age_seconds {status['oldest_backlog_seconds'] or 0}",
            "# HELP queuepulse_relay_received_total Events received and spooled by this process.",
            "# TYPE queuepulse_relay_received_total counter",
            f"queuepulse_relay_received_total {status['received']}",
            "# HELP queuepulse_relay_forwarded_total Events queuepulse acknowledged, from this process.",
            "# TYPE queuepulse_relay_forwarded_total counter",
            f"queuepulse_relay_forwarded_total {status['forwarded']}",
            "# HELP queuepulse_relay_registered Whether the last registration with Orchestra succeeded.",
            "# TYPE queuepulse_relay_registered gauge",
            f"queuepulse_relay_registered {int(status['registered'])}",
        ]
        return "\n".join(lines) + "\n"


def _server(relay: Relay) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # A client that stops sending mid-body must not hold a thread for ever.
        timeout = READ_TIMEOUT_SECONDS

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _answer(self, code: int, body: bytes = b"", content_type: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            if body:
                self.send_header("Content-Type", content_type)
            self.end_headers()
            if body:
                self.wfile.write(body)

        def do_POST(self) -> None:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                self._answer(411, b'{"detail": "Content-Length required"}')
                return
            if int(length) > MAX_BODY_BYTES:
                self.close_connection = True
                self._answer(413, b'{"detail": "body too large for a Qmatic event"}')
                log.error("refused a body of %s bytes: no Qmatic event is that large", length)
                return
            body = self.rfile.read(int(length))
            try:
                json.loads(body)
            except (ValueError, RecursionError):
                self._answer(400, b'{"detail": "the body is no JSON"}')
                log.error("refused a body that is no JSON: %r", body[:200])
                return
            try:
                relay.spool.append(body)
            except (OSError, ValueError) as error:
                # An answer, not a dropped connection: Orchestra then keeps the relay registered.
                log.error("could not spool an event, it is lost: %s", error)
                self._answer(503, b'{"detail": "could not spool the event"}')
                return
            self._answer(204)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/status":
                self._answer(200, json.dumps(relay.status_json()).encode())
            elif path == "/metrics":
                self._answer(200, relay.metrics_text().encode(), "text/plain; version=0.0.4")
            elif path == "/healthz":
                self._answer(200, b'{"status": "ok"}')
            else:
                self._answer(404, b'{"detail": "not found"}')

    server = ThreadingHTTPServer(relay.listen, Handler)
    server.daemon_threads = True
    return server


def offline_status(directory: Path) -> dict[str, Any]:
    """The backlog as the spool on disk holds it, for `relay-qmatic --status` beside a running relay."""
    acked = read_acked(directory)
    backlog, oldest = 0, None
    for index, path in enumerate(segments := _segments(directory)):
        records, _ = _read_segment(path, index == len(segments) - 1)
        for record in records:
            if record.seq > acked:
                backlog += 1
                oldest = record.received_at if oldest is None else min(oldest, record.received_at)
    return {
        "backlog": backlog,
        "oldest_backlog_seconds": None if oldest is None else round(time.time() - oldest, 1),
        "acked_seq": acked,
    }
