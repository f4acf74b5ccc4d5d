"""Reading import files line by line, gzip or plain, with how far into the file the reading has got."""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

GZIP_MAGIC = b"\x1f\x8b"
# What line_blocks reads at a time: thousands of lines, a small part of a chunk's memory.
BLOCK_BYTES = 1 << 20


class ImportFileError(Exception):
    """A file cannot be read at all (missing, unreadable, no header): nothing of it was imported."""


@dataclass
class LineFile:
    """One file's lines as (line number from 1, bytes without the line end); `position` and `size` are in
    the file's own bytes (compressed ones for gzip), so progress can be told without reading ahead."""

    path: Path
    size: int = 0
    # Read to its end once: progress counts it whole.
    done: bool = False
    _raw: BinaryIO | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def position(self) -> int:
        """Bytes of the file read so far: all once read through, none before or between readings."""
        if self.done:
            return self.size
        if self._raw is None or self._raw.closed:
            return 0
        return self._raw.tell()

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """The file's bytes, decompressed when it starts with gzip's magic (whatever its name says)."""
        try:
            raw = self.path.open("rb")
        except OSError as error:
            raise ImportFileError(f"{self.path}: cannot be read: {error.strerror or error}") from error
        self._raw = raw
        try:
            self.size = self.path.stat().st_size
            gzipped = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            yield cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb")) if gzipped else raw
        finally:
            raw.close()

    def line_blocks(self) -> Iterator[tuple[int, list[bytes]]]:
        """The lines as `lines` gives them, in blocks of about BLOCK_BYTES: (the first one's number, the
        lines). The file is split into lines in C a block at a time, for JSON lines' hot path."""
        with self.open() as stream:
            number = 0
            try:
                while block := stream.readlines(BLOCK_BYTES):
                    if b"\r" in b"".join(block):
                        # A lone \r inside what readlines took as one line still ends a line.
                        block = [line for text in block for line in text.splitlines()]
                    else:
                        block = [line.rstrip(b"\n") for line in block]
                    yield number + 1, block
                    number += len(block)
            except (OSError, EOFError, gzip.BadGzipFile) as error:
                raise ImportFileError(f"{self.path}: unreadable after line {number}: {error}") from error
        self.done = True

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """Each line, numbered from 1; \\r\\n, \\n and a lone \\r end a line, as for the live routes."""
        with self.open() as stream:
            number = 0
            try:
                for chunk in stream:
                    # A lone \r inside what the file iterator took as one line still ends a line.
                    for line in chunk.splitlines() if b"\r" in chunk else (chunk.rstrip(b"\n"),):
                        number += 1
                        yield number, line
            except (OSError, EOFError, gzip.BadGzipFile) as error:
                raise ImportFileError(f"{self.path}: unreadable after line {number}: {error}") from error
        self.done = True
