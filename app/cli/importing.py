"""What `queuepulse import` and `queuepulse import-queue-log` share: the options, the run on the
service's database (app/imports/store.py does the storing), the progress and the summary."""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.progress import DEFAULT_EVERY, Progress

if TYPE_CHECKING:
    from app.imports.files import LineFile
    from app.imports.store import Importer

# Exit codes: 0 all stored, 1 bad lines (stopped at one, or skipped), 2 a file or option unusable.
EXIT_BAD_LINES = 1
EXIT_UNUSABLE = 2
SOURCE_MAX = 64


def _source(text: str) -> str:
    if not 1 <= len(text) <= SOURCE_MAX:
        raise argparse.ArgumentTypeError(f"a source name has 1 to {SOURCE_MAX} characters")
    return text


def add_common_arguments(parser: argparse.ArgumentParser, default_chunk: int) -> None:
    from app.imports.store import DEFAULT_SOURCE

    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="import the good lines and list the bad ones (default: stop at the first chunk holding a bad "
        "line; nothing of that chunk is stored)",
    )
    parser.add_argument(
        "--source",
        type=_source,
        default=DEFAULT_SOURCE,
        help="stored as each event's ingested_by and each new queue's admitted_by "
        f"(default: {DEFAULT_SOURCE})",
    )
    parser.add_argument(
        "--chunk-lines",
        type=int,
        default=default_chunk,
        help=f"lines stored per transaction (default: {default_chunk:,})",
    )
    parser.add_argument(
        "--progress-every",
        type=int,
        default=DEFAULT_EVERY,
        help=f"when not on a terminal, a progress line per this many events (default: {DEFAULT_EVERY:,})",
    )


# (importer, files, progress, tick after each chunk) -> whether every file was read through.
Work = Callable[["Importer", "list[LineFile]", Progress, Callable[[], None]], Awaitable[bool]]


def run_import(args: argparse.Namespace, work: Work, what: str) -> int:
    """Run `work(importer, files, progress, tick)` on the service's database, rebuild the rollup of the
    days it touched, and print the summary; the exit code."""
    from app.cli.database import resolve_database
    from app.db.embedded import run_coroutine_blocking
    from app.imports.files import ImportFileError, LineFile
    from app.settings import Settings

    paths = [Path(path) for path in args.files]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        print(f"not a readable file: {', '.join(missing)}", file=sys.stderr)
        return EXIT_UNUSABLE
    files = [LineFile(path, size=path.stat().st_size) for path in paths]
    if args.chunk_lines < 1:
        print("--chunk-lines must be at least 1", file=sys.stderr)
        return EXIT_UNUSABLE
    settings = Settings()
    url = resolve_database(settings)
    progress = Progress(every=max(1, args.progress_every))
    # Millions of short-lived events and records, freed by reference counting: the cyclic collector's
    # young generation would otherwise run every 700 of them (measured: validating and mapping a chunk
    # 14.6 -> 12.1 us an event).
    gc.set_threshold(50_000, 20, 20)

    async def run() -> int:
        from sqlalchemy.ext.asyncio import create_async_engine

        from app.imports.store import Importer

        engine = create_async_engine(url)
        started = time.perf_counter()
        cpu_started = time.process_time()
        try:
            async with Importer(engine, settings, source=args.source, skip_bad=args.skip_bad) as importer:
                total = sum(file.size for file in files)

                def tick() -> None:
                    current = next((file for file in files if not file.done and file.position), None)
                    where = "" if current is None else current.path.name
                    progress.update(importer.stats.events, sum(file.position for file in files), total, where)

                try:
                    completed = await work(importer, files, progress, tick)
                except ImportFileError as error:
                    progress.close()
                    print(error, file=sys.stderr)
                    completed = False
                    failed_file = True
                else:
                    failed_file = False
                loaded = time.perf_counter() - started
                cpu = time.process_time() - cpu_started
                progress.close()
                stats = importer.stats
                if stats.days:
                    progress.note(f"rebuilding the rollup of {len(stats.days)} days")
                    rebuilt = 0

                    def on_day(_day: date, _count: int) -> None:
                        nonlocal rebuilt
                        rebuilt += 1
                        progress.update(rebuilt, rebuilt, len(stats.days), "days")

                    await importer.finish(on_day)
                    progress.close()
                total_seconds = time.perf_counter() - started
                return _summary(importer, what, (loaded, cpu, total_seconds), completed, failed_file)
        finally:
            await engine.dispose()

    return run_coroutine_blocking(run)


def _summary(
    importer: Importer, what: str, seconds: tuple[float, float, float], completed: bool, failed_file: bool
) -> int:
    """Print what was done; the exit code. `seconds`: storing (wall, CPU of this process), and in all."""
    from app.core.clock import local_date

    stats = importer.stats
    loaded, cpu, total = seconds
    rate = stats.events / loaded if loaded > 0 else 0.0
    print(
        f"{what}: {stats.events:,} events read, {stats.inserted:,} stored, {stats.duplicates:,} already "
        f"stored, {stats.bad_count:,} bad lines; {loaded:.1f} s ({rate:,.0f} events/s, {cpu:.1f} s CPU)"
    )
    if stats.days:
        first, last = min(stats.days), max(stats.days)
        print(f"rollup rebuilt for {stats.days_rebuilt} days ({first} to {last}); {total:.1f} s in all")
        from zoneinfo import ZoneInfo

        today = local_date(time.time(), ZoneInfo(importer.settings.time_zone))
        if today in stats.days:
            print(
                "today's events are in the store: a running queuepulse shows them once it applies the rows "
                "other processes committed, or after its next start"
            )
    if stats.days_failed:
        first, last = min(stats.days_failed), max(stats.days_failed)
        print(
            f"the rollup of {len(stats.days_failed)} days was not rebuilt ({stats.last_error}); the events "
            f"are stored: run `queuepulse rebuild-rollups --from {first} --to {last}`",
            file=sys.stderr,
        )
    for bad in stats.bad:
        print(str(bad), file=sys.stderr)
    if stats.bad_count > len(stats.bad):
        print(f"... and {stats.bad_count - len(stats.bad):,} more bad lines", file=sys.stderr)
    stopped = stats.stopped
    if stopped is not None:
        through = stats.stored_through
        before = "nothing before it" if through is None else f"everything through {through[0]}:{through[1]}"
        print(
            f"stopped at {stopped.bad[0] if stopped.bad else stopped.path}: nothing of lines "
            f"{stopped.first_line}-{stopped.last_line} of {stopped.path} (or after) was stored, {before} "
            "was. Fix the line and run the same command again (what is stored is skipped), or pass "
            "--skip-bad to import the rest.",
            file=sys.stderr,
        )
        return EXIT_BAD_LINES
    if failed_file or stats.days_failed:
        return EXIT_UNUSABLE
    if stats.bad_count:
        return EXIT_BAD_LINES
    return 0 if completed else EXIT_BAD_LINES
