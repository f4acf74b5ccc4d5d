"""Rebuilding the live window from the database while the service runs.

Two callers: a target change (within-threshold counts were decided with the old threshold, so today's
figures are recomputed with the new one) and recovery after failed commits (a commit whose answer was lost
may have stored events the window never saw). Either way the writer is paused, so no event commits between
the replay's snapshot and the swap: the rebuilt window holds exactly what the database holds, as after a
restart. Ingest requests wait (bounded by the writer's queue limit) for the length of one replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.targets import TargetBook
from app.core.window import Window
from app.db.replay import replay_covering
from app.db.tail import Tail
from app.db.writer import GroupCommitWriter

log = logging.getLogger(__name__)

# How often the healer looks for failed commits; a rebuild follows within this time of recovery.
HEAL_CHECK_SECONDS = 1.0


@dataclass
class Live:
    """What a rebuild swaps: the window the service reads, the writer that feeds it, its target book."""

    engine: AsyncEngine
    writer: GroupCommitWriter
    window: Window
    targets: TargetBook
    clock: Callable[[], float]
    # The log tail feeding other instances' commits; paused too, and told where the replay left off.
    tail: Tail | None = None


@contextlib.asynccontextmanager
async def _tail_paused(tail: Tail | None) -> AsyncIterator[None]:
    if tail is None:
        yield
        return
    async with tail.paused():
        yield


async def rebuild_window(
    live: Live,
    change_targets: Callable[[TargetBook], None] | None = None,
    before_swap: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Replay the database into a fresh window and swap it in; returns the events replayed.

    `change_targets` edits a copy of the live target book, taken while paused so concurrent changes
    serialise; the copy replaces the live book's entries at the swap. `before_swap` runs after the replay,
    still paused; if it or the replay raises, nothing changes.
    """
    async with live.writer.paused(), _tail_paused(live.tail):
        book = TargetBook(live.targets.defaults, live.targets.overrides)
        if change_targets is not None:
            change_targets(book)
        fresh = Window(live.window.config, book)
        count, covered = await replay_covering(live.engine, fresh, live.clock())
        if before_swap is not None:
            await before_swap()
        # No await from here on: readers never see the new window with the old targets.
        live.window.adopt(fresh)
        if live.tail is not None:
            live.tail.reset(covered)
        live.targets.defaults = book.defaults
        live.targets.overrides = book.overrides
    return count


async def heal_after_failed_commits(live: Live, check_seconds: float = HEAL_CHECK_SECONDS) -> None:
    """Forever: after any failed commit, rebuild the window once the database answers again."""
    healed = live.writer.stats.errors
    while True:
        await asyncio.sleep(check_seconds)
        errors = live.writer.stats.errors
        if errors == healed:
            continue
        try:
            count = await rebuild_window(live)
        except Exception as error:
            log.info("window rebuild after failed commits deferred: %s: %s", type(error).__name__, error)
            continue
        # Failures before this rebuild are covered by it; the writer was paused, so none came in between.
        healed = errors
        log.warning("window rebuilt from %d stored events after %d failed commits", count, errors)
