"""The window checkpoint: its state as of a log position, so a joining instance replays only the tail.

The rollup writer (one instance at a time, app/db/rollup.py) writes it every CHECKPOINT_SECONDS. A joining
or restarted instance loads it, then tails the events table from its position (app/db/tail.py): ready in
the time of one load and a few seconds of log instead of a whole day's replay.

It must never make the figures differ from a full replay, so it is used only when its fingerprint matches:
the code that builds and restores a window (app/core, and the modules here that turn rows into events),
the Python version, the window's configuration, the targets, the retired queues and the replay's start
(replay_since) are the same as the joining instance's. Anything else, and the instance replays in full.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.checkpoint import PROTOCOL, dump_state, load_state
from app.core.queues import QueueKey
from app.core.targets import TargetBook
from app.core.window import Window
from app.db.connection import raw_connection
from app.db.position import LogPosition, Position
from app.db.replay import replay_since
from app.db.tail import Tail

log = logging.getLogger(__name__)

NAME = "window"
# How often the rollup writer writes the checkpoint; a joiner replays at most this much log (plus load).
CHECKPOINT_SECONDS = 30.0
_APP = Path(__file__).resolve().parents[1]
# The code a state depends on: the pure core (the window and its parts) and the row-to-event mapping.
_CODE = sorted(_APP.glob("core/*.py")) + [_APP / "db" / name for name in ("rows.py", "replay.py", "tail.py")]
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
SELECT = (
    "SELECT fingerprint, position_txid, position_id, applied_txids, state FROM window_checkpoints "
    "WHERE name = $1"
)


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


async def write_checkpoint(
    engine: AsyncEngine, window: Window, tail: Tail, retired: Iterable[QueueKey], now: float
) -> int:
    """Store the window's state with the log position it covers; returns its size in bytes."""
    # No await between these three: the state and the position are of the same moment.
    state = dump_state(window)
    covered = tail.covered()
    mark = fingerprint(window, window_targets(window), retired, covered.since)
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


async def load_checkpoint(
    engine: AsyncEngine, new_window: Callable[[], Window], retired: Iterable[QueueKey], now: float
) -> tuple[Window, LogPosition] | None:
    """A fresh window holding the stored state and what of the log it covers; None when there is no
    checkpoint or it was made by other code or settings (then the caller replays in full)."""
    async with raw_connection(engine) as driver:
        row = await driver.fetchrow(SELECT, NAME)
    if row is None:
        return None
    window = new_window()
    since = replay_since(window, now)
    if row[0] != fingerprint(window, window_targets(window), retired, since):
        log.info("window checkpoint not used: made by other code, settings or on another day")
        return None
    # As in the replay (app/db/replay.py): no cyclic collection while a million objects are built.
    gc.disable()
    try:
        load_state(window, row[4])
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
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
    written_at: float = float("-inf")
    last_bytes: int = 0
    last_seconds: float = 0.0

    async def maybe_write(self) -> bool:
        now = self.clock()
        if now - self.written_at < self.every:
            return False
        since = replay_since(self.window, now)
        if self.tail.since != since:
            # The window holds events from before what a replay now would start from (it was replayed
            # earlier in the day, or yesterday): a joiner must not get more than a replay gives. Once the
            # start stands still (an hour into the day) one rebuild brings the window in line.
            if since != replay_since(self.window, now + self.every):
                return False
            await self.rebuild()
            if self.tail.since != since:
                return False
        started = time.perf_counter()
        self.last_bytes = await write_checkpoint(self.engine, self.window, self.tail, self.retired(), now)
        self.last_seconds = time.perf_counter() - started
        self.written_at = now
        log.info("window checkpoint written: %d bytes in %.2f s", self.last_bytes, self.last_seconds)
        return True
