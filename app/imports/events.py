"""Our event format from files: JSON lines (one event object a line) or CSV (a header row naming the
fields), read in chunks and validated by the very code POST /v1/events uses (app/api/events.py
read_events, app/api/schemas.py): no rule is restated here.

A chunk's lines are validated together, as one batch body, which is what makes the import fast; when the
batch is refused, the chunk's lines go again one by one so each refusal is told with its line.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
from collections.abc import AsyncGenerator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from app.api.events import Read, read_events
from app.api.schemas import EVENT_JSON_SCHEMA, ValidationIssue
from app.core.events import Event
from app.imports.files import ImportFileError, LineFile

Format = Literal["jsonl", "csv"]
FIELDS: tuple[str, ...] = tuple(EVENT_JSON_SCHEMA["properties"])
REQUIRED: tuple[str, ...] = tuple(EVENT_JSON_SCHEMA.get("required", ()))
ONE_OBJECT_MESSAGE = "a line holds one event object"
# Lines validated as one batch body: the size of the API's own batches, which validates a little faster
# per event than one body of a whole chunk (measured: 9.2 against 11.9 us an event on a busy machine).
VALIDATE_LINES = 1000


@dataclass(frozen=True, slots=True)
class BadLine:
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class Chunk:
    """Consecutive lines of one file: the events they hold, each with its line, and the lines refused."""

    path: str
    first_line: int
    last_line: int
    events: list[Event] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)

    def refuse(self, line: int, reason: str) -> None:
        self.bad.append(BadLine(self.path, line, reason))


def issue_text(issue: ValidationIssue) -> str:
    return f"{issue.field}: {issue.message}" if issue.field else issue.message


def detect_format(file: LineFile) -> Format:
    """CSV for a name ending .csv or .csv.gz, else JSON lines."""
    name = file.path.name.lower().removesuffix(".gz")
    return "csv" if name.endswith(".csv") else "jsonl"


def _parse_one(chunk: Chunk, number: int, line: bytes) -> None:
    read = read_events(line, 1)
    if not isinstance(read, Read):
        chunk.refuse(number, "; ".join(issue_text(issue) for issue in read.issues))
    elif read.batch:
        chunk.refuse(number, f"{ONE_OBJECT_MESSAGE}, not an array")
    else:
        chunk.events.append(read.events[0])
        chunk.lines.append(number)


def parse_chunk(path: str, given: list[Numbered], first_line: int, last_line: int) -> Chunk:
    """Validate a chunk of lines (blank ones already left out) into events."""
    chunk = Chunk(path, first_line, last_line)
    numbers: list[int] = []
    lines: list[bytes] = []
    for number, line in given:
        if isinstance(line, str):
            chunk.refuse(number, line)
        else:
            numbers.append(number)
            lines.append(line)
    _parse_lines(chunk, numbers, lines)
    return chunk


def _parse_lines(chunk: Chunk, numbers: list[int], lines: list[bytes]) -> None:
    for start in range(0, len(lines), VALIDATE_LINES):
        end = start + VALIDATE_LINES
        _parse_slice(chunk, numbers[start:end], lines[start:end])
    chunk.bad.sort(key=lambda bad: bad.line)


def _parse_slice(chunk: Chunk, numbers: list[int], lines: list[bytes]) -> None:
    # Each line alone must be one object; joined, they are one batch body for a single validation.
    joined = b",\n".join(lines)
    # Every line starts with { and ends with }: no line holds a line end, so each one in `joined` is a
    # boundary between two lines, and each boundary must read "},\n{" (two counts in C, not a test a line).
    if joined[:1] == b"{" and joined[-1:] == b"}" and joined.count(b"\n") == joined.count(b"},\n{"):
        read = read_events(b"[" + joined + b"]", len(lines))
        # A line such as `{...},{...}` holds two objects: then the count tells, and the lines go alone.
        if isinstance(read, Read) and len(read.events) == len(lines):
            chunk.events.extend(read.events)
            chunk.lines.extend(numbers)
            return
    for number, line in zip(numbers, lines, strict=True):
        _parse_one(chunk, number, line)


# A line's bytes, or (as text) why it was refused before validation.
Numbered = tuple[int, bytes | str]


def csv_lines(file: LineFile) -> Iterator[Numbered]:
    """Each CSV record as a JSON object line, numbered by the record's first line; an empty cell is a
    field not given. The values stay text: the schema reads numbers and true/false from text as it does
    in JSON, so the rules are the same ones."""
    with file.open() as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
        reader = csv.reader(text)
        try:
            header = next(reader, None)
        except (UnicodeDecodeError, csv.Error) as error:
            raise ImportFileError(f"{file.path}:1: the header cannot be read: {error}") from error
        if header is None:
            raise ImportFileError(f"{file.path}: empty, no header row")
        names = [name.strip() for name in header]
        unknown = [name for name in names if name not in FIELDS]
        missing = [name for name in REQUIRED if name not in names]
        if unknown or missing or len(set(names)) != len(names):
            problems = [f"unknown field {name!r}" for name in unknown]
            problems += [f"required field {name!r} missing" for name in missing]
            if len(set(names)) != len(names):
                problems.append("a field named twice")
            raise ImportFileError(
                f"{file.path}:1: header: {'; '.join(problems)} (fields: {', '.join(FIELDS)})"
            )
        line = reader.line_num
        while True:
            start = line + 1
            try:
                row = next(reader, None)
            except (UnicodeDecodeError, csv.Error) as error:
                raise ImportFileError(f"{file.path}:{start}: cannot be read as CSV: {error}") from error
            if row is None:
                return
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                yield start, f"{len(row)} cells, the header names {len(names)} fields"
                continue
            record = {name: cell for name, cell in zip(names, row, strict=True) if cell != ""}
            yield start, json.dumps(record, ensure_ascii=False).encode()


def event_chunks(file: LineFile, file_format: Format, chunk_lines: int) -> Iterator[Chunk]:
    """The file in chunks of at most `chunk_lines` records."""
    if file_format == "csv":
        yield from _chunked(file.name, csv_lines(file), chunk_lines)
    else:
        yield from _json_chunks(file, chunk_lines)


def _json_chunks(file: LineFile, chunk_lines: int) -> Iterator[Chunk]:
    """JSON lines in chunks: the non-blank lines, stripped, numbered as LineFile.lines numbers them, taken
    from the file a block of lines at a time."""
    path = file.name
    numbers: list[int] = []
    lines: list[bytes] = []
    first = 1
    for block_first, block in file.line_blocks():
        stripped = [line.strip() for line in block]
        block_numbers = range(block_first, block_first + len(block))
        if b"" in stripped:
            kept = [(number, line) for number, line in zip(block_numbers, stripped, strict=True) if line]
            numbers += [number for number, _ in kept]
            lines += [line for _, line in kept]
        else:
            numbers += block_numbers
            lines += stripped
        start = 0
        while len(lines) - start >= chunk_lines:
            end = start + chunk_lines
            yield _json_chunk(path, numbers[start:end], lines[start:end], first, numbers[end - 1])
            first = numbers[end - 1] + 1
            start = end
        del numbers[:start], lines[:start]
    if lines:
        yield _json_chunk(path, numbers, lines, first, numbers[-1])


def _json_chunk(path: str, numbers: list[int], lines: list[bytes], first_line: int, last_line: int) -> Chunk:
    chunk = Chunk(path, first_line, last_line)
    _parse_lines(chunk, numbers, lines)
    return chunk


def _chunked(path: str, numbered: Iterable[Numbered], chunk_lines: int) -> Iterator[Chunk]:
    batch: list[Numbered] = []
    first = 1
    for number, line in numbered:
        batch.append((number, line))
        if len(batch) >= chunk_lines:
            yield parse_chunk(path, batch, first, number)
            first = number + 1
            batch = []
    if batch:
        yield parse_chunk(path, batch, first, batch[-1][0])


async def read_ahead(chunks: Iterator[Chunk]) -> AsyncGenerator[Chunk, None]:
    """The chunks, each next one read and validated in a worker thread while the caller stores the one
    before: parsing (Python) then overlaps the insert (PostgreSQL's process), on two cores about halving
    the time. One chunk ahead at most, so memory stays that of two chunks."""
    done = object()
    pending = asyncio.ensure_future(asyncio.to_thread(next, chunks, done))
    try:
        while True:
            chunk = await pending
            if chunk is done:
                return
            assert isinstance(chunk, Chunk)
            pending = asyncio.ensure_future(asyncio.to_thread(next, chunks, done))
            yield chunk
    finally:
        # The caller stopped early (a bad chunk): let the read in flight end before the file is closed.
        with contextlib.suppress(Exception):
            await pending
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
