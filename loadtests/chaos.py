"""Chaos run: sustained ingest against a real server while the server is SIGKILLed or PostgreSQL restarts.

    python loadtests/chaos.py --mode both --seconds 20

Starts `queuepulse run` (uvicorn, one worker) on an embedded PostgreSQL in a temporary directory, drives
ingest from concurrent clients that walk calls and tickets through their lifecycle, and in the middle of
the load either kills the server with SIGKILL and starts it again (`kill`) or crashes and restarts
PostgreSQL (`pg-restart`). Clients retry every batch that got no 2xx, with the same event ids, until it
is acknowledged. Then it checks:

  lost           events acknowledged with a 2xx but missing from PostgreSQL
  double-counted events stored twice, credited `accepted` twice, or counted twice by the live window
                 (its arrive/start/leave/finish counts against the stored events, by SQL)
  mismatched     windows (15m, 1h, today) where the surviving server's /v1/kpis differs from a fresh
                 server's, which rebuilds its window from scratch from the database

and exits non-zero unless all three are 0.

`replicas` runs three instances on one PostgreSQL (they share the embedded server through the data
directory) and spreads ingest over all of them (a client moves to the next instance when one does not
answer). Mid-load one instance is SIGKILLed and started again, and later PostgreSQL restarts. Beside the
three checks (every instance against the others and against a fresh one) it measures the convergence
lag: one probe event at a time is acknowledged by one instance and the others are polled until it shows
in their /v1/kpis; the lag is the time from the 2xx to its showing (p50, p99, max).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

REPO = Path(__file__).resolve().parents[1]
TOKEN = "chaos-ingest-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
QUEUES = ("borgerservice", "pas", "skat")
WINDOWS = ("15m", "1h", "today")
# Deliveries the store recognised as already stored are counted live only: a fresh replay cannot know them.
LIVE_ONLY_COUNTERS = ("duplicates",)
RETRY_SECONDS = 0.2
# After the load, how long clients may keep retrying before unacknowledged batches count as a failure.
SETTLE_SECONDS = 90.0
# How long the live window may take to be rebuilt after failed commits (app/db/rebuild.py checks every
# second, then replays the day).
HEAL_WAIT_SECONDS = 10.0
STEPS = {
    "phone": ("call.offered", "call.answered", "call.ended"),
    "visit": ("ticket.issued", "ticket.called", "ticket.completed"),
}
ABANDON = {"phone": "call.abandoned", "visit": "ticket.cancelled"}
STEP_OF = {
    "call.offered": "arrived",
    "ticket.issued": "arrived",
    "call.answered": "started",
    "ticket.called": "started",
    "call.abandoned": "left",
    "ticket.cancelled": "left",
    "call.ended": "finished",
    "ticket.completed": "finished",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """One `queuepulse run` process on the shared data directory."""

    data_dir: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    # Set: this URL instead of the embedded server in data_dir (which `run` would start if it is down).
    database_url: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "QUEUEPULSE_DATA_DIR": str(self.data_dir),
            "QUEUEPULSE_INGEST_TOKEN": TOKEN,
            "QUEUEPULSE_PORT": str(self.port),
            # The checkpoint a restarted replica joins from, written often in a short run.
            "QUEUEPULSE_CHECKPOINT_SECONDS": "2",
        }
        for name in ("QUEUEPULSE_DATABASE_URL", "QUEUEPULSE_READ_TOKEN", "QUEUEPULSE_READ_TOKEN_FILE"):
            env.pop(name, None)
        if self.database_url is not None:
            env["QUEUEPULSE_DATABASE_URL"] = self.database_url
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "run", "--port", str(self.port)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def wait_ready(self, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited with {self.process.returncode}; see {self.log}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"server on port {self.port} never became ready; see {self.log}")


class Postgres:
    """The embedded server the app started under data_dir/pg (it outlives the app by design)."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "pg"

    def _pg_ctl(self, *args: str) -> None:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (as under root).
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH

        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            # pgserver runs the server as the user "pgserver" when we are root.
            user="pgserver" if os.geteuid() == 0 else None,
        )

    def socket_dir(self) -> str:
        # postmaster.pid's fifth line is the unix socket directory.
        return (self.pgdata / "postmaster.pid").read_text().split("\n")[4]

    def crash(self) -> str:
        socket_dir = self.socket_dir()
        self._pg_ctl("-w", "-m", "immediate", "stop")
        return socket_dir

    def start(self, socket_dir: str) -> None:
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.pgdata / "log"), "start")

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._pg_ctl("-w", "-m", "fast", "stop")

    def dsn(self) -> str:
        return f"postgresql://postgres@/queuepulse?host={self.socket_dir()}"


@dataclass
class Tally:
    requests: int = 0
    retries: int = 0
    sent_events: int = 0
    accepted: int = 0
    duplicates: int = 0
    acknowledged: set[str] = field(default_factory=set)
    unacknowledged: int = 0
    refusals: dict[str, int] = field(default_factory=dict)


@dataclass
class Contact:
    channel: str
    contact_id: str
    queue: str
    steps: list[str]


def contact_steps(channel: str, rng: random.Random) -> list[str]:
    arrive, start, finish = STEPS[channel]
    return [arrive, ABANDON[channel]] if rng.random() < 0.2 else [arrive, start, finish]


def event_body(contact: Contact, step: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": f"{contact.contact_id}-{step}",
        "type": step,
        "contact_id": contact.contact_id,
        "queue": contact.queue,
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    if step == "ticket.called":
        body["desk"] = "3"
    if step in ("call.ended", "ticket.completed"):
        body["resolved"] = True
    return body


async def deliver(
    client: httpx.AsyncClient, body: bytes, ids: list[str], tally: Tally, deadline: float
) -> bool:
    """Post until a 2xx; the same bytes every time, so a retry is the same events."""
    first = True
    while time.monotonic() < deadline:
        tally.requests += 1
        if not first:
            tally.retries += 1
        first = False
        try:
            response = await client.post("/v1/events", content=body, headers=HEADERS)
        except httpx.HTTPError as error:
            kind = type(error).__name__
        else:
            if 200 <= response.status_code < 300:
                answer = response.json()
                tally.accepted += answer["accepted"]
                tally.duplicates += answer["duplicates"]
                tally.acknowledged.update(ids)
                return True
            if response.status_code not in (502, 503):
                raise RuntimeError(f"unexpected {response.status_code}: {response.text}")
            kind = str(response.status_code)
        tally.refusals[kind] = tally.refusals.get(kind, 0) + 1
        await asyncio.sleep(RETRY_SECONDS)
    return False


async def walk_contacts(
    worker: int,
    run: str,
    batch: int,
    load_until: float,
    deadline: float,
    tally: Tally,
    send: Callable[[bytes, list[str]], Awaitable[bool]],
) -> None:
    """Contacts walking their lifecycle a step per request until `load_until`, then finishing what is open;
    `send` delivers one body (with its event ids) and says whether it was acknowledged."""
    rng = random.Random(worker)
    open_contacts: list[Contact] = []
    serial = 0
    while time.monotonic() < deadline:
        generating = time.monotonic() < load_until
        while generating and len(open_contacts) < batch:
            serial += 1
            channel = "phone" if rng.random() < 0.7 else "visit"
            open_contacts.append(
                Contact(channel, f"{run}-w{worker}-{serial}", rng.choice(QUEUES), contact_steps(channel, rng))
            )
        if not open_contacts:
            return
        chosen = open_contacts[:batch]
        events = [event_body(contact, contact.steps[0]) for contact in chosen]
        ids = [event["event_id"] for event in events]
        tally.sent_events += len(events)
        if not await send(orjson.dumps(events), ids):
            tally.unacknowledged += len(events)
            return
        for contact in chosen:
            contact.steps.pop(0)
        open_contacts = [contact for contact in open_contacts if contact.steps]


async def client_loop(
    url: str, worker: int, run: str, batch: int, load_until: float, deadline: float, tally: Tally
) -> None:
    # A new connection for each request: the server may die under a kept-alive one.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=15.0, limits=limits) as client:

        async def send(body: bytes, ids: list[str]) -> bool:
            return await deliver(client, body, ids, tally, deadline)

        await walk_contacts(worker, run, batch, load_until, deadline, tally, send)


async def stored_counts(dsn: str) -> tuple[set[str], int, dict[tuple[str, str], int]]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT event_id FROM events")
        total = await connection.fetchval("SELECT count(*) FROM events")
        by_type = await connection.fetch("SELECT channel, type, count(*) FROM events GROUP BY 1, 2")
    finally:
        await connection.close()
    counts: dict[tuple[str, str], int] = {}
    for channel, event_type, count in by_type:
        key = (channel, STEP_OF[event_type])
        counts[key] = counts.get(key, 0) + count
    return {row[0] for row in rows}, total, counts


def comparable(kpis: dict[str, Any]) -> dict[str, Any]:
    quality = {k: v for k, v in kpis["data_quality"].items() if k not in LIVE_ONLY_COUNTERS}
    channels = kpis["channels"]
    if kpis["window"] == "today":
        # Today's arrivals per hour divide by the hours since midnight at each server's own `now`: two
        # answers a few milliseconds apart differ in the second decimal. The count it divides is compared.
        channels = {
            name: {
                "total": without_rate(channel["total"]),
                "queues": {queue: without_rate(figures) for queue, figures in channel["queues"].items()},
            }
            for name, channel in channels.items()
        }
    return {"channels": channels, "data_quality": quality}


def without_rate(figures: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in figures.items() if key != "arrivals_per_hour"}


async def window_mismatches(live: Server, fresh: Server) -> list[str]:
    """Windows whose KPIs differ between the two servers; asked at the same moment, three tries each."""
    mismatched = []
    async with httpx.AsyncClient(timeout=15.0) as client:
        for window in WINDOWS:
            for _attempt in range(3):
                answers = await asyncio.gather(
                    *(client.get(f"{s.url}/v1/kpis", params={"window": window}) for s in (live, fresh))
                )
                left, right = (comparable(answer.json()) for answer in answers)
                if left == right:
                    break
                # A second boundary between the two answers moves the rolling windows; ask again.
                await asyncio.sleep(0.3)
            else:
                mismatched.append(window)
                print(f"  window {window} differs:")
                for path, ours, theirs in differences(left, right):
                    print(f"    {path}: {ours!r} / {theirs!r}")
    return mismatched


def differences(left: Any, right: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """The leaves where two JSON answers differ, by path: a test failure's output names only those."""
    if isinstance(left, dict) and isinstance(right, dict):
        found = []
        for key in sorted(set(left) | set(right), key=str):
            found += differences(left.get(key), right.get(key), f"{path}.{key}")
        return found
    return [] if left == right else [(path or ".", left, right)]


async def counted_apart(server: Server, stored: dict[tuple[str, str], int]) -> int:
    """How far the server's live counts are from the stored events, once it has had time to heal: a
    commit whose answer was lost may have stored events the window never saw, and the service rebuilds
    its window within about a second of the database answering again (and the replay's time)."""
    healing_deadline = time.monotonic() + HEAL_WAIT_SECONDS
    while True:
        live = await live_counts(server)
        apart = sum(abs(live.get(key, 0) - stored.get(key, 0)) for key in live)
        if not apart or time.monotonic() > healing_deadline:
            break
        await asyncio.sleep(0.25)
    if apart:
        print(f"  {server.url} window counts {live}\n  stored events {stored}")
    return apart


def verdict(
    mode: str,
    elapsed: float,
    tally: Tally,
    ours: set[str],
    lost: int,
    stored_double: int,
    mismatched: list[str],
) -> dict[str, Any]:
    """A run's figures; double-counted sums rows or live counts too many (`stored_double`) and events
    credited as accepted beyond those stored."""
    return {
        "mode": mode,
        "seconds": round(elapsed, 1),
        "requests": tally.requests,
        "retries": tally.retries,
        "refusals": tally.refusals,
        "acknowledged": len(tally.acknowledged),
        "stored": len(ours),
        "accepted": tally.accepted,
        "duplicates": tally.duplicates,
        "unacknowledged": tally.unacknowledged,
        "lost": lost,
        "double_counted": stored_double + max(0, tally.accepted - len(ours)),
        "mismatched_windows": mismatched,
    }


async def live_counts(server: Server) -> dict[tuple[str, str], int]:
    async with httpx.AsyncClient(timeout=15.0) as client:
        kpis = (await client.get(f"{server.url}/v1/kpis", params={"window": "today"})).json()
    return {
        (channel, key): kpis["channels"][channel]["total"][key]
        for channel in STEPS
        for key in ("arrived", "started", "left", "finished")
    }


async def run_mode(mode: str, data_dir: Path, seconds: float, clients: int, batch: int) -> dict[str, Any]:
    log = data_dir / f"server-{mode}.log"
    server = Server(data_dir, free_port(), log)
    postgres = Postgres(data_dir)
    server.start()
    fresh: Server | None = None
    try:
        await server.wait_ready()
        run = f"{mode}-{int(time.time())}"
        tally = Tally()
        started = time.monotonic()
        load_until = started + seconds
        deadline = load_until + SETTLE_SECONDS
        workers = [
            asyncio.create_task(client_loop(server.url, w, run, batch, load_until, deadline, tally))
            for w in range(clients)
        ]
        await asyncio.sleep(seconds / 2)
        if mode == "kill":
            await asyncio.to_thread(server.kill)
            server.start()
        else:
            socket_dir = await asyncio.to_thread(postgres.crash)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(postgres.start, socket_dir)
        await asyncio.gather(*workers)
        elapsed = time.monotonic() - started
        await server.wait_ready()

        stored_ids, stored_rows, stored = await stored_counts(postgres.dsn())
        ours = {event_id for event_id in stored_ids if event_id.startswith(run)}
        lost = len(tally.acknowledged - stored_ids)
        # A commit whose answer was lost may have stored events the window never saw; the service heals
        # by rebuilding its window within about a second of the database answering again, so the live
        # counts have that long (and the replay's time) to come back to what is stored.
        window_double = await counted_apart(server, stored)

        fresh = Server(data_dir, free_port(), data_dir / f"fresh-{mode}.log")
        fresh.start()
        await fresh.wait_ready()
        mismatched = await window_mismatches(server, fresh)
        return verdict(
            mode, elapsed, tally, ours, lost, stored_rows - len(stored_ids) + window_double, mismatched
        )
    finally:
        server.stop()
        if fresh is not None:
            fresh.stop()


PROBE_QUEUE = "probe"
PROBE_EVERY_SECONDS = 0.1
PROBE_POLL_SECONDS = 0.002
PROBE_GIVE_UP_SECONDS = 5.0


async def replica_client(
    urls: list[str], worker: int, run: str, batch: int, load_until: float, deadline: float, tally: Tally
) -> None:
    """client_loop's walk, spread over the instances: each request goes to the next one, and a failed
    delivery moves on (a client in front of a load balancer sees the same)."""
    turn = worker
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=15.0, limits=limits) as client:

        async def send(body: bytes, ids: list[str]) -> bool:
            nonlocal turn
            while time.monotonic() < deadline:
                turn += 1
                client.base_url = httpx.URL(urls[turn % len(urls)])
                # One try here (deliver sleeps RETRY_SECONDS after a failure), then the next instance.
                if await deliver(client, body, ids, tally, time.monotonic() + 0.001):
                    return True
            return False

        await walk_contacts(worker, run, batch, load_until, deadline, tally, send)


async def probe_arrived(client: httpx.AsyncClient, url: str) -> int | None:
    try:
        response = await client.get(
            f"{url}/v1/kpis", params={"window": "today", "channel": "phone", "queue": PROBE_QUEUE}
        )
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    queue = response.json()["channels"]["phone"]["queues"].get(PROBE_QUEUE)
    return 0 if queue is None else int(queue["arrived"])


async def probe_lag(servers: list[Server], run: str, until: float, lags: list[float], tally: Tally) -> None:
    """One probe at a time: acknowledged by one instance, then polled on every other one that answers."""
    serial = 0
    async with httpx.AsyncClient(timeout=5.0) as client:
        while time.monotonic() < until:
            serial += 1
            origin = servers[serial % len(servers)]
            others = [server for server in servers if server is not origin]
            before = {server.url: await probe_arrived(client, server.url) for server in others}
            contact = Contact("phone", f"{run}-probe-{serial}", PROBE_QUEUE, ["call.offered"])
            event = event_body(contact, "call.offered")
            try:
                response = await client.post(
                    f"{origin.url}/v1/events", content=orjson.dumps([event]), headers=HEADERS
                )
            except httpx.HTTPError:
                response = None
            tally.sent_events += 1
            if response is None or response.status_code != 200:
                # Not acknowledged: the probe is retried by no one, so it must not count as lost either.
                tally.refusals["probe"] = tally.refusals.get("probe", 0) + 1
                await asyncio.sleep(PROBE_EVERY_SECONDS)
                continue
            acknowledged_at = time.monotonic()
            tally.acknowledged.add(event["event_id"])
            tally.accepted += response.json()["accepted"]
            waiting = {url: count for url, count in before.items() if count is not None}
            while waiting and time.monotonic() - acknowledged_at < PROBE_GIVE_UP_SECONDS:
                for url, count in list(waiting.items()):
                    now_count = await probe_arrived(client, url)
                    if now_count is None:
                        del waiting[url]
                    elif now_count > count:
                        lags.append(time.monotonic() - acknowledged_at)
                        del waiting[url]
                await asyncio.sleep(PROBE_POLL_SECONDS)
            # The probe caller hangs up, so no wait is left growing (the windows are compared at the end).
            hang_up = event_body(contact, "call.abandoned")
            body = orjson.dumps([hang_up])
            for attempt in range(len(servers) * 10):
                try:
                    answer = await client.post(
                        f"{servers[(serial + attempt) % len(servers)].url}/v1/events",
                        content=body,
                        headers=HEADERS,
                    )
                except httpx.HTTPError:
                    answer = None
                if answer is not None and answer.status_code == 200:
                    tally.acknowledged.add(hang_up["event_id"])
                    tally.accepted += answer.json()["accepted"]
                    break
                await asyncio.sleep(RETRY_SECONDS)
            await asyncio.sleep(PROBE_EVERY_SECONDS)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run_replicas(data_dir: Path, seconds: float, clients: int, batch: int) -> dict[str, Any]:
    servers = [Server(data_dir, free_port(), data_dir / f"replica-{i}.log") for i in range(3)]
    postgres = Postgres(data_dir)
    fresh: Server | None = None
    try:
        # The first starts the embedded PostgreSQL and migrates it; the others get its URL, as instances on
        # a real server would (and so never start it themselves while this run restarts it).
        for server in servers:
            if server is not servers[0]:
                server.database_url = postgres.dsn()
            server.start()
            await server.wait_ready()
        run = f"replicas-{int(time.time())}"
        tally = Tally()
        lags: list[float] = []
        started = time.monotonic()
        load_until = started + seconds
        deadline = load_until + SETTLE_SECONDS
        urls = [server.url for server in servers]
        workers = [
            asyncio.create_task(replica_client(urls, w, run, batch, load_until, deadline, tally))
            for w in range(clients)
        ]
        probe = asyncio.create_task(probe_lag(servers, run, load_until, lags, tally))
        await asyncio.sleep(seconds / 3)
        victim = servers[1]
        await asyncio.to_thread(victim.kill)
        victim.start()
        # Joined again before PostgreSQL goes down: `queuepulse run` migrates at start and exits when the
        # database is not there then (its retries start after that).
        await victim.wait_ready()
        await asyncio.sleep(max(0.0, started + 2 * seconds / 3 - time.monotonic()))
        socket_dir = await asyncio.to_thread(postgres.crash)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(postgres.start, socket_dir)
        await asyncio.gather(*workers, probe)
        elapsed = time.monotonic() - started
        for server in servers:
            await server.wait_ready()

        stored_ids, stored_rows, stored = await stored_counts(postgres.dsn())
        ours = {event_id for event_id in stored_ids if event_id.startswith(run)}
        lost = len(tally.acknowledged - stored_ids)
        window_double = sum([await counted_apart(server, stored) for server in servers])

        fresh = Server(data_dir, free_port(), data_dir / "fresh-replicas.log", database_url=postgres.dsn())
        fresh.start()
        await fresh.wait_ready()
        mismatched = []
        for server in servers:
            mismatched += [f"{server.port}:{window}" for window in await window_mismatches(server, fresh)]
        found = verdict(
            "replicas", elapsed, tally, ours, lost, stored_rows - len(stored_ids) + window_double, mismatched
        )
        return found | {"lag": lags}
    finally:
        for server in servers:
            server.stop()
        if fresh is not None:
            fresh.stop()


def lag_text(lags: list[float]) -> str:
    if not lags:
        return "convergence lag: no samples"
    return (
        f"convergence lag ms ({len(lags)} samples): p50={percentile(lags, 0.5) * 1000:.1f} "
        f"p99={percentile(lags, 0.99) * 1000:.1f} max={max(lags) * 1000:.1f}"
    )


def summary_line(result: dict[str, Any]) -> str:
    lag = f" {lag_text(result['lag'])}" if "lag" in result else ""
    return (
        f"chaos {result['mode']}: {result['seconds']} s, {result['requests']} requests "
        f"({result['retries']} retries; refusals {result['refusals']}), "
        f"acknowledged={result['acknowledged']} stored={result['stored']} accepted={result['accepted']} "
        f"duplicates={result['duplicates']} unacknowledged={result['unacknowledged']} "
        f"lost={result['lost']} double-counted={result['double_counted']} "
        f"mismatched-windows={len(result['mismatched_windows'])}{lag}"
    )


def print_logs(root: Path) -> None:
    for log in sorted(root.glob("*.log")):
        print(f"--- {log.name} (tail)")
        print("\n".join(log.read_text(errors="replace").splitlines()[-30:]))


async def main_async(args: argparse.Namespace) -> int:
    modes = ["kill", "pg-restart"] if args.mode == "both" else [args.mode]
    if args.mode == "all":
        modes = ["kill", "pg-restart", "replicas"]
    root = Path(tempfile.mkdtemp(prefix="qp-chaos-", dir="/tmp"))
    failed = False
    try:
        for mode in modes:
            if mode == "replicas":
                result = await run_replicas(root, args.seconds, args.clients, args.batch)
            else:
                result = await run_mode(mode, root, args.seconds, args.clients, args.batch)
            print(summary_line(result), flush=True)
            failed |= bool(
                result["lost"]
                or result["double_counted"]
                or result["mismatched_windows"]
                or result["unacknowledged"]
                or not result["acknowledged"]
            )
    except Exception:
        print_logs(root)
        raise
    finally:
        Postgres(root).stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("chaos: FAILED" if failed else "chaos: ok (lost=0, double-counted=0, windows equal)")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--mode", choices=["kill", "pg-restart", "both", "replicas", "all"], default="both")
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration per mode")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--batch", type=int, default=20, help="events per request")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and logs")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
