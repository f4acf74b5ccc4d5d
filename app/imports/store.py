"""The import's way from checked chunks to stored events: the rules of live ingest, then bulk storing.

Each chunk meets what a request to POST /v1/events meets (app/ingest.py): the time rules, then the queue
admission against the stored registry (the import is one more source, named by `--source`, which is also
each event's ingested_by and each new queue's admitted_by). Then the chunk is stored whole in one
transaction (app/db/bulk.py) or, if a line of it is bad, not at all: by default the import stops there, so
everything before the chunk is stored and nothing of it or after; with skip_bad the bad lines are left out
and listed and the rest goes on. Re-importing a file stores nothing again (event_id is the key). After the
last chunk the rollup of every local day the new events bear on is rebuilt from the stored events
(app/db/rollup.py), so the history reports show them as if they had been posted live.
"""

from __future__ import annotations

import bisect
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import cast
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.clock import day_bounds, local_date
from app.core.events import Event
from app.core.queues import QueueRegistry, Reservation
from app.core.window import Window
from app.db.bulk import (
    ChunkClashed,
    ChunkStored,
    StoredClash,
    make_durable,
    prepare,
    release,
    store_chunk,
    stored_clashes,
)
from app.db.connection import raw_connection
from app.db.queues import load_queues, save_admitted
from app.db.rollup import EARLIEST_DAY, LATEST_DAY, rebuild_day
from app.db.rows import Row, copy_records, differing_fields, payload_of
from app.db.targets import load_targets
from app.imports.events import BadLine, Chunk
from app.ingest import queue_issues, time_issues
from app.settings import Settings, target_book, window_config

DEFAULT_SOURCE = "import"
DEFAULT_CHUNK_LINES = 20_000
# The most chunks in a row stored through the stage before COPY straight into events is tried again.
MAX_STAGED_RUN = 64
# Bad lines listed in the summary when they are skipped; past this they are only counted, so a file of
# nothing but bad lines cannot fill memory.
LISTED_BAD_LINES = 1000


@dataclass
class Stopped:
    """Where a default-mode import stopped: the first bad chunk, nothing of which was stored."""

    path: str
    first_line: int
    last_line: int
    bad: list[BadLine]


@dataclass
class ImportStats:
    events: int = 0
    inserted: int = 0
    duplicates: int = 0
    bad_count: int = 0
    bad: list[BadLine] = field(default_factory=list)
    days: set[date] = field(default_factory=set)
    stopped: Stopped | None = None
    days_rebuilt: int = 0
    days_failed: list[date] = field(default_factory=list)
    last_error: str | None = None
    # The last line stored, as (file, line): where a re-run after an interruption picks up (it may start
    # from the beginning; what is stored is skipped as duplicates).
    stored_through: tuple[str, int] | None = None

    def note_bad(self, bad: list[BadLine]) -> None:
        self.bad_count += len(bad)
        room = LISTED_BAD_LINES - len(self.bad)
        if room > 0:
            self.bad.extend(bad[:room])


def _without(events: list[Event], lines: list[int], refused: set[int]) -> tuple[list[Event], list[int]]:
    kept = [(event, line) for event, line in zip(events, lines, strict=True) if line not in refused]
    return [event for event, _ in kept], [line for _, line in kept]


@dataclass
class Importer:
    """One import run on one database connection; use `async with`, `take` each chunk, then `finish`."""

    engine: AsyncEngine
    settings: Settings
    source: str = DEFAULT_SOURCE
    skip_bad: bool = False
    clock: Callable[[], float] = time.time
    stats: ImportStats = field(default_factory=ImportStats)
    registry: QueueRegistry = field(default_factory=QueueRegistry)
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    _driver: asyncpg.Connection | None = None
    # Chunks to go through the stage before COPY straight into events (app/db/bulk.py) is tried again:
    # 0 while chunks are all new. A try that meets a stored event_id costs a rolled-back COPY, so after
    # one the next try waits for 1, then 2, 4, ... more chunks all new: a re-run (every chunk stored)
    # tries once, and a file whose chunks each repeat an event or two does not pay for a failed COPY each.
    _staged_left: int = 0
    _staged_next: int = 1

    @property
    def _tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.time_zone)

    async def __aenter__(self) -> Importer:
        records = await load_queues(self.engine)
        self.registry.load(
            ((record.key, record.admitted_by) for record in records if record.retired_at is None),
            ((record.key, record.admitted_by) for record in records if record.retired_at is not None),
        )
        self._driver = await self._stack.enter_async_context(raw_connection(self.engine))
        await prepare(self._driver)
        self._stack.push_async_callback(release, self._driver)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        try:
            if exc_type is None and self._driver is not None:
                await make_durable(self._driver)
        finally:
            await self._stack.aclose()

    async def take(self, chunk: Chunk, admit: bool = True, held: Reservation | None = None) -> bool:
        """Check and store one chunk; False when the import must stop here (a bad line, default mode).

        With admit=False the caller has admitted the chunk's queues itself (the queue_log import, as the
        live route does) and `held` is its reservation, committed or let go here with the events.
        """
        assert self._driver is not None
        settings, source = self.settings, self.source
        bad = list(chunk.bad)
        events, lines = chunk.events, chunk.lines
        now = self.clock()
        misdated = time_issues(events, lines, now, settings)
        if misdated:
            bad += [
                BadLine(chunk.path, issue.index or 0, f"occurred_at: {issue.message}") for issue in misdated
            ]
            events, lines = _without(events, lines, {issue.index or 0 for issue in misdated})
        while admit and events and not (bad and not self.skip_bad):
            capped, held = queue_issues(events, lines, self.registry, source, settings)
            if not capped:
                break
            bad += [BadLine(chunk.path, issue.index or 0, f"queue: {issue.message}") for issue in capped]
            events, lines = _without(events, lines, {issue.index or 0 for issue in capped})
        try:
            records, lines, repeated = self._records(chunk.path, events, lines, now, bad)
            if bad and not self.skip_bad:
                # Refused already: the report names its clashes with stored events too.
                bad += self._clashed(chunk.path, records, lines, await stored_clashes(self._driver, records))
                stored = None
            else:
                stored = await self._store(chunk.path, records, lines, bad)
        except BaseException:
            self.registry.release(held)
            raise
        bad.sort(key=lambda item: item.line)
        self.stats.note_bad(bad)
        if stored is None:
            self.registry.release(held)
            self.stats.stopped = Stopped(chunk.path, chunk.first_line, chunk.last_line, bad)
            return False
        self.registry.commit(held)
        if self.registry.unsaved:
            unsaved = dict(self.registry.unsaved)
            await save_admitted(self.engine, unsaved)
            for key in unsaved:
                self.registry.unsaved.pop(key, None)
        self.stats.events += stored.inserted + stored.duplicates + repeated
        self.stats.inserted += stored.inserted
        self.stats.duplicates += stored.duplicates + repeated
        self._touch(events if stored.inserted_at is None else stored.inserted_at)
        self.stats.stored_through = (chunk.path, chunk.last_line)
        return True

    async def _store(
        self, path: str, records: list[Row], lines: list[int], bad: list[BadLine]
    ) -> ChunkStored | None:
        """Store the records; a clash with a stored payload is a bad line: None (nothing stored) by
        default, else the chunk goes again without it."""
        assert self._driver is not None
        while True:
            direct = self._staged_left == 0
            outcome = await store_chunk(self._driver, records, direct)
            self._note_direct(direct, isinstance(outcome, ChunkStored) and outcome.duplicates == 0)
            if not isinstance(outcome, ChunkClashed):
                return outcome
            bad += self._clashed(path, records, lines, outcome.clashes)
            if not self.skip_bad:
                return None
            clashed = {clash.event_id for clash in outcome.clashes}
            kept = [
                (record, line)
                for record, line in zip(records, lines, strict=True)
                if record[0] not in clashed
            ]
            records, lines = [record for record, _ in kept], [line for _, line in kept]

    def _note_direct(self, tried: bool, all_new: bool) -> None:
        if tried and all_new:
            self._staged_next = 1
        elif tried:
            self._staged_left = self._staged_next
            self._staged_next = min(2 * self._staged_next, MAX_STAGED_RUN)
        elif all_new:
            self._staged_left -= 1

    def _touch(self, inserted: Sequence[Event] | Sequence[float]) -> None:
        """Note the local days the new events bear on: each one's day, and the day a maximum wait later
        (a day's rebuild replays from a maximum wait before its midnight)."""
        if not inserted:
            return
        times = sorted(
            cast("Sequence[float]", inserted)
            if isinstance(inserted[0], float)
            else [event.at for event in cast("Sequence[Event]", inserted)]
        )
        tz = self._tz
        days = self.stats.days
        # Each day once: the day of the earliest time not yet placed, then a jump past that day's end.
        for moments in (times, [at + self.settings.max_wait_seconds for at in times]):
            index = 0
            while index < len(moments):
                day = local_date(moments[index], tz)
                days.add(day)
                index = bisect.bisect_left(moments, day_bounds(day, tz)[1], index + 1)

    @staticmethod
    def _clashed(
        path: str, records: list[Row], lines: list[int], clashes: Sequence[StoredClash]
    ) -> list[BadLine]:
        line_of = dict(zip((record[0] for record in records), lines, strict=True))
        return [
            BadLine(
                path,
                line_of[clash.event_id],
                f"event_id {clash.event_id!r} was stored before with a different {', '.join(clash.fields)}",
            )
            for clash in clashes
        ]

    def _records(
        self, path: str, events: list[Event], lines: list[int], now: float, bad: list[BadLine]
    ) -> tuple[list[Row], list[int], int]:
        """The events as COPY records, each event_id once, with their lines; a repeat within the chunk is
        a duplicate (counted) when its payload is the same, else a bad line."""
        records = copy_records([(events, self.source)], datetime.fromtimestamp(now, UTC))
        # Nearly every chunk repeats no event_id: one set in C tells, without the loop below.
        if len({record[0] for record in records}) == len(records):
            return records, lines, 0
        first: dict[str, int] = {}
        kept: list[Row] = []
        kept_lines: list[int] = []
        repeated = 0
        for record, line in zip(records, lines, strict=True):
            event_id = record[0]
            earlier = first.get(event_id)
            if earlier is None:
                first[event_id] = len(kept)
                kept.append(record)
                kept_lines.append(line)
                continue
            differing = differing_fields(payload_of(record), payload_of(kept[earlier]))
            if differing:
                bad.append(
                    BadLine(
                        path,
                        line,
                        f"event_id {event_id!r} was given earlier on line {kept_lines[earlier]} with a "
                        f"different {', '.join(differing)}",
                    )
                )
            else:
                repeated += 1
        return kept, kept_lines, repeated

    async def finish(self, on_day: Callable[[date, int], None] | None = None) -> None:
        """Rebuild the rollup of every local day the new events bear on, from the stored events; a day
        that fails is listed in stats.days_failed (a re-run stores nothing new, so it would not redo it:
        `queuepulse rebuild-rollups` does) and the others go on."""
        targets = target_book(self.settings)
        await load_targets(self.engine, targets)
        config = window_config(self.settings)
        for day in sorted(self.stats.days):
            if not EARLIEST_DAY <= day <= LATEST_DAY:
                continue
            try:
                count = await rebuild_day(self.engine, lambda: Window(config, targets), day)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                self.stats.days_failed.append(day)
                self.stats.last_error = f"{type(error).__name__}: {error}"
                continue
            self.stats.days_rebuilt += 1
            if on_day is not None:
                on_day(day, count)
