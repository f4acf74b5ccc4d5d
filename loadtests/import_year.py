"""Issue 17's done-when at full size: a generated year (about 5 million events) imported twice gives the
same history as the same events stored as the live feed stores them, and the second import adds nothing.

    .venv/bin/python -m loadtests.import_year --database-url postgresql://postgres@127.0.0.1:5432/qp_year \
        [--events 5000000] [--year 2025] [--seed 8] [--work /tmp/qp-year]

Two databases on that server: `<name>_live` is loaded by loadtests/generate_year.py (each event received
0.3 s after it happened, as from a live feed, and the rollup the service writes for such events: each day
replayed through a fresh window, which tests/test_reports.py pins equal to what the running service
writes), and `<name>_import` gets the same events (same seed) from a JSON lines file through
`queuepulse import`, run twice. Then every interval_rollup row (what every history report and the
contact pattern read) is compared, and the events counted. The month-sized version that posts through
the API for real is tests/imports/test_month_import.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.db.embedded import asyncpg_dsn, create_database_if_missing, normalise_url  # noqa: E402
from app.db.migrate import run_migrations  # noqa: E402
from loadtests import generate_year  # noqa: E402
from loadtests.import_data import write_jsonl, year_events  # noqa: E402

SUMMARY = re.compile(
    r"([\d,]+) events read, ([\d,]+) stored, ([\d,]+) already stored, ([\d,]+) bad lines; ([\d.]+) s"
)


def _url(base: str, name: str) -> str:
    return make_url(normalise_url(base)).set(database=name).render_as_string(hide_password=False)


async def _fresh(url: str) -> None:
    admin = asyncpg_dsn(_url(url, "postgres"))
    name = make_url(url).database
    assert name is not None
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
    await create_database_if_missing(admin, name)


async def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return [tuple(record) for record in await connection.fetch(query)]
    finally:
        await connection.close()


def run_import(url: str, path: Path) -> dict[str, Any]:
    env = {**os.environ, "QUEUEPULSE_DATABASE_URL": url}
    started = time.perf_counter()
    argv = [sys.executable, "-m", "app.cli", "import", str(path), "--progress-every", "1000000"]
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    print(result.stdout.strip(), flush=True)
    if result.returncode != 0:
        raise SystemExit(f"import failed ({result.returncode}): {result.stderr[-2000:]}")
    found = SUMMARY.search(result.stdout)
    assert found is not None, result.stdout
    read, stored, already, bad = (int(group.replace(",", "")) for group in found.groups()[:4])
    return {
        "read": read,
        "stored": stored,
        "already": already,
        "bad": bad,
        "load_s": float(found[5]),
        "wall_s": wall,
    }


ROLLUP = "SELECT * FROM interval_rollup ORDER BY channel, queue, interval_start"


async def main_async(args: argparse.Namespace) -> int:
    name = make_url(normalise_url(args.database_url)).database or "qp_year"
    live, imported = _url(args.database_url, name + "_live"), _url(args.database_url, name + "_import")
    path = Path(args.work) / f"year-{args.year}.jsonl"

    started = time.perf_counter()
    count = write_jsonl(path, year_events(args.year, args.events, args.seed))
    print(
        f"wrote {count:,} events to {path} ({path.stat().st_size / 1e6:,.0f} MB) in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )

    if not args.skip_live:
        await _fresh(live)
        print("reference: generate_year.py into", make_url(live).database, flush=True)
        await generate_year.main_async(
            argparse.Namespace(
                database_url=live, year=args.year, events=args.events, seed=args.seed, rollup_only=False
            )
        )
    await _fresh(imported)
    run_migrations(imported)
    print("queuepulse import, first run", flush=True)
    first = run_import(imported, path)
    print("queuepulse import, second run", flush=True)
    second = run_import(imported, path)

    live_rollup = await _rows(live, ROLLUP)
    import_rollup = await _rows(imported, ROLLUP)
    counts = [await _rows(url, "SELECT count(*) FROM events") for url in (live, imported)]
    same = live_rollup == import_rollup
    differing = sum(1 for a, b in zip(live_rollup, import_rollup, strict=False) if a != b)
    print(f"events: reference {counts[0][0][0]:,}, imported {counts[1][0][0]:,}")
    print(
        f"interval_rollup rows: reference {len(live_rollup):,}, imported {len(import_rollup):,}; "
        f"identical: {same} ({differing} rows differ)"
    )
    print(
        f"first run: {first['stored']:,} stored in {first['load_s']:.1f} s "
        f"({first['read'] / first['load_s']:,.0f} events/s), {first['wall_s']:.0f} s with the rollup"
    )
    print(
        f"second run: {second['stored']:,} stored, {second['already']:,} already stored, "
        f"{second['load_s']:.1f} s ({second['read'] / second['load_s']:,.0f} events/s)"
    )
    ok = same and second["stored"] == 0 and first["stored"] == count and counts[0] == counts[1]
    print("RESULT:", "same reports, second run added nothing" if ok else "MISMATCH")
    if not args.keep:
        path.unlink()
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="a server to create the two databases on")
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--work", default="/tmp/qp-import-year", help="where the JSON lines file is written")
    parser.add_argument("--keep", action="store_true", help="keep the JSON lines file")
    parser.add_argument(
        "--skip-live", action="store_true", help="reuse the reference database of a run before"
    )
    args = parser.parse_args()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
