"""Benchmark of `queuepulse import` (issue 17): JSON lines into an embedded PostgreSQL, as an operator runs
it. `make bench` runs it (loadtests/bench.py); alone:

    .venv/bin/python -m loadtests.import_bench [--events 1000000]

A generated year (loadtests/generate_year.py's centre, as JSON lines) goes into a fresh embedded
PostgreSQL in a temporary directory: once (every event new), once more (every event a duplicate), and a
file a tenth the size into a second database of the same server, for the memory figure. The rate is the
command's own (events read / seconds from the first line to the last chunk committed, before the rollup
rebuild); the peak RSS is the command's (wait4), and the CPU seconds of the command and of PostgreSQL's
processes are measured beside the wall clock, so a figure taken on a busy machine can be told as such.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadtests.import_data import write_jsonl, year_events  # noqa: E402

TARGET_EVENTS_PER_S = 50_000.0
YEAR, SEED = 2025, 8
SUMMARY = re.compile(
    r"([\d,]+) events read, ([\d,]+) stored, ([\d,]+) already stored, ([\d,]+) bad lines; ([\d.]+) s "
    r"\([\d,]+ events/s, ([\d.]+) s CPU\)"
)
Command = Callable[[list[str], dict[str, str] | None], None]


def _postgres_cpu(data_dir: Path) -> float:
    """CPU seconds used so far by the embedded server's processes (the postmaster and its backends). A
    backend that has ended (the import's, once the command exits) counts in the postmaster's children_
    times, which the kernel adds when the postmaster reaps it: so a figure read after the command still
    holds its backend."""
    import psutil

    try:
        pid = int((data_dir / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])
        postmaster = psutil.Process(pid)
        reaped = postmaster.cpu_times()
        total: float = reaped.children_user + reaped.children_system
        for process in [postmaster, *postmaster.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total
    except (OSError, ValueError, psutil.Error):
        return float("nan")


def _run(argv: list[str], env: dict[str, str], data_dir: Path) -> dict[str, Any]:
    """Run one import; its figures. PostgreSQL's CPU is read when the command says the storing is done
    (its "rebuilding the rollup" line), so it covers the storing alone, as the command's own CPU does."""
    postgres_before = _postgres_cpu(data_dir)
    postgres_stored = float("nan")
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stderr is not None
    err = []
    for line in process.stderr:
        if line.startswith("rebuilding the rollup"):
            postgres_stored = _postgres_cpu(data_dir)
        err.append(line)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    out = process.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"import failed: {''.join(err)[-2000:]}")
    found = SUMMARY.search(out)
    if found is None:
        raise RuntimeError(f"no summary in the import's output: {out[-2000:]}")
    read, stored, already, bad = (int(group.replace(",", "")) for group in found.groups()[:4])
    load = float(found[5])
    if postgres_stored != postgres_stored:
        # Nothing new, so no rebuild: the storing ran to the end. The backend has ended with the command;
        # a moment for the postmaster to reap it, so its CPU is counted (once) in the postmaster's.
        time.sleep(0.5)
        postgres_stored = _postgres_cpu(data_dir)
    # The same once the command's backends are reaped: the difference is PostgreSQL's share of the rebuild.
    time.sleep(0.5)
    postgres_after = _postgres_cpu(data_dir)
    return {
        "read": read,
        "stored": stored,
        "already": already,
        "bad": bad,
        "load_s": load,
        "events_per_s": read / load,
        "load_cpu_s": float(found[6]),
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "postgres_cpu_s": postgres_stored - postgres_before,
        "rollup_postgres_cpu_s": postgres_after - postgres_stored,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def measure(work: Path, events: int, command: Command | None = None) -> dict[str, Any]:
    """Generate the files, run the imports on an embedded server in `work`, return the figures."""
    from sqlalchemy.engine import make_url

    from app.db.embedded import asyncpg_dsn, create_database_if_missing, start_embedded

    big, small = work / "import.jsonl", work / "import-small.jsonl"
    started = time.perf_counter()
    count = write_jsonl(big, year_events(YEAR, events, SEED))
    small_count = write_jsonl(small, year_events(YEAR, max(1, events // 10), SEED))
    generated = time.perf_counter() - started
    data_dir = work / "import-data"
    url = start_embedded(data_dir)
    try:
        small_url = make_url(url).set(database="queuepulse_small").render_as_string(hide_password=False)
        asyncio.run(create_database_if_missing(asyncpg_dsn(url), "queuepulse_small"))
        env = {key: value for key, value in os.environ.items() if key != "QUEUEPULSE_DATABASE_URL"}
        env["QUEUEPULSE_DATA_DIR"] = str(data_dir)
        argv = [sys.executable, "-m", "app.cli", "import", str(big), "--progress-every", "1000000"]
        load_before = os.getloadavg()
        first = _run(argv, env, data_dir)
        second = _run(argv, env, data_dir)
        small_run = _run(
            [*argv[:4], str(small), *argv[5:]], {**env, "QUEUEPULSE_DATABASE_URL": small_url}, data_dir
        )
    finally:
        from loadtests.bench import stop_embedded_postgres

        stop_embedded_postgres(data_dir)
    if command is not None:
        command(
            [part.replace(str(work), "$WORK") for part in argv], {"QUEUEPULSE_DATA_DIR": "$WORK/import-data"}
        )
    return {
        "events": count,
        "small_events": small_count,
        "bytes": big.stat().st_size,
        "generate_s": generated,
        "first": first,
        "second": second,
        "small": small_run,
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }


def render(result: dict[str, Any]) -> list[str]:
    first, second, small = result["first"], result["second"], result["small"]
    # Pipelined, the import's Python and PostgreSQL's work overlap: on an idle machine with a core each,
    # the rate is bound by the larger of the two CPU times.
    bound = result["events"] / max(first["load_cpu_s"], first["postgres_cpu_s"])
    load = ", ".join(f"{value:.1f}" for value in result["load_before"])
    rows = []
    for name, run in (
        ("first (all new)", first),
        ("second (all stored)", second),
        (f"a tenth ({result['small_events']:,} events)", small),
    ):
        rows.append(
            f"| {name} | {run['events_per_s']:,.0f} | {run['stored']:,} | {run['already']:,} | "
            f"{run['load_s']:.1f} | {run['wall_s']:.1f} | "
            f"{run['load_cpu_s']:.1f} / {run['postgres_cpu_s']:.1f} | {run['peak_rss_mb']:.0f} MB |"
        )
    return [
        "## History import (`queuepulse import`, issue 17)",
        "",
        f"`loadtests/import_bench.py`: {result['events']:,} events of the generated year "
        f"({result['bytes'] / 1e6:,.0f} MB of JSON lines) into a fresh embedded PostgreSQL; load average "
        f"before: {load}.",
        "",
        "| run | events/s | stored | already stored | storing s | wall s (with rollup) "
        "| CPU s storing: import / PostgreSQL | peak RSS |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"- Rate of the first run: {first['events_per_s']:,.0f} events/s "
        f"(target {TARGET_EVENTS_PER_S:,.0f}). CPU-bound estimate for an otherwise idle machine (events / "
        f"the larger of the two CPU times, which overlap): {bound:,.0f} events/s.",
        f"- With the rollup rebuild after the storing (the whole command, wall clock): "
        f"{first['read'] / first['wall_s']:,.0f} events/s; the rate above is the storing's alone.",
        f"- The rollup rebuild of the first run: {first['wall_s'] - first['load_s']:.1f} s wall (the whole "
        f"command less the storing); CPU s of the import over the whole command {first['cpu_s']:.1f} "
        f"(storing {first['load_cpu_s']:.1f}), of PostgreSQL over the rebuild "
        f"{first['rollup_postgres_cpu_s']:.1f}.",
        f"- Memory: peak RSS {first['peak_rss_mb']:.0f} MB for the whole file, "
        f"{small['peak_rss_mb']:.0f} MB for a tenth of it.",
        "",
    ]


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    # Short and under /tmp: the embedded server's unix socket path must fit in about 107 bytes.
    work = Path(tempfile.mkdtemp(prefix="qpi-", dir="/tmp"))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    with workspace() as work:
        result = measure(work, args.events)
    print("\n".join(render(result)))
    return 0 if result["first"]["events_per_s"] >= TARGET_EVENTS_PER_S else 1


if __name__ == "__main__":
    sys.exit(main())
