"""How long a joining instance takes to be ready on a full day, phase by phase, and what a checkpoint write
costs the instance that writes it.

    python -m loadtests.join_phases [--events 1000000] [--database-url URL] [--reuse] [--rounds 3]
                                    [--steps leader,phases,process]

Seeds a day of `--events` events (as `make bench` seeds them) into `--database-url` (migrated first), or
into an embedded PostgreSQL of its own as loadtests/replicas.py does; `--reuse` keeps a database that
already holds that many events. Then, all on that database:

  leader   an instance in this process replays the day in full and writes the window checkpoint
           `--rounds` times, each while a ticker task measures the longest the event loop went without
           running it (the stall ingest and reads would see); the encoding alone is timed too
  phases   `--rounds` instances started in this process from the checkpoint: wall and CPU seconds of each
           start-up step (stored targets and sources, checkpoint read and decode, adopting it, the log
           after it, the lobby wait ledger) up to /readyz 200
  process  `--rounds` real `queuepulse run` processes started on the database: seconds from spawn to
           /readyz 200 (what an operator waits for)

Steps the code under test does not have are left out, so the same script times an older tree
(`cd <tree> && PYTHONPATH=<tree> python <this file>`). The estimates the wait ledger scores are not stored
by the instances in this process (see _store_nothing); the `process` ones store them as usual.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib
import inspect
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from asgi_lifespan import LifespanManager

from loadtests.replicas import checkpoint_written

# (module, attribute path, phase name): the start-up steps timed where the code has them.
PHASES: tuple[tuple[str, str, str], ...] = (
    ("app.main", "load_targets", "targets"),
    ("app.main", "load_sources", "sources"),
    ("app.main", "load_checkpoint", "checkpoint (all)"),
    ("app.db.checkpoint", "read_checkpoint_row", "  read row"),
    ("app.db.checkpoint", "decode_checkpoint", "  decode and freeze"),
    ("app.db.checkpoint", "load_state", "  unpickle"),
    ("app.main", "replay_covering", "full replay"),
    ("app.core.window", "Window.adopt", "adopt"),
    ("app.db.tail", "Tail.catch_up", "log after it"),
    ("app.db.waits", "WaitFeed.catch_up", "wait ledger catch-up"),
    ("app.db.waits", "WaitFeed.refresh", "wait ledger refresh"),
    ("app.main", "open_sources", "open sources"),
)
TICK = 0.001


@dataclass
class Timings:
    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, wall: float, cpu: float) -> None:
        self.wall[name] = self.wall.get(name, 0.0) + wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu


def _resolve(module_name: str, path: str) -> tuple[Any, str] | None:
    try:
        owner: Any = importlib.import_module(module_name)
    except ImportError:
        return None
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent, None)
        if owner is None:
            return None
    if not hasattr(owner, name):
        return None
    return owner, name


@contextlib.contextmanager
def timed_phases(timings: Timings) -> Iterator[None]:
    """Wrap each step the code has so its wall and CPU seconds add up in `timings`."""
    undo: list[tuple[Any, str, Any]] = []
    for module_name, path, phase in PHASES:
        found = _resolve(module_name, path)
        if found is None:
            continue
        owner, name = found
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)

        def wrap(function: Any, phase: str = phase) -> Any:
            if inspect.iscoroutinefunction(function):

                @functools.wraps(function)
                async def timed_async(*args: Any, **kwargs: Any) -> Any:
                    wall, cpu = time.perf_counter(), time.process_time()
                    try:
                        return await function(*args, **kwargs)
                    finally:
                        timings.add(phase, time.perf_counter() - wall, time.process_time() - cpu)

                return timed_async

            @functools.wraps(function)
            def timed(*args: Any, **kwargs: Any) -> Any:
                wall, cpu = time.perf_counter(), time.process_time()
                try:
                    return function(*args, **kwargs)
                finally:
                    timings.add(phase, time.perf_counter() - wall, time.process_time() - cpu)

            return timed

        setattr(owner, name, wrap(original))
        undo.append((owner, name, original))
    try:
        yield
    finally:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)


class StallMeter:
    """A task that sleeps TICK at a time: the longest gap between its wake-ups, less TICK, is the longest
    the event loop was kept from everything else."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last - TICK)
            last = now

    async def __aenter__(self) -> StallMeter:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.05)
        self.worst = 0.0
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(0.05)
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _private_dirty_kib(pid: str) -> int:
    """Memory a process has written to since it was forked (copy-on-write pages it no longer shares)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1])
    return 0


class ChildMemory:
    """The most memory of its own any child of this process held (a forked checkpoint encoder): sampled
    from a thread every 10 ms, so a loop blocked by an encoding on it does not stop the sampling."""

    def __init__(self) -> None:
        self.worst_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _children(self) -> list[str]:
        found: list[str] = []
        with contextlib.suppress(OSError):
            for task in Path("/proc/self/task").iterdir():
                found.extend((task / "children").read_text().split())
        return found

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            for pid in self._children():
                self.worst_kib = max(self.worst_kib, _private_dirty_kib(pid))

    def __enter__(self) -> ChildMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def settings_for(url: str, data_dir: Path) -> Any:
    from app.settings import Settings

    # The rollup writer's own checkpoint is written once (the first flush); the leader times the rest.
    return Settings(
        _env_file=None,
        database_url=url,
        data_dir=data_dir,
        ingest_token="join-ingest-token",
        checkpoint_seconds=10**6,
    )


@contextlib.asynccontextmanager
async def started(settings: Any) -> AsyncIterator[tuple[Any, float]]:
    """An app in this process, and the seconds from its lifespan's start to /readyz 200."""
    from app.main import create_app

    app = create_app(settings)
    begun = time.perf_counter()
    async with LifespanManager(app, startup_timeout=600, shutdown_timeout=120) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://queuepulse") as client:
            for _ in range(60_000):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.01)
            else:
                raise TimeoutError("never ready")
            ready = time.perf_counter() - begun
            try:
                yield app, ready
            finally:
                waits = getattr(app.state.services, "waits", None)
                if waits is not None:
                    # The estimates a catch-up scored again are stored already: upserting the whole day's
                    # once more at shutdown is no part of a join (and takes minutes at a million events).
                    waits.ledger.take_new()


async def leader(url: str, dsn: str, work: Path, rounds: int) -> dict[str, Any]:
    """Full replay, then `rounds` checkpoint writes with the loop's longest stall and the encode alone."""
    from app.core.checkpoint import dump_state

    figures: dict[str, Any] = {}
    marked = time.time()
    async with started(settings_for(url, work / "leader")) as (app, ready):
        services = app.state.services
        joined = bool(services.joined_from_checkpoint)
        how = "from an earlier checkpoint" if joined else "full replay"
        figures[f"leader start to ready s ({how})"] = ready
        await checkpoint_written(dsn, marked, within=600.0)
        checkpointer = services.rollup.after_flush.__self__
        writes, stalls, encodes, sizes, children = [], [], [], [], []
        for _ in range(rounds):
            checkpointer.written_at = float("-inf")
            with ChildMemory() as child:
                async with StallMeter() as meter:
                    await checkpointer.maybe_write()
            children.append(child.worst_kib / 1024)
            writes.append(checkpointer.last_seconds)
            stalls.append(meter.worst)
            sizes.append(checkpointer.last_bytes)
            # The encoding alone, on the loop, of what the checkpoint holds (the wait ledger too, where the
            # code stores it).
            state = getattr(services.waits, "state", None)
            beside = () if state is None else (state(),)
            cpu = time.process_time()
            dump_state(services.window, *beside)
            encodes.append(time.process_time() - cpu)
        figures["checkpoint bytes"] = sizes[-1]
        figures["checkpoint write s"] = writes
        figures["checkpoint write: longest loop stall s"] = stalls
        figures["checkpoint encode alone, CPU s"] = encodes
        figures["checkpoint write: a forked encoder's own memory MiB"] = children
        figures["leader's own memory (private dirty) MiB"] = _private_dirty_kib("self") / 1024
    return figures


@contextlib.asynccontextmanager
async def rollup_held(dsn: str) -> AsyncIterator[None]:
    """Hold the rollup writer's lock, as a live leader would: the joiners start as the other instances do,
    without taking over the rollup (and rewriting today) once the leader of the first step is gone."""
    from app.db.rollup import ROLLUP_LOCK_KEY

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", ROLLUP_LOCK_KEY)
        yield
    finally:
        await connection.close()


async def joins(url: str, work: Path, rounds: int) -> list[tuple[float, Timings, bool]]:
    found = []
    for index in range(rounds):
        timings = Timings()
        with timed_phases(timings):
            async with started(settings_for(url, work / f"join-{index}")) as (app, ready):
                found.append((ready, timings, bool(app.state.services.joined_from_checkpoint)))
        report({}, found[-1:], [])
    return found


async def processes(url: str, work: Path, rounds: int) -> list[float]:
    from loadtests.chaos import Server, free_port

    seconds = []
    for index in range(rounds):
        data_dir = work / f"process-{index}"
        data_dir.mkdir(parents=True, exist_ok=True)
        server = Server(data_dir, free_port(), work / f"process-{index}.log", database_url=url)
        try:
            begun = time.perf_counter()
            server.start()
            await server.wait_ready(within=600.0)
            seconds.append(time.perf_counter() - begun)
        finally:
            server.stop()
    return seconds


async def seeded(url: str, events: int, reuse: bool) -> None:
    from app.db.embedded import asyncpg_dsn
    from app.db.migrate import run_migrations
    from loadtests.bench import seed, today_span

    run_migrations(url)
    if reuse:
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            stored = await connection.fetchval("SELECT count(*) FROM events")
        finally:
            await connection.close()
        if stored == events:
            print(f"reusing {stored:,} stored events", flush=True)
            return
    start, end = today_span(time.time() - 5)
    print(f"seeding {events:,} events", flush=True)
    await seed(url, events, start, end)


def _range(values: list[float]) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    middle = statistics.median(values)
    return f"{middle:.3f} ({low:.3f}-{high:.3f})" if len(values) > 1 else f"{middle:.3f}"


def report(figures: dict[str, Any], joined: list[tuple[float, Timings, bool]], spawned: list[float]) -> None:
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    for name, value in figures.items():
        print(f"{name}: {_range(value) if isinstance(value, list) else value}", flush=True)
    if joined:
        print(f"in-process join, lifespan start to /readyz 200 s: {_range([j[0] for j in joined])}")
        print(f"  from the checkpoint: {[j[2] for j in joined]}")
        names: list[str] = []
        for _, timings, _ in joined:
            names.extend(name for name in timings.wall if name not in names)
        for name in names:
            walls = [timings.wall.get(name, 0.0) for _, timings, _ in joined]
            cpus = [timings.cpu.get(name, 0.0) for _, timings, _ in joined]
            print(f"  {name:<24} wall {_range(walls)}  cpu {_range(cpus)}", flush=True)
    if spawned:
        print(f"process join, spawn to /readyz 200 s: {_range(spawned)}")


async def _store_nothing(engine: Any, records: list[Any]) -> None:
    """Instead of app.db.waits.store in this process: an instance that caught its wait ledger up from the
    day's events upserts every estimate of the day again in the background after it is ready (minutes of
    database work at a million events), which would time that instead of the start and the checkpoint."""


async def main_async(args: argparse.Namespace) -> int:
    import app.db.waits
    from app.db.embedded import asyncpg_dsn

    app.db.waits.store = _store_nothing

    work = Path(tempfile.mkdtemp(prefix="qp-join-", dir="/tmp"))
    embedded = None
    try:
        url = args.database_url
        if url is None:
            from app.db.embedded import start_embedded
            from loadtests.chaos import Postgres, Server, free_port

            # Migrated by a first start, as loadtests/replicas.py does.
            data_dir = work / "data"
            data_dir.mkdir()
            first = Server(data_dir, free_port(), work / "migrate.log")
            first.start()
            await first.wait_ready(within=600.0)
            first.stop()
            url = start_embedded(data_dir)
            embedded = Postgres(data_dir)
        await seeded(url, args.events, args.reuse)
        dsn = asyncpg_dsn(url)
        if "leader" in args.steps:
            report(await leader(url, dsn, work, args.rounds), [], [])
        joined: list[tuple[float, Timings, bool]] = []
        spawned: list[float] = []
        async with rollup_held(dsn):
            if "phases" in args.steps:
                joined = await joins(url, work, args.rounds)
            if "process" in args.steps:
                spawned = await processes(url, work, args.rounds)
        print("--- all rounds", flush=True)
        report({}, joined, spawned)
    finally:
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events of today to seed")
    parser.add_argument("--database-url", help="a PostgreSQL to use instead of an embedded one")
    parser.add_argument("--reuse", action="store_true", help="keep a database holding --events events")
    parser.add_argument("--rounds", type=int, default=3, help="checkpoint writes and joins of each kind")
    parser.add_argument(
        "--steps",
        default="leader,phases,process",
        help="which steps to run (leaving out `leader` joins from the checkpoint already stored)",
    )
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
