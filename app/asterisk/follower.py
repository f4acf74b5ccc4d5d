"""Tailing an Asterisk queue_log into the service, across rotations and restarts (the command,
`queuepulse follow-queue-log`, is app/cli/follow_queue_log.py).

The follower remembers, per file it reads, the device and inode, how far the server has acknowledged,
and a hash of the file's first bytes (so a new file that reuses an inode is not taken for the old one).
That state is written atomically, and only after the server answered a batch: a crash re-sends at most
the batch in flight, and the server counts a re-sent line once because its event id comes from the line.

Rotation by rename (logrotate's default, `create`): the renamed file is found again by its inode in the
same directory, read to its end, and kept open a little while in case Asterisk writes to it before it
reopens the log; then the new file is read from its start. Use `delaycompress` so the renamed file is
still there when the follower comes back. Rotation by truncation (`copytruncate`): the file is read from
its start again; lines Asterisk wrote between logrotate's copy and its truncation are lost by that
method itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from app.forwarding import (
    BACKOFF_FIRST_SECONDS,
    BACKOFF_MAX_SECONDS,
    REQUEST_TIMEOUT_SECONDS,
    RETRY_AFTER_MAX_SECONDS,
    RETRY_STATUSES,
    DeliveryError,
    Sender,
    retry_delay,
    write_atomically,
)

# Re-exported: the follower's callers and tests name them from here.
__all__ = [
    "BACKOFF_FIRST_SECONDS",
    "BACKOFF_MAX_SECONDS",
    "REQUEST_TIMEOUT_SECONDS",
    "RETRY_AFTER_MAX_SECONDS",
    "RETRY_STATUSES",
    "Follower",
    "FollowerError",
    "load_state",
    "retry_delay",
    "save_state",
]

log = logging.getLogger("queuepulse.follow")

INGEST_PATH = "/v1/ingest/asterisk-queue-log"
DEFAULT_URL = "http://127.0.0.1:8000"
STATE_VERSION = 1
# Enough of a file's start to tell it from another: the first line holds a timestamp and a uniqueid.
HEAD_BYTES = 1024
# Read at most this much per batch; well under the service's 1 MiB body limit.
READ_BYTES = 256 * 1024
DEFAULT_BATCH_LINES = 500
DEFAULT_POLL_SECONDS = 0.5
# How long a renamed file is still watched for lines Asterisk writes before it reopens its log.
ROTATED_GRACE_SECONDS = 30.0
# Rotated files that were compressed cannot be read on; `delaycompress` keeps the newest one plain.
COMPRESSED_SUFFIXES = frozenset({".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z", ".zip"})
# File-system timestamps can trail the system clock by a tick; err towards reading a file again.
MTIME_MARGIN_SECONDS = 2.0
# More rotated files than logrotate keeps of a log that the follower could still meet again.
DONE_KEPT = 16
# Line ends as the route splits them too: \r\n, \n, or a lone \r (which would otherwise merge two lines).
_LINE_END = re.compile(rb"\r\n|\r|\n")


class FollowerError(DeliveryError):
    """A problem retrying cannot fix: a refused token, a wrong URL, a missing file."""


@dataclass
class Tracked:
    """One file being read: where it is on disk, and how far the server has acknowledged it."""

    device: int
    inode: int
    offset: int
    head: str = ""
    head_len: int = 0
    handle: BinaryIO | None = field(default=None, repr=False)
    rotated_since: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "inode": self.inode,
            "offset": self.offset,
            "head": self.head,
            "head_len": self.head_len,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tracked:
        return cls(
            device=int(data["device"]),
            inode=int(data["inode"]),
            offset=int(data["offset"]),
            head=str(data["head"]),
            head_len=int(data["head_len"]),
        )

    @property
    def fileno(self) -> int:
        assert self.handle is not None
        return self.handle.fileno()

    def same_file(self, stat: os.stat_result) -> bool:
        return (stat.st_dev, stat.st_ino) == (self.device, self.inode)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _head_matches(fileno: int, tracked: Tracked) -> bool:
    data = os.pread(fileno, tracked.head_len, 0)
    return len(data) == tracked.head_len and _digest(data) == tracked.head


def _note_head(tracked: Tracked) -> None:
    """Fingerprint the bytes already sent: an appended-to file never changes them."""
    data = os.pread(tracked.fileno, min(HEAD_BYTES, tracked.offset), 0)
    tracked.head, tracked.head_len = _digest(data), len(data)


def _from_start(handle: BinaryIO, rotated_since: float | None = None) -> Tracked:
    opened = os.fstat(handle.fileno())
    tracked = Tracked(opened.st_dev, opened.st_ino, 0, handle=handle, rotated_since=rotated_since)
    _note_head(tracked)
    return tracked


@dataclass(frozen=True)
class SavedState:
    files: list[Tracked]
    done: list[Tracked]
    saved_at: float | None


def load_state(path: Path) -> SavedState:
    if not path.exists():
        return SavedState([], [], None)
    data = json.loads(path.read_text())
    if data.get("version") != STATE_VERSION:
        raise FollowerError(f"{path}: unknown state version {data.get('version')!r}")
    return SavedState(
        [Tracked.from_json(item) for item in data["files"]],
        [Tracked.from_json(item) for item in data["done"]],
        datetime.fromisoformat(data["saved_at"]).timestamp(),
    )


def save_state(path: Path, source: Path, files: list[Tracked], done: list[Tracked]) -> None:
    """Replace the state file in one step: after a crash it holds the old state or the new, never half."""
    for tracked in files:
        _note_head(tracked)
    body = json.dumps(
        {
            "version": STATE_VERSION,
            "path": str(source),
            "saved_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "files": [tracked.as_json() for tracked in files],
            "done": [tracked.as_json() for tracked in done],
        },
        indent=2,
    )
    write_atomically(path, body + "\n")


@dataclass
class Batch:
    lines: list[bytes]
    starts: list[int]
    end: int


def _line_end(chunk: bytes, position: int, final: bool) -> re.Match[bytes] | None:
    """The end of the line starting at `position`: \r\n, \n or a lone \r; None while it is incomplete.

    A \r that ends what was read may be the first half of a \r\n not written yet, unless nothing more
    is coming (`final`).
    """
    end = _LINE_END.search(chunk, position)
    if end is None or (end.group() == b"\r" and end.end() == len(chunk) and not final):
        return None
    return end


def read_batch(tracked: Tracked, max_lines: int, include_partial: bool) -> Batch:
    """Complete lines after the acknowledged offset; the trailing partial line too if asked."""
    chunk = os.pread(tracked.fileno, READ_BYTES, tracked.offset)
    lines: list[bytes] = []
    starts: list[int] = []
    position = 0
    while len(lines) < max_lines and position < len(chunk):
        end = _line_end(chunk, position, include_partial and len(chunk) < READ_BYTES)
        if end is None:
            # A line longer than a whole read is no queue_log line: pass it on for the server to reject.
            if include_partial or (position == 0 and len(chunk) == READ_BYTES):
                lines.append(chunk[position:])
                starts.append(tracked.offset + position)
                position = len(chunk)
            break
        lines.append(chunk[position : end.start()])
        starts.append(tracked.offset + position)
        position = end.end()
    return Batch(lines, starts, tracked.offset + position)


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


@dataclass
class Follower:
    path: Path
    endpoint: str
    token: str
    state_file: Path
    client: httpx.Client
    once: bool = False
    batch_lines: int = DEFAULT_BATCH_LINES
    poll_seconds: float = DEFAULT_POLL_SECONDS
    time_zone: str | None = None
    # Waits the given seconds; returns True when the follower should stop.
    wait: Callable[[float], bool] = field(default=_sleep)
    clock: Callable[[], float] = time.monotonic
    files: list[Tracked] = field(default_factory=list)
    # Rotated files read to their end, so a restart does not take them for files it has never seen.
    done: list[Tracked] = field(default_factory=list)
    sent_lines: int = 0
    # Set once `wait` said stop; run() then returns, leaving a batch that was not acknowledged unsent.
    stopped: bool = field(default=False, init=False)
    # Lines skipped because the service answered that their event ids are stored with another payload.
    conflicting_lines: int = 0

    def run(self) -> int:
        """Send the file's lines until all are sent (`once`) or `wait` says stop; 0 either way."""
        try:
            self._restore()
            if not self.files and self.once:
                raise FollowerError(f"{self.path}: no such file")
            while not self.stopped:
                if not self._step() and (self.once or self._pause(self.poll_seconds)):
                    break
            return 0
        finally:
            for tracked in self.files:
                if tracked.handle is not None:
                    tracked.handle.close()

    # ---- files --------------------------------------------------------------------------------

    def _candidates(self) -> Iterator[Path]:
        yield self.path
        with contextlib.suppress(FileNotFoundError):
            for entry in sorted(self.path.parent.iterdir()):
                if entry.name.startswith(self.path.name) and entry.name != self.path.name:
                    yield entry

    def _find(self, tracked: Tracked) -> BinaryIO | None:
        """The file a saved state names, wherever rotation renamed it to in the same directory."""
        for candidate in self._candidates():
            try:
                if not tracked.same_file(candidate.stat()):
                    continue
                handle = candidate.open("rb")
            except OSError:
                continue
            if tracked.same_file(os.fstat(handle.fileno())) and _head_matches(handle.fileno(), tracked):
                return handle
            handle.close()
        return None

    def _restore(self) -> None:
        saved = load_state(self.state_file)
        self.done = saved.done
        for tracked in saved.files:
            handle = self._find(tracked)
            if handle is None:
                log.warning(
                    "the file read up to byte %d before is gone (moved away, compressed or replaced); "
                    "anything it gained after that byte was not sent",
                    tracked.offset,
                )
                continue
            tracked.handle = handle
            if os.fstat(handle.fileno()).st_size < tracked.offset:
                log.warning("%s is shorter than before (truncated): reading it from its start", self.path)
                tracked.offset = 0
            self.files.append(tracked)
        if saved.saved_at is not None:
            self._adopt_unseen(saved.saved_at)
        self._adopt_current()
        if self.files:
            log.info("following %s from byte %d into %s", self.path, self.files[0].offset, self.endpoint)

    def _adopt_unseen(self, saved_at: float) -> None:
        """Files that were created and rotated away while the follower was stopped (two rotations or more).

        A renamed file neither being read nor read to its end, and written since the last save, holds
        lines not sent yet. The modification time is compared with a margin for coarse file-system clocks.
        """
        current = self._current_stat()
        unseen: list[tuple[float, Path]] = []
        for candidate in self._candidates():
            if candidate == self.path or candidate.suffix in COMPRESSED_SUFFIXES:
                continue
            try:
                stat = candidate.stat()
            except OSError:
                continue
            known = any(tracked.same_file(stat) for tracked in self.files)
            if known or (
                current is not None and (stat.st_dev, stat.st_ino) == (current.st_dev, current.st_ino)
            ):
                continue
            if stat.st_mtime >= saved_at - MTIME_MARGIN_SECONDS:
                unseen.append((stat.st_mtime, candidate))
        for _, candidate in sorted(unseen):
            try:
                handle = candidate.open("rb")
            except OSError:
                continue
            opened = os.fstat(handle.fileno())
            if any(old.same_file(opened) and _head_matches(handle.fileno(), old) for old in self.done):
                handle.close()
                continue
            log.info("%s was written since the last run and rotated away: reading it too", candidate)
            self.files.append(_from_start(handle, rotated_since=self.clock()))

    def _current_stat(self) -> os.stat_result | None:
        try:
            return self.path.stat()
        except FileNotFoundError:
            return None

    def _adopt_current(self) -> None:
        """Notice a file that took the name (rotation) and start reading it from its start."""
        stat = self._current_stat()
        if stat is None:
            # Between the rename and the new file's creation: the old file may still grow.
            return
        for tracked in self.files:
            if tracked.rotated_since is None and not tracked.same_file(stat):
                tracked.rotated_since = self.clock()
                log.info("%s was rotated: finishing the old file, then reading the new one", self.path)
        if any(tracked.same_file(stat) for tracked in self.files):
            return
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return
        self.files.append(_from_start(handle))
        self._save()

    def _step(self) -> bool:
        """Send one batch or settle one change of files; False when there is nothing to do right now."""
        self._adopt_current()
        for tracked in list(self.files):
            rotated = tracked.rotated_since is not None
            if not rotated and (
                os.fstat(tracked.fileno).st_size < tracked.offset
                or not _head_matches(tracked.fileno, tracked)  # truncated, then grown past the offset
            ):
                log.warning("%s was truncated: reading it from its start", self.path)
                tracked.offset = 0
                self._save()
                return True
            batch = read_batch(tracked, self.batch_lines, include_partial=False)
            if batch.lines:
                self._send(tracked, batch)
                return True
            if rotated and (self.once or self._grace_over(tracked)):
                rest = read_batch(tracked, self.batch_lines, include_partial=True)
                if rest.lines:
                    self._send(tracked, rest)
                    return True
                self.files.remove(tracked)
                _note_head(tracked)
                self.done = [*self.done, tracked][-DONE_KEPT:]
                if tracked.handle is not None:
                    tracked.handle.close()
                self._save()
                return True
        return False

    def _pause(self, seconds: float) -> bool:
        """Wait; True (and stopped from then on) when the wait was cut short by a stop."""
        if self.wait(seconds):
            self.stopped = True
        return self.stopped

    def _grace_over(self, tracked: Tracked) -> bool:
        assert tracked.rotated_since is not None
        return self.clock() - tracked.rotated_since >= ROTATED_GRACE_SECONDS

    def _save(self) -> None:
        save_state(self.state_file, self.path, self.files, self.done)

    # ---- the server ---------------------------------------------------------------------------

    def _send(self, tracked: Tracked, batch: Batch) -> None:
        """Deliver the batch (retrying until it is delivered or a stop), then record the new offset."""
        starts = batch.starts
        sender = Sender(
            client=self.client,
            endpoint=self.endpoint,
            token=self.token,
            content_type="text/plain",
            encode=_lines_body,
            pause=self._pause,
            conflicts=_conflicting_lines,
            params={"time_zone": self.time_zone} if self.time_zone else None,
            describe=lambda position: f"{self.path} byte {starts[position]}: line",
        )
        try:
            delivered = sender.send(batch.lines)
        except FollowerError:
            raise
        except DeliveryError as error:
            raise FollowerError(str(error)) from error
        if delivered is None:
            return
        sent = delivered.count
        tracked.offset = starts[sent] if sent < len(batch.lines) else batch.end
        self.sent_lines += sent
        self.conflicting_lines += len(delivered.conflicting)
        if delivered.result is not None:
            self._report(delivered.result, starts[:sent])
        self._save()

    def _report(self, result: dict[str, Any], starts: list[int]) -> None:
        for issue in result.get("errors", []):
            number = int(issue["line"])
            where = starts[number - 1] if 0 < number <= len(starts) else "?"
            log.warning("%s byte %s: line not used: %s", self.path, where, issue["reason"])
        if result.get("unknown"):
            log.warning("unknown verbs, not counted: %s", result["unknown"])
        log.debug("sent %d lines: %s", len(starts), result)


def _lines_body(lines: Sequence[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def _conflicting_lines(response: httpx.Response) -> dict[int, str] | None:
    """The lines a 409 names (their event ids are stored with another payload, e.g. under another
    --time-zone), by position in the batch; blanked, they keep the others' numbers and offsets."""
    try:
        return {int(issue["line"]) - 1: str(issue["reason"]) for issue in response.json()["errors"]}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
