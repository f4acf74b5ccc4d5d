"""Delivering a batch of items to a queuepulse ingest route until it is acknowledged: what the Asterisk
follower (app/asterisk/follower.py) and the Qmatic relay (app/qmatic/relay.py) share.

Both keep what they have to send on disk and move their own mark on only after the service answered 200,
so a crash re-sends at most the batch in flight and the service counts it once by its event ids. Here is
the conversation itself: retries with backoff (or the service's Retry-After) on answers that a later try
may change, halving a batch the service finds too large, leaving out the items a 409 names (their event
ids are stored with another payload), and stopping on a refusal no retry can fix.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.settings import Settings

log = logging.getLogger("queuepulse.forward")

BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
# A Retry-After beyond this is more likely a misconfigured proxy than a plan.
RETRY_AFTER_MAX_SECONDS = 300.0
REQUEST_TIMEOUT_SECONDS = 30.0
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class DeliveryError(Exception):
    """A problem retrying cannot fix: a refused token, a wrong URL, a body the service will never take."""


def retry_delay(response: httpx.Response | None, attempt: int, ceiling: float = BACKOFF_MAX_SECONDS) -> float:
    """The server's Retry-After when it gave one, else an exponential backoff from the attempt number, up
    to `ceiling`."""
    if response is not None:
        value = response.headers.get("Retry-After")
        if value:
            with contextlib.suppress(ValueError):
                return min(max(0.0, float(value)), RETRY_AFTER_MAX_SECONDS)
            with contextlib.suppress(TypeError, ValueError):
                when = email.utils.parsedate_to_datetime(value)
                return min(max(0.0, (when - datetime.now(UTC)).total_seconds()), RETRY_AFTER_MAX_SECONDS)
    return float(min(ceiling, BACKOFF_FIRST_SECONDS * 2 ** min(attempt, 16)))


def write_atomically(path: Path, text: str) -> None:
    """Replace the file in one step, durably: after a crash it holds the old text or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename, creation or removal in the directory durable."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def ingest_token(settings: Settings, token_file: Path | None) -> str:
    """The ingest token: from --token-file, else QUEUEPULSE_INGEST_TOKEN, else DATA_DIR/ingest_token."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as error:
            raise DeliveryError(f"cannot read the token file: {error}") from error
    elif settings.ingest_token:
        token = settings.ingest_token
    elif (settings.data_dir / "ingest_token").exists():
        token = (settings.data_dir / "ingest_token").read_text().strip()
    else:
        raise DeliveryError("no ingest token: pass --token-file or set QUEUEPULSE_INGEST_TOKEN")
    if not token:
        raise DeliveryError("the ingest token is empty")
    return token


def endpoint_url(url: str, path: str) -> str:
    """The route's URL from the service's base URL (or the route's own URL, taken as it is)."""
    url = url.rstrip("/")
    return url if url.endswith(path) else url + path


@dataclass(frozen=True, slots=True)
class Delivered:
    """What the service acknowledged: the first `count` items of those offered (fewer when it found the
    batch too large), with its answer's JSON (None when an item was skipped as too large)."""

    count: int
    result: dict[str, Any] | None
    # Positions (among the `count`) left out because the service found their event ids conflicting.
    conflicting: list[int] = field(default_factory=list)


def _no_conflicts(_response: httpx.Response) -> dict[int, str] | None:
    return None


@dataclass
class Sender:
    """POSTs batches of items to one route.

    `encode` turns the items into a body; `conflicts` reads a 409 answer into {0-based position: reason}
    (None: the answer names none, so the refusal stands); a conflicting item is replaced by `blank`, which
    the route must skip while keeping the others' positions. `pause` waits and says whether to stop.
    """

    client: httpx.Client
    endpoint: str
    token: str
    content_type: str
    encode: Callable[[Sequence[bytes]], bytes]
    pause: Callable[[float], bool]
    conflicts: Callable[[httpx.Response], dict[int, str] | None] = _no_conflicts
    blank: bytes = b""
    params: dict[str, str] | None = None
    # Names an item for the log, by its position in the batch offered.
    describe: Callable[[int], str] = str
    # The longest wait between two attempts the service gave no Retry-After for.
    backoff_max: float = BACKOFF_MAX_SECONDS
    # The problem of the last failed attempt, None once a batch went through: for status reports.
    last_problem: str | None = field(default=None, init=False)

    def send(self, batch: Sequence[bytes]) -> Delivered | None:
        """Deliver the batch, or a leading part of it, retrying until the service acknowledges it; None
        when a stop cut the retries short (nothing acknowledged). Raises DeliveryError on a refusal."""
        items = list(batch)
        conflicting: list[int] = []
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self.client.post(
                    self.endpoint,
                    content=self.encode(items),
                    params=self.params,
                    headers={"Authorization": f"Bearer {self.token}", "Content-Type": self.content_type},
                )
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 200:
                    self.last_problem = None
                    return Delivered(len(items), response.json(), conflicting)
                if response.status_code == 413 and len(items) > 1:
                    items = items[: len(items) // 2]
                    conflicting = [position for position in conflicting if position < len(items)]
                    log.info("the server found the batch too large: sending %d items at a time", len(items))
                    continue
                if response.status_code == 413:
                    log.error("%s: too large to send, skipped", self.describe(0))
                    return Delivered(1, None, conflicting)
                if response.status_code == 409 and self._blank_conflicting(items, conflicting, response):
                    continue
                if response.status_code not in RETRY_STATUSES:
                    refusal = f"{response.status_code} {response.text.strip()}"
                    self.last_problem = refusal
                    raise DeliveryError(f"the server refused the items: {refusal}")
                problem = f"{response.status_code} {response.text.strip()}"
            self.last_problem = problem
            delay = retry_delay(response, attempt, self.backoff_max)
            attempt += 1
            log.warning("sending failed (%s); retrying in %.1f s", problem, delay)
            if self.pause(delay):
                return None

    def _blank_conflicting(
        self, items: list[bytes], conflicting: list[int], response: httpx.Response
    ) -> bool:
        """Blank out the items a 409 names, logged, so one such item cannot hold up the rest for good.
        False when the answer names none that is still there to blank."""
        reasons = self.conflicts(response)
        if not reasons:
            return False
        skipped = [
            position
            for position in sorted(reasons)
            if 0 <= position < len(items) and items[position] != self.blank
        ]
        for position in skipped:
            items[position] = self.blank
            conflicting.append(position)
            log.error(
                "%s conflicts with a stored event, skipped: %s", self.describe(position), reasons[position]
            )
        return bool(skipped)
