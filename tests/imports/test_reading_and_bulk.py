"""The import's fast paths against their plain equivalents: JSON lines read a block at a time and validated
a slice at a time give what each line validated alone gives, and a chunk COPYed straight into `events`
stores what the staged way stores."""

from __future__ import annotations

import gzip
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.events import Read, read_events
from app.core.events import Event
from app.db import bulk
from app.db.connection import raw_connection
from app.db.rows import copy_records
from app.imports import events as import_events
from app.imports import files
from app.imports.events import ONE_OBJECT_MESSAGE, Chunk, event_chunks, issue_text
from app.imports.files import LineFile
from app.imports.store import Importer
from app.settings import Settings


def _event(number: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"e{number}",
        "type": "call.offered",
        "contact_id": f"c{number}",
        "queue": "borgerservice",
        "occurred_at": f"2026-03-10T09:{number % 60:02d}:00+01:00",
        **fields,
    }


def _line(number: int, **fields: Any) -> bytes:
    return json.dumps(_event(number, **fields)).encode()


# Good lines, blank ones, and lines only the one-line-one-object rule refuses: two objects on a line, an
# object over two lines, an array, lines that are no object at all.
LINES: list[bytes] = [
    _line(1),
    b"",
    b"   " + _line(2) + b"\t",
    _line(3)[:-1],
    b'"source": "x"}',
    _line(4) + b"," + _line(5),
    b"[" + _line(6) + b"]",
    b"{",
    b"}",
    b"{}",
    _line(7, type="call.finished"),
    b"not json",
    _line(8),
    b"   ",
    _line(9, occurred_at="yesterday"),
    _line(10, wait_seconds=3.5),
    _line(11),
]


def _expected(numbered: list[tuple[int, bytes]]) -> tuple[list[Event], list[int], list[tuple[int, str]]]:
    """Each non-blank line validated alone, as POST /v1/events validates a body of one event."""
    events, lines, bad = [], [], []
    for number, raw in numbered:
        line = raw.strip()
        if not line:
            continue
        read = read_events(line, 1)
        if not isinstance(read, Read):
            bad.append((number, "; ".join(issue_text(issue) for issue in read.issues)))
        elif read.batch:
            bad.append((number, f"{ONE_OBJECT_MESSAGE}, not an array"))
        else:
            events.append(read.events[0])
            lines.append(number)
    return events, lines, bad


def _write(path: Path, content: bytes) -> None:
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as out:
            out.write(content)
    else:
        path.write_bytes(content)


@pytest.mark.parametrize("name", ["lines.jsonl", "lines.jsonl.gz"])
@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("chunk_lines", [1, 3, 1000])
@pytest.mark.parametrize("block_bytes", [64, 1 << 20])
def test_json_chunks_give_what_each_line_alone_gives(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    ending: bytes,
    chunk_lines: int,
    block_bytes: int,
) -> None:
    monkeypatch.setattr(files, "BLOCK_BYTES", block_bytes)
    # Slices of two lines, so a slice with one bad line and one good line is met too.
    monkeypatch.setattr(import_events, "VALIDATE_LINES", 2)
    path = tmp_path / name
    _write(path, ending.join(LINES) + ending)
    numbered = list(enumerate(LINES, start=1))

    chunks = list(event_chunks(LineFile(path), "jsonl", chunk_lines))

    events, lines, bad = _expected(numbered)
    assert [event for chunk in chunks for event in chunk.events] == events
    assert [line for chunk in chunks for line in chunk.lines] == lines
    assert [(item.line, item.reason) for chunk in chunks for item in chunk.bad] == bad
    assert len(bad) == 11
    # Chunks follow each other line by line; each holds at most chunk_lines non-blank lines.
    assert chunks[0].first_line == 1
    assert all(after.first_line == before.last_line + 1 for before, after in itertools.pairwise(chunks))
    assert chunks[-1].last_line == len(LINES)
    assert all(len(chunk.events) + len(chunk.bad) <= chunk_lines for chunk in chunks)


def test_line_blocks_number_lines_as_lines_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "BLOCK_BYTES", 16)
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"a\r\nb\rc\n\nd\r\r\ne" + b"f" * 40 + b"\n\rg")
    blocks = list(LineFile(path).line_blocks())
    from_blocks = [(first + at, line) for first, block in blocks for at, line in enumerate(block)]
    assert from_blocks == list(LineFile(path).lines())
    assert len(blocks) > 1


def _records(events: list[Event]) -> list[tuple[Any, ...]]:
    return copy_records([(events, "import")], datetime(2026, 3, 10, 12, tzinfo=UTC))


def _events(numbers: range, queue: str = "borgerservice") -> list[Event]:
    at = datetime(2026, 3, 10, 9, tzinfo=UTC).timestamp()
    return [Event(f"e{n}", "call.offered", f"c{n}", queue, at + n + 0.25) for n in numbers]


async def test_direct_copy_falls_back_to_the_stage_for_a_chunk_with_stored_events(
    clean_db: AsyncEngine,
) -> None:
    async with raw_connection(clean_db) as driver:
        await bulk.prepare(driver)
        try:
            first = await bulk.store_chunk(driver, _records(_events(range(0, 5))), direct=True)
            assert first == bulk.ChunkStored(5, 0, None)
            # e3 and e4 are stored: COPY into events meets them, and the stage stores the rest.
            mixed = await bulk.store_chunk(driver, _records(_events(range(3, 8))), direct=True)
            assert isinstance(mixed, bulk.ChunkStored)
            assert (mixed.inserted, mixed.duplicates) == (3, 2)
            assert sorted(mixed.inserted_at or []) == [event.at for event in _events(range(5, 8))]
            # e7 stored with another queue: a clash, and nothing of the chunk (not e8 either) is stored.
            clashing = await bulk.store_chunk(driver, _records(_events(range(7, 9), "pas")), direct=True)
            assert clashing == bulk.ChunkClashed((bulk.StoredClash("e7", ("queue",)),))
            stored = await driver.fetch("SELECT event_id, occurred_at FROM events ORDER BY id")
            assert [row[0] for row in stored] == [f"e{n}" for n in range(8)]
            # The timestamps went in exactly (the import's own codec) and read back as the events' times.
            assert [row[1] for row in stored] == [
                datetime.fromtimestamp(event.at, UTC) for event in _events(range(8))
            ]
            assert await bulk.stored_clashes(driver, _records(_events(range(6, 9), "pas"))) == [
                bulk.StoredClash("e6", ("queue",)),
                bulk.StoredClash("e7", ("queue",)),
            ]
            await bulk.make_durable(driver)
        finally:
            await bulk.release(driver)
        # Released, the connection reads timestamptz with asyncpg's own codec again.
        assert await driver.fetchval("SELECT '2026-03-10 09:00:00+00'::timestamptz") == datetime(
            2026, 3, 10, 9, tzinfo=UTC
        )


def test_lines_that_make_as_many_objects_together_are_still_each_refused() -> None:
    """Two objects on one line and one object over the next two: three lines, three objects once joined,
    so only the rule that each line starts with { and ends with } tells them apart."""
    lines = [_line(1) + b"," + _line(2), _line(3)[:-1], b'"source": "x"}']
    chunk = import_events.parse_chunk("f.jsonl", list(enumerate(lines, start=1)), 1, 3)
    assert chunk.events == []
    assert [(item.line, item.reason) for item in chunk.bad] == _expected(list(enumerate(lines, start=1)))[2]
    assert [item.line for item in chunk.bad] == [1, 2, 3]


async def test_after_a_failed_direct_copy_the_stage_serves_longer_each_time(
    clean_db: AsyncEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried: list[bool] = []
    store_chunk = bulk.store_chunk

    async def recording(driver: Any, records: Any, direct: bool = False) -> Any:
        tried.append(direct)
        return await store_chunk(driver, records, direct)

    monkeypatch.setattr("app.imports.store.store_chunk", recording)
    async with Importer(
        clean_db, settings, clock=lambda: datetime(2026, 3, 10, 12, tzinfo=UTC).timestamp()
    ) as importer:
        for numbers in [range(0, 5), range(4, 9), range(9, 12), range(11, 14), range(14, 16), range(16, 18)]:
            chunk = Chunk("f.jsonl", numbers[0], numbers[-1], _events(numbers), list(numbers))
            assert await importer.take(chunk)
    # All new, e4 again (the stage), all new after one staged chunk; e11 again: two staged chunks now.
    assert tried == [True, True, False, True, False, False]
    assert (importer.stats.inserted, importer.stats.duplicates) == (18, 2)
