"""Replicas on one PostgreSQL: convergence lag at a steady ingest rate, and the join time on a full day.

    python -m loadtests.replicas [--events 1000000] [--seconds 20] [--rate 1000]

Seeds a day of events into an embedded PostgreSQL (skipped with --events 0), then:

  join    one instance replays the day in full, writes the window checkpoint as the rollup writer, and a
          second instance starts on the same database: the seconds from spawning it to /readyz 200
          (loading the checkpoint and the log after it), beside the first one's full replay
  lag     three instances; ingest at --rate events/s spread round-robin over them (batches of 10, paced),
          and one probe at a time acknowledged by one instance and polled for on the other two until it
          shows in their /v1/kpis: p50, p99 and max of the time from the 2xx to its showing there

`make bench` runs `measure()` on its own seeded database and puts the figures in loadtests/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from loadtests.chaos import (
    HEADERS,
    Contact,
    Postgres,
    Server,
    Tally,
    contact_steps,
    event_body,
    free_port,
    percentile,
    probe_lag,
)

BATCH = 10
QUEUES = ("borgerservice", "pas", "skat")


async def paced_ingest(urls: list[str], rate: float, until: float, run: str, tally: Tally) -> None:
    """`rate` events a second in batches of BATCH, each batch to the next instance; contacts walk their
    lifecycle a step per batch. Falls behind (and says so in the achieved rate) rather than bursting."""
    rng = random.Random(14)
    open_contacts: list[Contact] = []
    serial = 0
    turn = 0
    interval = BATCH / rate
    next_at = time.monotonic()
    async with httpx.AsyncClient(timeout=10.0) as client:
        pending: set[asyncio.Task[None]] = set()

        async def send(url: str, body: bytes, size: int) -> None:
            try:
                response = await client.post(f"{url}/v1/events", content=body, headers=HEADERS)
            except httpx.HTTPError:
                return
            if response.status_code == 200:
                tally.accepted += response.json()["accepted"]
                tally.sent_events += size

        while time.monotonic() < until:
            while len(open_contacts) < BATCH:
                serial += 1
                channel = "phone" if rng.random() < 0.7 else "visit"
                open_contacts.append(
                    Contact(channel, f"{run}-{serial}", rng.choice(QUEUES), contact_steps(channel, rng))
                )
            chosen = open_contacts[:BATCH]
            events = [event_body(contact, contact.steps.pop(0)) for contact in chosen]
            open_contacts = [contact for contact in open_contacts if contact.steps]
            turn += 1
            task = asyncio.create_task(send(urls[turn % len(urls)], orjson.dumps(events), len(events)))
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if pending:
            await asyncio.gather(*pending)


async def checkpoint_written(dsn: str, after: float, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    connection = await asyncpg.connect(dsn)
    try:
        while time.monotonic() < deadline:
            written = await connection.fetchval(
                "SELECT extract(epoch FROM written_at) FROM window_checkpoints WHERE name = 'window'"
            )
            if written is not None and float(written) > after:
                return
            await asyncio.sleep(0.5)
    finally:
        await connection.close()
    raise TimeoutError("no window checkpoint was written")


async def spawn_ready(server: Server) -> float:
    started = time.perf_counter()
    server.start()
    await server.wait_ready(within=600.0)
    return time.perf_counter() - started


async def measure(data_dir: Path, seconds: float, rate: float) -> dict[str, Any]:
    """Join time and convergence lag on the data directory's embedded database (already seeded)."""
    figures: dict[str, Any] = {}
    servers = [Server(data_dir, free_port(), data_dir / f"replica-{i}.log") for i in range(3)]
    try:
        figures["full_replay_seconds"] = await spawn_ready(servers[0])
        dsn = Postgres(data_dir).dsn()
        # The others on the URL of the server the first started, as on a real PostgreSQL.
        for server in servers[1:]:
            server.database_url = dsn
        await checkpoint_written(dsn, time.time())
        figures["join_seconds"] = await spawn_ready(servers[1])
        await spawn_ready(servers[2])

        run = f"lag-{int(time.time())}"
        tally, probes = Tally(), Tally()
        lags: list[float] = []
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(
            paced_ingest([server.url for server in servers], rate, until, run, tally),
            probe_lag(servers, run, until, lags, probes),
        )
        figures["ingest_events_per_s"] = tally.sent_events / (time.monotonic() - started)
        figures["lag_samples"] = len(lags)
        if lags:
            figures["lag_p50_ms"] = percentile(lags, 0.5) * 1000
            figures["lag_p99_ms"] = percentile(lags, 0.99) * 1000
            figures["lag_max_ms"] = max(lags) * 1000
    finally:
        for server in servers:
            server.stop()
    return figures


async def seeded_measure(root: Path, events: int, seconds: float, rate: float) -> dict[str, Any]:
    """measure() on a fresh embedded database under `root` holding `events` of today (none: empty)."""
    from app.db.embedded import start_embedded
    from loadtests.bench import seed, today_span

    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    try:
        if events:
            # Migrated by a first start, then seeded as `make bench` seeds.
            first = Server(data_dir, free_port(), root / "migrate.log")
            await spawn_ready(first)
            first.stop()
            url = start_embedded(data_dir)
            start, end = today_span(time.time() - 5)
            print(f"seeding {events:,} events", flush=True)
            await seed(url, events, start, end)
        figures = await measure(data_dir, seconds, rate)
    finally:
        Postgres(data_dir).stop()
    figures["events"] = events
    return figures


async def main_async(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="qp-rep-", dir="/tmp"))
    try:
        figures = await seeded_measure(root, args.events, args.seconds, args.rate)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for name, value in figures.items():
        print(f"{name}: {value:.1f}" if isinstance(value, float) else f"{name}: {value}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events of today to seed first")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of paced ingest")
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second over all instances")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
