"""`make bench`: run the benchmark set against a server of its own and write loadtests/RESULTS.md.

The server is `queuepulse run` (uvicorn, one worker, uvloop + httptools) on the embedded PostgreSQL in a
temporary data directory, with the /bench ceiling endpoints mounted (QUEUEPULSE_BENCH_ENDPOINTS=true).
wrk drives the throughput scenarios; every scenario runs --runs times (default 3) and is reported as the
median. Ceilings run in the same rounds, interleaved with the real paths, so ratios hold on a busy machine.

    python -m loadtests.bench [--runs 3] [--seconds 10] [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import csv
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "loadtests"
WRK = HERE / "wrk"
BIN = Path(sys.executable).parent
TOKEN = "bench-ingest-token"
TIME_ZONE = "Europe/Copenhagen"
PHONE_THRESHOLD, VISIT_THRESHOLD, SHORT_ABANDON, MAX_WAIT = 60.0, 300.0, 5.0, 4 * 3600.0
MB = 1024 * 1024

# name -> (target, comparison, unit); each is checked against the measured figure of the same name.
TARGETS: dict[str, tuple[float, str, str]] = {
    "single_ratio": (0.6, ">=", "x ceiling"),
    "single_p99_ms": (100.0, "<", "ms"),
    "batch_events_per_s": (40_000.0, ">=", "events/s"),
    "kpis_ratio": (0.8, ">=", "x ceiling"),
    "kpis_p99_ms": (50.0, "<", "ms"),
    "snapshot_ratio": (1.5, "<=", "x"),
    "rss_growth_mb": (150.0, "<=", "MB"),
    "ready_seconds": (15.0, "<", "s"),
    "baseline_speedup": (50.0, ">=", "x"),
    "import_events_per_s": (50_000.0, ">=", "events/s"),
    "replica_lag_p99_ms": (250.0, "<", "ms"),
    "join_seconds": (3.0, "<", "s"),
    "staff_cost_ratio": (1.5, "<=", "x fd60f74"),
}
TARGET_LABELS = {
    "single_ratio": "durable single-event ingest / no-persistence ceiling (64 connections)",
    "single_p99_ms": "durable single-event ingest p99",
    "batch_events_per_s": "batch ingest (100 events per request)",
    "kpis_ratio": "GET /v1/kpis under ingest load / precomputed-bytes ceiling under the same load",
    "kpis_p99_ms": "GET /v1/kpis p99 under ingest load",
    "snapshot_ratio": "core snapshot (`today`) at 1,000,000 events / at 10,000",
    "rss_growth_mb": "RSS after 1,000,000 events of one day minus idle RSS",
    "ready_seconds": "start-up replay of 1,000,000 of today's events to ready",
    "baseline_speedup": "baseline SQL per poll / queuepulse GET /v1/kpis?window=today, at 1,000,000 events",
    "import_events_per_s": "`queuepulse import` of JSON lines into the embedded PostgreSQL (first run)",
    "replica_lag_p99_ms": "convergence lag p99, 3 instances, 1,000 events/s (2xx on one to shown on another)",
    "join_seconds": "a second instance joining on the 1,000,000-event day (checkpoint + log) to ready",
    "staff_cost_ratio": "core apply and snapshot, 50 agents in 10 queues / the code before agents (worst)",
}


@dataclass
class Report:
    started: datetime
    commands: list[str] = field(default_factory=list)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: collections.defaultdict(list))
    figures: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def command(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in (env or {}).items())
        line = " ".join(shlex.quote(str(part)) for part in argv)
        text = f"{prefix} {line}".strip().replace(str(ROOT) + "/", "")
        if text not in self.commands:
            self.commands.append(text)


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """`queuepulse run` in a subprocess, on the embedded database under data_dir."""

    def __init__(self, data_dir: Path, port: int, report: Report) -> None:
        self.data_dir = data_dir
        self.port = port
        self.report = report
        self.process: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}"
        # Only our settings: a developer's QUEUEPULSE_* variables or .env must not change the benchmark.
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("QUEUEPULSE_")}
        self.settings = {
            "QUEUEPULSE_DATA_DIR": str(data_dir),
            "QUEUEPULSE_BENCH_ENDPOINTS": "true",
            "QUEUEPULSE_INGEST_TOKEN": TOKEN,
            "QUEUEPULSE_TIME_ZONE": TIME_ZONE,
        }
        self.env.update(self.settings)

    def start(self) -> float:
        """Start the server; returns the seconds from spawning it until /readyz answers 200."""
        argv = [str(BIN / "queuepulse"), "run", "--port", str(self.port)]
        self.report.command(argv, self.settings)
        output = (self.data_dir / "server.log").open("ab")
        started = time.perf_counter()
        # The data directory as working directory: no stray .env is read.
        self.process = subprocess.Popen(argv, env=self.env, cwd=self.data_dir, stdout=output, stderr=output)
        deadline = started + 300
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {output.name}")
            with contextlib.suppress(OSError):
                if self.get("/readyz")[0] == 200:
                    return time.perf_counter() - started
            time.sleep(0.05)
        raise TimeoutError("server never became ready")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def rss(self) -> int:
        import psutil

        assert self.process is not None
        rss: int = psutil.Process(self.process.pid).memory_info().rss
        return rss

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def stop_embedded_postgres(data_dir: Path) -> None:
    """The embedded server outlives `queuepulse run` by design; the benchmark's must not outlive us."""
    pgdata = data_dir / "pg"
    if not (pgdata / "postmaster.pid").exists():
        return
    from pgserver._commands import POSTGRES_BIN_PATH

    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
        user="pgserver" if os.geteuid() == 0 else None,
    )


def wrk(
    report: Report,
    url: str,
    *,
    connections: int,
    seconds: float,
    threads: int = 2,
    script: str = "get.lua",
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
    argv += ["-s", str(WRK / script), url]
    shown = {key: value for key, value in (env or {}).items() if key != "BENCH_RUN_ID"}
    report.command(argv, shown)
    result = subprocess.run(
        argv, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=seconds + 60
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


class Runs:
    """Unique ids for ingest runs, so no run's events are duplicates of another's."""

    def __init__(self) -> None:
        self.count = 0
        self.stamp = f"{int(time.time())}"

    def env(self, batch: int = 0) -> dict[str, str]:
        self.count += 1
        env = {"BENCH_RUN_ID": f"b{self.stamp}r{self.count}", "QUEUEPULSE_INGEST_TOKEN": TOKEN}
        if batch:
            env["BATCH_SIZE"] = str(batch)
        return env


def warm_up(server: Server, report: Report, runs: Runs) -> None:
    """The same light traffic before every RSS reading, so lazily built state is there in both."""
    for path in ("/v1/kpis", "/v1/kpis?window=today", "/bench/bytes"):
        wrk(Report(report.started), server.base + path, connections=2, seconds=1, threads=1)
    for path in ("/bench/parse", "/v1/events"):
        wrk(
            Report(report.started),
            server.base + path,
            connections=2,
            seconds=1,
            threads=1,
            script="ingest.lua",
            env=runs.env(),
        )


def under_load(
    report: Report,
    server: Server,
    runs: Runs,
    path: str,
    seconds: float,
    ingest_connections: int,
    connections: int = 50,
) -> dict[str, Any]:
    """GET path while single-event ingest runs with ingest_connections beside it."""
    argv = [
        "wrk",
        "-t1",
        f"-c{ingest_connections}",
        f"-d{seconds + 2:g}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK / "ingest.lua"),
        server.base + "/v1/events",
    ]
    env = runs.env()
    report.command(argv, {"QUEUEPULSE_INGEST_TOKEN": TOKEN})
    background = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(1)
        result = wrk(report, server.base + path, connections=connections, seconds=seconds, threads=1)
    finally:
        out, _ = background.communicate(timeout=seconds + 60)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    result["ingest_rps"] = json.loads(lines[-1])["rps"] if lines else float("nan")
    return result


def throughput(report: Report, server: Server, runs: Runs, rounds: int, seconds: float) -> None:
    base = server.base
    for round_ in range(1, rounds + 1):
        log(f"throughput round {round_}/{rounds}")
        scenarios: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            (
                "parse_ceiling",
                lambda: wrk(
                    report,
                    base + "/bench/parse",
                    connections=64,
                    seconds=seconds,
                    script="ingest.lua",
                    env=runs.env(),
                ),
            ),
            (
                "single",
                lambda: wrk(
                    report,
                    base + "/v1/events",
                    connections=64,
                    seconds=seconds,
                    script="ingest.lua",
                    env=runs.env(),
                ),
            ),
            (
                "batch_parse_ceiling",
                lambda: wrk(
                    report,
                    base + "/bench/parse",
                    connections=16,
                    seconds=seconds,
                    script="ingest.lua",
                    env=runs.env(100),
                ),
            ),
            (
                "batch",
                lambda: wrk(
                    report,
                    base + "/v1/events",
                    connections=16,
                    seconds=seconds,
                    script="ingest.lua",
                    env=runs.env(100),
                ),
            ),
            ("bytes_ceiling_loaded", lambda: under_load(report, server, runs, "/bench/bytes", seconds, 64)),
            ("kpis_loaded", lambda: under_load(report, server, runs, "/v1/kpis", seconds, 64)),
            ("bytes_ceiling", lambda: wrk(report, base + "/bench/bytes", connections=50, seconds=seconds)),
            ("kpis", lambda: wrk(report, base + "/v1/kpis", connections=50, seconds=seconds)),
        ]
        for name, run in scenarios:
            result = run()
            report.runs[name].append(result)
            log(f"  {name}: {result['rps']:.0f} req/s, p99 {result['p99_ms']:.1f} ms")


def median(report: Report, name: str, key: str) -> float:
    return float(statistics.median(run[key] for run in report.runs[name]))


def today_span(now: float) -> tuple[float, float]:
    tz = ZoneInfo(TIME_ZONE)
    local = datetime.fromtimestamp(now, tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    return midnight, now


async def seed(url: str, count: int, start: float, end: float) -> float:
    """Empty the events table and COPY `count` events of today into it; returns the seconds taken."""
    import asyncpg

    from app.core.events import Event
    from app.db.embedded import asyncpg_dsn
    from app.db.rows import COPY_COLUMNS, copy_record
    from loadtests.dataset import day_of_events

    started = time.perf_counter()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("TRUNCATE events RESTART IDENTITY")
        chunk: list[tuple[Any, ...]] = []
        for row in day_of_events(count, start, end):
            event = Event(
                row.event_id,
                row.type,
                row.contact_id,
                row.queue,
                row.at,
                agent=row.agent,
                desk=row.desk,
                ticket_number=row.ticket_number,
                wait_seconds=row.wait_seconds,
                resolved=row.resolved,
                to_queue=row.to_queue,
                source=row.source,
            )
            chunk.append(copy_record(event, datetime.fromtimestamp(row.received_at, UTC)))
            if len(chunk) == 50_000:
                await conn.copy_records_to_table("events", records=chunk, columns=COPY_COLUMNS)
                chunk = []
        if chunk:
            await conn.copy_records_to_table("events", records=chunk, columns=COPY_COLUMNS)
        await conn.execute("ANALYZE events")
        stored: int = await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()
    if stored != count:
        raise RuntimeError(f"seeded {stored} events, wanted {count}")
    return time.perf_counter() - started


async def run_baseline(url: str, runs: int) -> tuple[list[float], int]:
    """Seconds per execution of loadtests/baseline.sql, and how many rows it answered."""
    import asyncpg

    from app.db.embedded import asyncpg_dsn

    query = (HERE / "baseline.sql").read_text()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        times = []
        rows: list[Any] = []
        for _ in range(runs):
            now = time.time()
            midnight, _ = today_span(now)
            started = time.perf_counter()
            rows = await conn.fetch(
                query,
                datetime.fromtimestamp(midnight, UTC),
                datetime.fromtimestamp(now, UTC),
                PHONE_THRESHOLD,
                VISIT_THRESHOLD,
                SHORT_ABANDON,
                MAX_WAIT,
            )
            times.append(time.perf_counter() - started)
    finally:
        await conn.close()
    return times, len(rows)


def profile(report: Report, server: Server, runs: Runs, seconds: float) -> None:
    """py-spy samples of the server's event-loop thread under each hot path's load."""
    py_spy = BIN / "py-spy"
    if not py_spy.exists():
        report.notes.append("py-spy is not installed (pip install -e '.[bench]'): no profile this run.")
        return
    cases: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        (
            "POST /v1/events, single event, 64 connections",
            lambda: wrk(
                report,
                server.base + "/v1/events",
                connections=64,
                seconds=seconds + 2,
                script="ingest.lua",
                env=runs.env(),
            ),
        ),
        (
            "POST /v1/events, 100 events per request, 16 connections",
            lambda: wrk(
                report,
                server.base + "/v1/events",
                connections=16,
                seconds=seconds + 2,
                script="ingest.lua",
                env=runs.env(100),
            ),
        ),
        (
            "GET /v1/kpis, 50 connections, under single-event ingest",
            lambda: under_load(report, server, runs, "/v1/kpis", seconds + 2, 64),
        ),
    ]
    profiles: list[tuple[str, list[tuple[str, float]], list[tuple[str, float]]]] = []
    for title, load in cases:
        out = server.data_dir / f"profile-{len(profiles)}.txt"
        # Blocking samples (the process is paused for each) are exact; 50 Hz keeps the slowdown small.
        argv = [
            str(py_spy),
            "record",
            "-r",
            "50",
            "-d",
            f"{seconds:g}",
            "-f",
            "raw",
            "-o",
            str(out),
            "-p",
            str(server.pid),
        ]
        report.command([str(part) if part != str(server.pid) else "$SERVER_PID" for part in argv])
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        load()
        _, error = spy.communicate(timeout=seconds + 60)
        if spy.returncode != 0 or not out.exists():
            report.notes.append(f"py-spy failed ({spy.returncode}): {error.strip()[-300:]}")
            return
        profiles.append((title, *hot_spots(out)))
    report.extra["profiles"] = profiles


def hot_spots(path: Path, top: int = 12) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Self and inclusive shares of the event-loop thread's samples, by function."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "cmd_run (app/cli/run.py" not in stack:
            continue  # not the event-loop thread
        samples = int(count)
        total += samples
        frames = [frame.rsplit(":", 1)[0] + ")" if ":" in frame else frame for frame in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            if "(app/" in frame:
                inclusive[frame] += samples
    total = max(total, 1)
    return (
        [(frame, 100 * samples / total) for frame, samples in own.most_common(top)],
        [
            (frame, 100 * samples / total)
            for frame, samples in inclusive.most_common(top)
            if "cmd_run" not in frame and "app/cli/" not in frame
        ],
    )


def locust_mix(report: Report, server: Server, runs: int, seconds: int) -> None:
    locust = BIN / "locust"
    if not locust.exists():
        report.notes.append("locust is not installed (pip install -e '.[bench]'): no realistic mix this run.")
        return
    for run in range(runs):
        prefix = server.data_dir / f"locust-{run}"
        argv = [
            str(locust),
            "-f",
            str(HERE / "locustfile.py"),
            "--headless",
            "-u",
            "54",
            "-r",
            "54",
            "-t",
            f"{seconds}s",
            "--host",
            server.base,
            "--csv",
            str(prefix),
            "--only-summary",
        ]
        report.command(
            [part if not part.startswith(str(prefix)) else "locust" for part in argv],
            {"QUEUEPULSE_INGEST_TOKEN": TOKEN},
        )
        subprocess.run(
            argv,
            env={**os.environ, "QUEUEPULSE_INGEST_TOKEN": TOKEN},
            cwd=server.data_dir,
            capture_output=True,
            timeout=seconds + 120,
            check=False,
        )
        stats = Path(f"{prefix}_stats.csv")
        if not stats.exists():
            report.notes.append(f"locust run {run + 1} wrote no statistics")
            continue
        with stats.open() as handle:
            for row in csv.DictReader(handle):
                if row["Name"] == "Aggregated":
                    continue
                report.runs["locust:" + row["Name"]].append(
                    {
                        "requests": float(row["Request Count"]),
                        "failures": float(row["Failure Count"]),
                        "rps": float(row["Requests/s"]),
                        "p50_ms": float(row["50%"] or "nan"),
                        "p99_ms": float(row["99%"] or "nan"),
                    }
                )


def core_benchmark(report: Report, work: Path) -> None:
    out = work / "core-benchmark.json"
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "tests/bench",
        "-m",
        "benchmark",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--benchmark-json={out}",
    ]
    report.command([part if part != str(out) else "--benchmark-json=core.json" for part in argv])
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False)
    if result.returncode != 0 or not out.exists():
        report.notes.append("core benchmark failed:\n\n```\n" + result.stdout[-2000:] + "\n```")
        return
    medians: dict[str, float] = {}
    for bench in json.loads(out.read_text())["benchmarks"]:
        medians[bench["name"]] = bench["stats"]["median"]
    report.extra["core"] = medians
    small = next((value for name, value in medians.items() if "snapshot" in name and "10000]" in name), None)
    large = next(
        (value for name, value in medians.items() if "snapshot" in name and "1000000]" in name), None
    )
    if small and large:
        report.figures["snapshot_ratio"] = large / small
        report.figures["snapshot_10k_ms"] = small * 1000
        report.figures["snapshot_1m_ms"] = large * 1000


def machine() -> str:
    import psutil

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split(
        "\n"
    )[0]
    return (
        f"{os.cpu_count()} cores ({model or platform.machine()}), "
        f"{psutil.virtual_memory().total / 1024**3:.1f} GiB memory, {platform.platform()}, "
        f"Python {platform.python_version()}, {wrk_version.strip()}; load average at start: {load}"
    )


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    # Short and under /tmp: the embedded server's unix socket path must fit in about 107 bytes.
    work = Path(tempfile.mkdtemp(prefix="qpb-", dir="/tmp"))
    try:
        yield work
    finally:
        stop_embedded_postgres(work / "data")
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (the median is reported)")
    parser.add_argument("--seconds", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--events", type=int, default=1_000_000, help="events seeded for replay and memory")
    parser.add_argument("--locust-seconds", type=int, default=20, help="seconds per Locust run")
    parser.add_argument("--skip-core", action="store_true", help="skip the pytest-benchmark core run")
    parser.add_argument(
        "--import-events", type=int, default=1_000_000, help="events of the history import run (0: skip it)"
    )
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: scripts/ensure-apt.sh wrk:wrk")

    report = Report(started=datetime.now().astimezone())
    report.extra["machine"] = machine()
    report.extra["args"] = vars(args)
    runs = Runs()
    log(f"machine: {report.extra['machine']}")
    with workspace() as work:
        data_dir = work / "data"
        data_dir.mkdir()
        server = Server(data_dir, free_port(), report)
        try:
            measure_server(report, server, runs, args)
        finally:
            server.stop()
        if not args.skip_core:
            log("core snapshot benchmark (pytest-benchmark)")
            core_benchmark(report, work)
            from loadtests import staff_cost

            log("apply and snapshot cost with 50 agents beside fd60f74 (loadtests/staff_cost.py)")
            report.command([sys.executable, "-m", "loadtests.staff_cost"])
            report.extra["staff_cost"] = staff_cost.measure(log=log)
            report.figures["staff_cost_ratio"] = max(staff_cost.ratios(report.extra["staff_cost"]).values())
        from loadtests import replicas

        # On a database of its own, seeded afresh: the one above holds millions more events by now.
        log("replicas: join from the checkpoint, convergence lag at 1,000 events/s (loadtests/replicas.py)")
        report.command([sys.executable, "-m", "loadtests.replicas", "--events", str(args.events)])
        figures = asyncio.run(replicas.seeded_measure(work / "replicas", args.events, 20.0, 1000.0))
        report.extra["replicas"] = figures
        for name, key in (("replica_lag_p99_ms", "lag_p99_ms"), ("join_seconds", "join_seconds")):
            if key in figures:
                report.figures[name] = figures[key]
        report.notes.append(
            "Replicas (loadtests/replicas.py, on the seeded database): "
            + ", ".join(f"{key} {value:,.1f}" for key, value in figures.items())
        )
        if args.import_events:
            from loadtests import import_bench

            log(f"history import of {args.import_events:,} events (loadtests/import_bench.py)")
            report.extra["import"] = import_bench.measure(work, args.import_events, report.command)
            report.figures["import_events_per_s"] = report.extra["import"]["first"]["events_per_s"]
    args.output.write_text(render(report))
    log(f"wrote {args.output}")
    failed = [name for name in TARGETS if not met(name, report.figures.get(name))]
    if failed:
        log("targets not met: " + ", ".join(failed))
    return 0


def measure_server(report: Report, server: Server, runs: Runs, args: argparse.Namespace) -> None:
    import psutil

    log("idle server on an empty database")
    report.figures["ready_empty_seconds"] = server.start()
    warm_up(server, report, runs)
    time.sleep(1)
    idle = server.rss()
    report.figures["idle_rss_mb"] = idle / MB
    server.stop()

    from app.db.embedded import start_embedded

    url = start_embedded(server.data_dir)
    now = time.time()
    start, end = today_span(now - 5)
    hours = (end - start) / 3600
    report.extra["seed_span"] = (start, end)
    if hours < 6:
        report.notes.append(
            f"Only {hours:.1f} h of the local day had passed, so the {args.events:,} events are denser than "
            "in a real day and the window holds more open contacts: the RSS figure is pessimistic."
        )
    log(f"seeding {args.events:,} events over today's {hours:.1f} h")
    report.figures["seed_seconds"] = asyncio.run(seed(url, args.events, start, end))

    ready, rss = [], []
    for run in range(args.runs):
        log(f"start-up replay {run + 1}/{args.runs}")
        if run:
            server.stop()
        ready.append(server.start())
        _, body = server.get("/readyz")
        replayed = json.loads(body).get("replayed_events")
        # The warm-ups before each reading post a few hundred events of their own.
        if not isinstance(replayed, int) or replayed < args.events:
            raise RuntimeError(f"replayed {replayed} events, expected at least {args.events}")
        warm_up(server, report, runs)
        time.sleep(1)
        rss.append(server.rss())
        log(f"  ready in {ready[-1]:.2f} s, RSS {rss[-1] / MB:.0f} MB")
    report.runs["ready"] = [{"seconds": value} for value in ready]
    report.figures["ready_seconds"] = statistics.median(ready)
    report.figures["loaded_rss_mb"] = statistics.median(rss) / MB
    report.figures["rss_growth_mb"] = (statistics.median(rss) - idle) / MB

    log("baseline SQL at 1,000,000 events")
    times, rows = asyncio.run(run_baseline(url, max(args.runs, 5)))
    report.runs["baseline"] = [{"seconds": value} for value in times]
    report.figures["baseline_ms"] = statistics.median(times) * 1000
    report.extra["baseline_rows"] = rows
    for _ in range(args.runs):
        result = under_load(report, server, runs, "/v1/kpis?window=today", args.seconds, 4, connections=1)
        report.runs["kpis_today_1conn"].append(
            wrk(report, server.base + "/v1/kpis?window=today", connections=1, threads=1, seconds=args.seconds)
        )
        report.runs["kpis_today_loaded"].append(result)
    # Per request: one poller's latency with ingest running beside it, so most snapshots are recomputed.
    report.figures["qp_today_ms"] = median(report, "kpis_today_loaded", "p50_ms")
    report.figures["baseline_speedup"] = report.figures["baseline_ms"] / report.figures["qp_today_ms"]

    throughput(report, server, runs, args.runs, args.seconds)
    report.figures["single_ratio"] = median(report, "single", "rps") / median(report, "parse_ceiling", "rps")
    report.figures["single_p99_ms"] = median(report, "single", "p99_ms")
    report.figures["batch_events_per_s"] = median(report, "batch", "rps") * 100
    report.figures["kpis_ratio"] = median(report, "kpis_loaded", "rps") / median(
        report, "bytes_ceiling_loaded", "rps"
    )
    report.figures["kpis_p99_ms"] = median(report, "kpis_loaded", "p99_ms")
    report.figures["final_rss_mb"] = psutil.Process(server.pid).memory_info().rss / MB

    log("profiling with py-spy")
    profile(report, server, runs, min(args.seconds, 8))
    log("realistic mix with Locust")
    locust_mix(report, server, args.runs, args.locust_seconds)


def met(name: str, value: float | None) -> bool:
    if value is None:
        return False
    target, comparison, _ = TARGETS[name]
    return {">=": value >= target, "<": value < target, "<=": value <= target}[comparison]


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render(report: Report) -> str:
    f = report.figures
    args = report.extra["args"]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`loadtests/bench.py`) on {report.started:%Y-%m-%d %H:%M %Z}.",
        "",
        f"- Machine: {report.extra['machine']}.",
        "- Server: `queuepulse run` (uvicorn, one worker, uvloop + httptools) on the embedded PostgreSQL "
        "in a "
        "temporary data directory, with `QUEUEPULSE_BENCH_ENDPOINTS=true` for the ceilings. The load "
        "generators (wrk, Locust) run on the same machine.",
        f"- Each figure is the median of {args['runs']} runs ({args['seconds']:g} s per wrk run); "
        "ceilings run "
        "in the same rounds, interleaved with the real paths, so the ratios are what to compare across "
        "machines.",
        "- Ceilings: `POST /bench/parse` does what `POST /v1/events` does (same body parsing, pydantic "
        "validation, future check and conversion) but without auth and without persisting; "
        "`GET /bench/bytes` "
        "returns a snapshot serialised once, as precomputed bytes of the same shape as `/v1/kpis`.",
        "",
        "## Targets",
        "",
        "| figure | measured | target | met |",
        "|---|---|---|---|",
    ]
    for name, (target, comparison, unit) in TARGETS.items():
        value = f.get(name)
        shown = "not measured" if value is None else f"{_fmt(value)} {unit}"
        lines.append(
            f"| {TARGET_LABELS[name]} | {shown} | {comparison} {_fmt(target)} {unit} | "
            f"{'yes' if met(name, value) else '**no**'} |"
        )
    lines += [
        "",
        "## Throughput and latency (medians)",
        "",
        "| scenario | req/s | events/s | p50 ms | p99 ms | errors / non-2xx |",
        "|---|---|---|---|---|---|",
    ]
    described = {
        "parse_ceiling": ("ceiling: POST /bench/parse, 1 event, 64 connections", 1),
        "single": ("POST /v1/events, 1 event, 64 connections (durable)", 1),
        "batch_parse_ceiling": ("ceiling: POST /bench/parse, 100 events, 16 connections", 100),
        "batch": ("POST /v1/events, 100 events, 16 connections (durable)", 100),
        "bytes_ceiling_loaded": ("ceiling: GET /bench/bytes, 50 connections, under ingest (64 conn.)", 0),
        "kpis_loaded": ("GET /v1/kpis, 50 connections, under ingest (64 conn.)", 0),
        "bytes_ceiling": ("ceiling: GET /bench/bytes, 50 connections, no other load", 0),
        "kpis": ("GET /v1/kpis, 50 connections, no other load", 0),
        "kpis_today_loaded": ("GET /v1/kpis?window=today at 1M events, 1 connection, ingest (4 conn.)", 0),
        "kpis_today_1conn": ("GET /v1/kpis?window=today at 1M events, 1 connection, no other load", 0),
    }
    for name, (label, per_request) in described.items():
        if not report.runs.get(name):
            continue
        rps = median(report, name, "rps")
        errors = sum(run["socket_errors"] for run in report.runs[name])
        non_2xx = sum(run["non_2xx"] for run in report.runs[name])
        events = _fmt(rps * per_request) if per_request else ""
        lines.append(
            f"| {label} | {_fmt(rps)} | {events} | {median(report, name, 'p50_ms'):.2f} | "
            f"{median(report, name, 'p99_ms'):.2f} | {errors} / {non_2xx} |"
        )
    loaded = [run.get("ingest_rps", float("nan")) for run in report.runs.get("kpis_loaded", [])]
    if loaded:
        lines += [
            "",
            f"Ingest beside the loaded GET runs: {_fmt(statistics.median(loaded))} events/s (median).",
        ]

    lines += ["", "## Start-up, memory and the SQL baseline", ""]
    if "ready_seconds" in f:
        ready_runs = ", ".join(f"{run['seconds']:.2f}" for run in report.runs["ready"])
        start, end = report.extra["seed_span"]
        tz = ZoneInfo(TIME_ZONE)
        lines += [
            f"- Seeded {args['events']:,} events of today ({datetime.fromtimestamp(start, tz):%H:%M} to "
            f"{datetime.fromtimestamp(end, tz):%H:%M} {TIME_ZONE}, generated by `loadtests/dataset.py`) "
            f"with COPY in {f['seed_seconds']:.1f} s.",
            f"- Start-up to ready (spawn of `queuepulse run` until `/readyz` is 200, replay included): "
            f"{ready_runs} s; median {f['ready_seconds']:.2f} s. On an empty database: "
            f"{f['ready_empty_seconds']:.2f} s.",
            f"- RSS: idle (empty database, after a light warm-up) {f['idle_rss_mb']:.0f} MB; after replaying "
            f"the day and the same warm-up {f['loaded_rss_mb']:.0f} MB (growth {f['rss_growth_mb']:.0f} MB). "
            f"After all throughput runs (several million more events): {f['final_rss_mb']:.0f} MB.",
        ]
    if "baseline_ms" in f:
        times = ", ".join(f"{run['seconds'] * 1000:.0f}" for run in report.runs["baseline"])
        lines += [
            f"- Baseline `loadtests/baseline.sql` ({report.extra['baseline_rows']} rows): {times} ms; median "
            f"{f['baseline_ms']:.0f} ms per poll. queuepulse `GET /v1/kpis?window=today`, median latency "
            "with "
            f"ingest running beside it: {f['qp_today_ms']:.2f} ms. Speed-up: {f['baseline_speedup']:.0f}x.",
        ]
    if "snapshot_ratio" in f:
        lines += [
            f"- Core `Window.snapshot('today')` (pytest-benchmark, `tests/bench/`): "
            f"{f['snapshot_10k_ms']:.3f} ms at 10,000 events, {f['snapshot_1m_ms']:.3f} ms at 1,000,000 "
            f"(ratio {f['snapshot_ratio']:.2f}).",
        ]
    if report.extra.get("core"):
        lines += ["", "| core benchmark | median |", "|---|---|"]
        for name, value in report.extra["core"].items():
            lines.append(f"| `{name}` | {value * 1000:.3f} ms |")

    mix = {name[len("locust:") :]: runs for name, runs in report.runs.items() if name.startswith("locust:")}
    if mix:
        lines += [
            "",
            "## Realistic mix (Locust)",
            "",
            f"`loadtests/locustfile.py`, {args['runs']} runs of {args['locust_seconds']} s: a telephony "
            "feed at 20 events/s, 2 kiosks at 1 event/s, 50 wall screens polling every 2 s, Prometheus "
            "every 15 s, after the throughput runs (millions of events in the window).",
            "",
            "| request | req/s | failures | p50 ms | p99 ms |",
            "|---|---|---|---|---|",
        ]
        for name, runs in mix.items():
            lines.append(
                f"| {name} | {statistics.median(r['rps'] for r in runs):.1f} | "
                f"{sum(r['failures'] for r in runs):.0f} | "
                f"{statistics.median(r['p50_ms'] for r in runs):.0f} | "
                f"{statistics.median(r['p99_ms'] for r in runs):.0f} |"
            )

    profiles = report.extra.get("profiles")
    if profiles:
        lines += ["", "## Profile of this run (py-spy, event-loop thread)", ""]
        for title, own, inclusive in profiles:
            lines += [
                f"**{title}**: where the samples were (self), and the app's functions (inclusive).",
                "",
                "| self | function | | inclusive | app function |",
                "|---|---|---|---|---|",
            ]
            for index in range(max(len(own), len(inclusive))):
                left = own[index] if index < len(own) else ("", 0.0)
                right = inclusive[index] if index < len(inclusive) else ("", 0.0)
                lines.append(
                    f"| {left[1]:.1f}% | `{left[0]}` | | "
                    f"{f'{right[1]:.1f}%' if right[0] else ''} | {f'`{right[0]}`' if right[0] else ''} |"
                )
            lines.append("")
    if report.extra.get("staff_cost"):
        from loadtests import staff_cost

        lines += ["", *staff_cost.render(report.extra["staff_cost"])]
    if report.extra.get("import"):
        from loadtests import import_bench

        lines += ["", *import_bench.render(report.extra["import"])]
    notes_file = HERE / "optimisations.md"
    if notes_file.exists():
        lines += ["", notes_file.read_text().strip()]
    if report.notes:
        lines += ["", "## Notes from this run", ""] + [f"- {note}" for note in report.notes]
    lines += ["", "## Exact commands", "", "```sh", *report.commands, "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
