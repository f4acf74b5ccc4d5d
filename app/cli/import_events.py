"""`queuepulse import FILE...`: files of events in our format (JSON lines or CSV) into the store."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.cli.importing import add_common_arguments, run_import
from app.cli.progress import Progress

if TYPE_CHECKING:
    from app.imports.files import LineFile
    from app.imports.store import Importer

HELP = "import past events from JSON lines or CSV files (plain or gzip), e.g. last year's"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from app.imports.store import DEFAULT_CHUNK_LINES

    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="one event object a line (JSON lines), or CSV with a header row naming the fields; "
        "gzip is read as such",
    )
    parser.add_argument(
        "--format",
        choices=("jsonl", "csv"),
        help="the files' format (default: csv for names ending .csv or .csv.gz, else JSON lines)",
    )
    add_common_arguments(parser, DEFAULT_CHUNK_LINES)


def cmd_import(args: argparse.Namespace) -> int:
    async def work(
        importer: Importer, files: list[LineFile], progress: Progress, tick: Callable[[], None]
    ) -> bool:
        from app.imports.events import detect_format, event_chunks, read_ahead

        for file in files:
            chunks = event_chunks(file, args.format or detect_format(file), args.chunk_lines)
            async with contextlib.aclosing(read_ahead(chunks)) as reading:
                async for chunk in reading:
                    if not await importer.take(chunk):
                        return False
                    tick()
        return True

    return run_import(args, work, "import")
