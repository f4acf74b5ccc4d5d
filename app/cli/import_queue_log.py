"""`queuepulse import-queue-log FILE...`: rotated Asterisk queue_log archives into the store, with the
events the live route gives the same lines (app/imports/queue_log.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.cli.importing import EXIT_UNUSABLE, add_common_arguments, run_import
from app.cli.progress import Progress

if TYPE_CHECKING:
    from app.imports.files import LineFile
    from app.imports.store import Importer

HELP = "import rotated Asterisk queue_log archives (plain or gzip, any order)"
# The live route's request size: each chunk is what one follower request would have been.
DEFAULT_CHUNK_LINES = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="queue_log files, e.g. /var/log/asterisk/queue_log*; read oldest first, in whatever order given",
    )
    parser.add_argument(
        "--time-zone", help="where dates without an offset in the files were written (default: the service's)"
    )
    add_common_arguments(parser, DEFAULT_CHUNK_LINES)


def cmd_import_queue_log(args: argparse.Namespace) -> int:
    from app.settings import Settings

    try:
        tz = ZoneInfo(args.time_zone or Settings().time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"--time-zone: not a known IANA time zone: {args.time_zone}", file=sys.stderr)
        return EXIT_UNUSABLE
    ignored_total: dict[str, int] = {}

    async def work(
        importer: Importer, files: list[LineFile], progress: Progress, tick: Callable[[], None]
    ) -> bool:
        from app.core.targets import TargetBook
        from app.core.window import Window
        from app.db.targets import load_targets
        from app.imports.queue_log import LogState, import_file, in_log_order
        from app.settings import target_book, window_config

        targets: TargetBook = target_book(importer.settings)
        await load_targets(importer.engine, targets)
        state = LogState(Window(window_config(importer.settings), targets))
        ordered = in_log_order(files, tz)
        if [file.name for file in ordered] != [file.name for file in files]:
            progress.note("reading oldest first: " + ", ".join(file.path.name for file in ordered))
        try:
            for file in ordered:
                if not await import_file(importer, file, state, tz, args.chunk_lines, tick):
                    return False
            return True
        finally:
            ignored_total.update(state.ignored)
            ignored_total.update({f"unknown {verb}": count for verb, count in state.unknown.items()})

    code = run_import(args, work, "import-queue-log")
    if ignored_total:
        print(
            "lines with nothing to store: "
            + ", ".join(f"{verb} {n:,}" for verb, n in sorted(ignored_total.items()))
        )
    return code
