"""The window checkpoint: its state as of a log position, so a joining instance replays only the tail.

The rollup writer (one instance at a time, app/db/rollup.py) writes it every CHECKPOINT_SECONDS. A joining
or restarted instance loads it, then tails the events table from its position (app/db/tail.py): ready in
the time of one load and a few seconds of log instead of a whole day's replay.

It must never make the figures differ from a full replay, so it is used only when its fingerprint matches:
the code that builds and restores a window (app/core, and the modules here that turn rows into events),
the Python version, the window's configuration, the targets, the retired queues and the replay's start
(replay_since) are the same as the joining instance's. Anything else, and the instance replays in full.

Beside the window it holds the lobby's wait ledger with its own read position (app/db/waits.py FeedState),
so a joiner restores that too instead of reading the day's visit events; a ledger caught up from another
replay start than the window's is left out (the joiner then catches its ledger up itself).

The state is encoded in a forked child where the platform has fork(): the child holds the process's
memory as of the fork, so the encoding takes that moment's state while the event loop goes on taking
events (the loop stalls for the fork, not for the encoding).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.checkpoint import PROTOCOL, dump_state, load_state
from app.core.queues import QueueKey
from app.core.targets import TargetBook
from app.core.window import Window
from app.db.connection import raw_connection
from app.db.position import LogPosition, Position
from app.db.replay import replay_since
from app.db.tail import Tail
from app.db.waits import FeedState, WaitFeed

log = logging.getLogger(__name__)

NAME = "window"
# How often the rollup writer writes the checkpoint; a joiner replays at most this much log (plus load).
CHECKPOINT_SECONDS = 30.0
_APP = Path(__file__).resolve().parents[1]
# The code a state depends on: the pure core (the window and its parts) and the row-to-event mapping.
_CODE = sorted(_APP.glob("core/*.py")) + [
    _APP / "db" / name for name in ("rows.py", "replay.py", "tail.py", "waits.py", "checkpoint.py")
]
# Encode in a forked child (see the module text); without fork(), on the event loop.
ENCODE_IN_CHILD = hasattr(os, "fork")
# A child that has not finished by then is killed and the write fails (the rollup writer, which awaits it,
# must not wait for ever). A million events' state takes it about 2 s.
ENCODE_TIMEOUT_SECONDS = 120.0
_CODE_DIGEST = hashlib.sha256(
    b"".join(path.name.encode() + b"\0" + path.read_bytes() for path in _CODE)
).hexdigest()

UPSERT = """
INSERT INTO window_checkpoints
    (name, fingerprint, position_txid, position_id, applied_txids, state, written_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (name) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, position_txid = EXCLUDED.position_txid,
    position_id = EXCLUDED.position_id, applied_txids = EXCLUDED.applied_txids, state = EXCLUDED.state,
    written_at = EXCLUDED.written_at
"""
# A checkpoint this many rows or more behind the log is not used. The tail applies rows a commit at a
# time, several times slower an event than a replay; past this many, replaying the day is the quicker
# join (a checkpoint written before a bulk load or an import of today, or by a leader that stopped
# writing). Written every QUEUEPULSE_CHECKPOINT_SECONDS, a checkpoint is some ten thousand rows behind.
MAX_ROWS_BEHIND = 100_000
# The state only when the checkpoint is used: a refused one costs no transfer of its bytes.
SELECT = """
SELECT fingerprint = $2 AND behind.rows < $3, position_txid, position_id, applied_txids,
       CASE WHEN fingerprint = $2 AND behind.rows < $3 THEN state END, behind.rows
FROM window_checkpoints AS checkpoint, LATERAL (
    SELECT count(*) AS rows FROM (
        SELECT 1 FROM events
        WHERE (txid, id) > (checkpoint.position_txid::text::xid8, checkpoint.position_id)
        LIMIT $3
    ) AS after
) AS behind
WHERE name = $1
"""


def fingerprint(window: Window, targets: TargetBook, retired: Iterable[QueueKey], since: float) -> str:
    parts = [
        _CODE_DIGEST,
        sys.version,
        str(PROTOCOL),
        repr(window.config),
        repr(sorted((channel.value, repr(target)) for channel, target in targets.defaults.items())),
        repr(sorted((c.value, q, repr(target)) for (c, q), target in targets.overrides.items())),
        repr(sorted((channel.value, queue) for channel, queue in retired)),
        repr(since),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def _collect(descriptor: int, pid: int) -> bytes:
    """The child's output to its end, then the child itself (in a thread: the descriptor and the child are
    this function's alone, so a cancelled caller leaves neither open nor a zombie)."""
    chunks = []
    try:
        while chunk := os.read(descriptor, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(descriptor)
        _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError(f"the checkpoint encoder exited with status {status}")
    return b"".join(chunks)


async def encode_in_child(window: Window, beside: object) -> bytes:
    """dump_state(window, beside) as of now, computed by a forked child while the loop goes on."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, which leaves by os._exit only
        status = 1
        try:
            os.close(read_end)
            # A signal meant for the process group must not reach the parent's loop through the wake-up
            # descriptor the child shares with it (only settable from the main thread, where the loop is).
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(-1)
                for number in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(number, signal.SIG_DFL)
            _write_all(write_end, dump_state(window, beside))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    collected = asyncio.get_running_loop().run_in_executor(None, _collect, read_end, pid)
    try:
        return await asyncio.wait_for(asyncio.shield(collected), ENCODE_TIMEOUT_SECONDS)
    except BaseException:
        # Timed out or cancelled (a shutdown): ending the child ends the thread's read and reaps it, and
        # the thread's error about the killed child is taken here, not left for asyncio to report.
        if not collected.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        collected.add_done_callback(_taken)
        raise


def _taken(future: asyncio.Future[bytes]) -> None:
    if not future.cancelled():
        future.exception()


async def encode_checkpoint(
    window: Window, tail: Tail, waits: WaitFeed | None, fork: bool = ENCODE_IN_CHILD
) -> tuple[bytes, LogPosition]:
    """The state of the window (and the wait ledger beside it) with the log position it covers; in a
    forked child unless `fork` is off (or the platform has no fork())."""
    # No await between taking the position and the state (the fork): they are of the same moment.
    covered = tail.covered()
    feed = waits.state() if waits is not None else None
    beside = feed if feed is not None and feed.since == covered.since else None
    if fork and ENCODE_IN_CHILD:
        return await encode_in_child(window, beside), covered
    return dump_state(window, beside), covered


async def write_checkpoint(
    engine: AsyncEngine,
    window: Window,
    tail: Tail,
    retired: Iterable[QueueKey],
    now: float,
    waits: WaitFeed | None = None,
    fork: bool = ENCODE_IN_CHILD,
) -> int:
    """Store the window's state with the log position it covers; returns its size in bytes."""
    # Of the same moment as the state: no await before encode_checkpoint takes it.
    mark = fingerprint(window, window_targets(window), retired, tail.since)
    state, covered = await encode_checkpoint(window, tail, waits, fork)
    async with raw_connection(engine) as driver:
        await driver.execute(
            UPSERT,
            NAME,
            mark,
            covered.position.txid,
            covered.position.id,
            sorted(covered.applied),
            state,
            datetime.fromtimestamp(now, UTC),
        )
    return len(state)


def window_targets(window: Window) -> TargetBook:
    targets = window.targets
    if not isinstance(targets, TargetBook):
        raise TypeError("the window's target lookup is not a TargetBook")
    return targets


async def read_checkpoint_row(engine: AsyncEngine, mark: str) -> asyncpg.Record | None:
    async with raw_connection(engine) as driver:
        row: asyncpg.Record | None = await driver.fetchrow(SELECT, NAME, mark, MAX_ROWS_BEHIND)
    return row


def decode_checkpoint(window: Window, data: bytes) -> object:
    """load_state, with no cyclic collection while a million objects are built (as in the replay,
    app/db/replay.py); they are frozen after, so later collections do not walk them either. Not collected
    first: a fresh start has nothing to collect, and the walk over the new objects cost a quarter second
    at a million events."""
    gc.disable()
    try:
        return load_state(window, data)
    finally:
        gc.enable()
        gc.freeze()


async def load_checkpoint(
    engine: AsyncEngine,
    new_window: Callable[[], Window],
    retired: Iterable[QueueKey],
    now: float,
    waits: WaitFeed | None = None,
) -> tuple[Window, LogPosition] | None:
    """A fresh window holding the stored state and what of the log it covers; None when there is no
    checkpoint or it was made by other code or settings (then the caller replays in full). The wait
    ledger stored beside it goes into `waits` (restored) when it suits, else `waits` is left to catch up."""
    if waits is not None:
        waits.restored = False
    window = new_window()
    since = replay_since(window, now)
    row = await read_checkpoint_row(engine, fingerprint(window, window_targets(window), retired, since))
    if row is None:
        return None
    if not row[0]:
        if row[5] >= MAX_ROWS_BEHIND:
            log.info("window checkpoint not used: %d or more rows behind the log", MAX_ROWS_BEHIND)
        else:
            log.info("window checkpoint not used: made by other code, settings or on another day")
        return None
    beside = decode_checkpoint(window, row[4])
    if (
        waits is not None
        and isinstance(beside, FeedState)
        and beside.since == since
        and beside.ledger.max_wait_seconds == waits.ledger.max_wait_seconds
    ):
        waits.restore(beside)
    return window, LogPosition(Position(row[1], row[2]), frozenset(row[3]), since)


@dataclass
class Checkpointer:
    """Writes the checkpoint every `every` seconds; run by the rollup writer after its flush (so by the
    one instance holding the rollup lock)."""

    engine: AsyncEngine
    window: Window
    tail: Tail
    retired: Callable[[], Iterable[QueueKey]]
    clock: Callable[[], float]
    # Replays the window afresh (app/db/rebuild.py): for a window whose replay start is out of date.
    rebuild: Callable[[], Awaitable[int]]
    every: float = CHECKPOINT_SECONDS
    # The lobby's wait ledger, stored beside the window.
    waits: WaitFeed | None = None
    # Encode in a forked child (settings.checkpoint_fork).
    fork: bool = ENCODE_IN_CHILD
    written_at: float = float("-inf")
    last_bytes: int = 0
    last_seconds: float = 0.0

    async def maybe_write(self) -> bool:
        now = self.clock()
        if now - self.written_at < self.every:
            return False
        since = replay_since(self.window, now)
        stale_ledger = self.waits is not None and self.waits.since not in (None, since)
        if self.tail.since != since or stale_ledger:
            # The window (or the ledger) holds events from before what a replay now would start from (it
            # was replayed earlier in the day, or yesterday): a joiner must not get more than a replay
            # gives. Once the start stands still (an hour into the day) one rebuild brings it in line.
            if since != replay_since(self.window, now + self.every):
                return False
            if self.tail.since != since:
                await self.rebuild()
                if self.tail.since != since:
                    return False
            if stale_ledger and self.waits is not None:
                await self.waits.rebuild(since)
        started = time.perf_counter()
        self.last_bytes = await write_checkpoint(
            self.engine, self.window, self.tail, self.retired(), now, self.waits, self.fork
        )
        self.last_seconds = time.perf_counter() - started
        self.written_at = now
        log.info("window checkpoint written: %d bytes in %.2f s", self.last_bytes, self.last_seconds)
        return True
