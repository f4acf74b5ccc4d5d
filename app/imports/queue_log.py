"""Rotated Asterisk queue_log archives into the events table, with the events the live route would make.

The live route (POST /v1/ingest/asterisk-queue-log, app/api/asterisk.py) turns a request's lines into
events in steps that depend on what came before: a channel entering a queue again is visit #2 only if its
first visit is stored, and a QUEUESTART clears the callers the window holds open. So the archives are read
as the follower would have sent them, oldest first: the files in the order of their first line's time
(queue_log.3.gz, queue_log.2.gz, queue_log.1, queue_log, whatever order they are named in), each file's
lines in its own order, chunk after chunk, each chunk stored before the next is read. Each chunk goes
through the route's own steps (its line reading, the stored visits, the queue admission, the visit and
member resolution) against a window this import keeps of the events it stored, applied as they happened;
so the contact ids, visit numbers and clears are the ones the live route gives the same lines.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import tzinfo

from app.api.asterisk import _read as read_lines
from app.asterisk.parser import Parsed, Restart, decode_line, parse_line
from app.asterisk.visits import Stored
from app.core.events import EVENT_TYPES
from app.core.window import Window
from app.db.visits import stored_for
from app.imports.events import BadLine, Chunk
from app.imports.files import LineFile
from app.imports.store import Importer

# Lines looked at for a file's first time; a file whose first this many lines hold no call or restart
# line is imported last.
FIRST_TIME_LINES = 10_000


def first_time(file: LineFile, tz: tzinfo) -> float:
    """The time of the file's first call or restart line (inf when it has none near its start)."""
    for number, raw in file.lines():
        result = parse_line(decode_line(raw), tz)
        if isinstance(result, Parsed):
            return float(result.event["occurred_at"].timestamp())
        if isinstance(result, Restart):
            return result.at
        if number >= FIRST_TIME_LINES:
            break
    return math.inf


def in_log_order(files: list[LineFile], tz: tzinfo) -> list[LineFile]:
    """The archives oldest first, by their first line's time (then by name)."""
    return sorted(files, key=lambda file: (first_time(file, tz), file.name))


@dataclass
class LogState:
    """What carries from chunk to chunk: the window of the stored Asterisk events, applied as they
    happened (`now` the latest time applied), and the verbs counted but not stored."""

    window: Window
    now: float = 0.0
    ignored: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)


def _raw_chunks(file: LineFile, chunk_lines: int) -> Iterator[tuple[int, list[bytes]]]:
    """(first line number, raw lines) of the file, `chunk_lines` at a time."""
    batch: list[bytes] = []
    first = 1
    for number, line in file.lines():
        if not batch:
            first = number
        batch.append(line)
        if len(batch) >= chunk_lines:
            yield first, batch
            batch = []
    if batch:
        yield first, batch


async def import_file(
    importer: Importer,
    file: LineFile,
    state: LogState,
    tz: tzinfo,
    chunk_lines: int,
    on_chunk: Callable[[], None] | None = None,
) -> bool:
    """Import one archive; False when the import stopped at a bad line (default mode)."""
    settings = importer.settings
    for first, raw_lines in _raw_chunks(file, chunk_lines):
        now = importer.clock()
        reading = read_lines(raw_lines, tz, now, settings.max_future_seconds, settings.max_past_days)
        # The route looks up the stored visits of the call lines only (contact events, not member ones).
        calls = [event for _, event in reading.events if event.type in EVENT_TYPES]
        stored = await stored_for(importer.engine, calls) if calls else Stored()
        held = reading.cap_queues(importer.registry, importer.source, settings)
        reading.resolve_visits(stored, state.window, importer.registry.retired)
        offset = first - 1
        chunk = Chunk(
            file.name,
            first,
            first + len(raw_lines) - 1,
            events=[event for _, event in reading.events],
            lines=[number + offset for number, _ in reading.events],
            bad=[BadLine(file.name, issue.line + offset, issue.reason) for issue in reading.errors],
        )
        chunk.bad.sort(key=lambda bad: bad.line)
        state.ignored.update(reading.ignored)
        state.unknown.update(reading.unknown)
        if not await importer.take(chunk, admit=False, held=held):
            return False
        # The window holds what is stored, as the live one does: new lines and those stored before.
        for event in chunk.events:
            state.now = max(state.now, event.at)
            state.window.apply(event, state.now)
        if on_chunk is not None:
            on_chunk()
    return True
