"""`queuepulse relay-qmatic` as a real process between a fake Orchestra (tests/qmatic/orchestra.py: its
webhook registry and its drop-after-one-failed-POST rule) and the real service on a real PostgreSQL, both
stopped and started under it: every visit Orchestra delivered is counted once, and nothing else."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.db.embedded import asyncpg_dsn, run_coroutine_blocking
from app.db.migrate import run_migrations
from app.qmatic.mapping import visit_event_ids
from tests.conftest import PostgresServer
from tests.qmatic.bodies import Lobby
from tests.qmatic.orchestra import FakeOrchestra
from tests.serving import free_port
from tests.test_outage import stoppable_server

__all__ = ["stoppable_server"]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-ingest-token"
TIMEOUT_SECONDS = 120.0
VISIT_SPACING_SECONDS = 10


def until(check: Callable[[], bool], what: str, log: Process | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what if log is None else f"{what}:\n{log.output()}")
        time.sleep(0.1)


@dataclass
class Process:
    """A `queuepulse` subcommand run as its own process, its output in a log file."""

    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *self.args], cwd=ROOT, env=self.env, stdout=out, stderr=out
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@dataclass
class Setup:
    orchestra: FakeOrchestra
    service: Process
    service_url: str
    relay: Process
    relay_url: str
    database_url: str
    server: PostgresServer

    def service_ready(self) -> bool:
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{self.service_url}/readyz", timeout=5).status_code == 200
        return False

    def start_service(self, wait: bool = True) -> None:
        self.service.start()
        if wait:
            until(self.service_ready, "the service never became ready", self.service)

    def relay_status(self) -> dict[str, Any]:
        status: dict[str, Any] = httpx.get(f"{self.relay_url}/status", timeout=5).json()
        return status

    def relay_up(self) -> bool:
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{self.relay_url}/healthz", timeout=5).status_code == 200
        return False

    def start_relay(self) -> None:
        self.relay.start()
        until(self.relay_up, "the relay never listened", self.relay)
        self.orchestra.wait_registered(self.relay_url + "/")

    def drained(self) -> bool:
        with contextlib.suppress(httpx.TransportError):
            return int(self.relay_status()["backlog"]) == 0
        return False

    def stored_ids(self) -> list[str]:
        async def fetch() -> list[str]:
            connection = await asyncpg.connect(asyncpg_dsn(self.database_url))
            try:
                return [row[0] for row in await connection.fetch("SELECT event_id FROM events")]
            finally:
                await connection.close()

        return run_coroutine_blocking(fetch)

    def visit_figures(self) -> tuple[int, int, int]:
        kpis = httpx.get(f"{self.service_url}/v1/kpis", params={"window": "today"}, timeout=10).json()
        total = kpis["channels"]["visit"]["total"]
        return total["arrived"], total["started"], total["finished"]


@pytest.fixture
def setup(stoppable_server: PostgresServer, tmp_path: Path) -> Iterator[Setup]:
    database_url = stoppable_server.create_database(prefix="qp_relay")
    run_migrations(database_url)
    service_port, relay_port = free_port(), free_port()
    (tmp_path / "token").write_text(TOKEN + "\n")
    env = {
        **os.environ,
        "QUEUEPULSE_DATABASE_URL": database_url,
        "QUEUEPULSE_DATA_DIR": str(tmp_path / "data"),
        "QUEUEPULSE_INGEST_TOKEN": TOKEN,
    }
    service_url, relay_url = f"http://127.0.0.1:{service_port}", f"http://127.0.0.1:{relay_port}"
    with FakeOrchestra() as orchestra:
        relay = Process(
            [
                "relay-qmatic",
                *("--orchestra", orchestra.hooks_url, "--public-url", relay_url + "/"),
                *("--listen", f"127.0.0.1:{relay_port}", "--url", service_url),
                *("--token-file", str(tmp_path / "token"), "--spool-dir", str(tmp_path / "spool")),
                *("--register-seconds", "0.2", "--status-seconds", "1", "--max-backoff-seconds", "0.5"),
                *("--batch-events", "7"),
            ],
            env,
            tmp_path / "relay.log",
        )
        service = Process(["run", "--port", str(service_port)], env, tmp_path / "service.log")
        running = Setup(orchestra, service, service_url, relay, relay_url, database_url, stoppable_server)
        try:
            yield running
        finally:
            relay.stop(signal.SIGKILL)
            service.stop(signal.SIGKILL)
            # A test that failed with the database stopped leaves it to the next one running.
            with contextlib.suppress(subprocess.SubprocessError):
                stoppable_server.start()
            stoppable_server.drop_database(database_url)


def publish_visits(setup: Setup, lobby: Lobby, first: int, last: int) -> None:
    for n in range(first, last + 1):
        for body in lobby.visit(n, n * VISIT_SPACING_SECONDS):
            setup.orchestra.publish(body)


def expected_ids(delivered: list[dict[str, Any]]) -> list[str]:
    """The queuepulse event id of each delivered visit event (one each, app/qmatic/mapping.py)."""
    slot = {"VISIT_CREATE": 0, "VISIT_CALL": 1, "VISIT_END": 2}
    return sorted(
        visit_event_ids("1", str(body["parameters"]["visitId"]))[slot[body["eventName"]]]
        for body in delivered
    )


@pytest.mark.slow
def test_every_visit_is_counted_once_while_the_service_and_postgresql_stop_and_start(setup: Setup) -> None:
    lobby = Lobby()
    setup.start_service()
    setup.start_relay()
    publish_visits(setup, lobby, 0, 9)
    until(lambda: len(setup.stored_ids()) == 30, "the first visits never arrived", setup.relay)

    # The service is away: the relay keeps answering Orchestra from its spool.
    setup.service.stop(signal.SIGKILL)
    publish_visits(setup, lobby, 10, 19)
    assert setup.relay_status()["backlog"] == 30
    # PostgreSQL too; the service comes back without it and answers 503 until it returns.
    setup.server.stop("fast")
    setup.start_service(wait=False)
    publish_visits(setup, lobby, 20, 29)
    until(lambda: setup.relay_status()["forward_problem"] is not None, "the relay never tried to forward")
    assert not setup.service_ready()
    assert setup.relay_status()["backlog"] == 60
    setup.server.start()
    until(setup.service_ready, "the service never recovered", setup.service)
    # More visits while the backlog drains.
    publish_visits(setup, lobby, 30, 39)
    until(setup.drained, "the backlog never drained", setup.relay)

    assert all(published.delivered for published in setup.orchestra.published)
    assert setup.orchestra.removals == 0
    stored = setup.stored_ids()
    assert sorted(stored) == expected_ids(setup.orchestra.delivered)
    assert len(stored) == 120
    assert setup.visit_figures() == (40, 40, 40)
    status = setup.relay_status()
    assert (status["received"], status["forwarded"], status["refused_items"]) == (120, 120, 0)

    # A restart of the relay sends nothing again: the acknowledged mark is on disk.
    setup.relay.stop()
    setup.start_relay()
    assert setup.relay_status()["backlog"] == 0
    assert sorted(setup.stored_ids()) == sorted(stored)


@pytest.mark.slow
def test_a_relay_killed_mid_stream_loses_nothing_it_acknowledged(setup: Setup) -> None:
    lobby = Lobby()
    setup.start_service()
    setup.start_relay()
    # A backlog on disk: the service is away while Orchestra posts.
    setup.service.stop(signal.SIGKILL)
    publish_visits(setup, lobby, 0, 9)
    assert setup.relay_status()["backlog"] == 30

    setup.relay.stop(signal.SIGKILL)
    # Orchestra's next POST fails: it drops the relay, and what it posts until the relay registers again
    # is lost by Orchestra itself (nothing to do with the relay's spool).
    publish_visits(setup, lobby, 10, 11)
    assert setup.orchestra.removals == 1
    lost = [published for published in setup.orchestra.published if not published.delivered]
    assert len(lost) == 6
    setup.start_relay()
    publish_visits(setup, lobby, 12, 19)

    # Killed again while it drains the backlog into the service, batch after batch.
    setup.start_service()
    until(lambda: setup.relay_status()["forwarded"] > 0, "the relay never forwarded", setup.relay)
    setup.relay.stop(signal.SIGKILL)
    setup.start_relay()
    publish_visits(setup, lobby, 20, 24)
    until(setup.drained, "the backlog never drained", setup.relay)

    delivered = setup.orchestra.delivered
    assert len(delivered) == 3 * 23
    stored = setup.stored_ids()
    # Every delivered event once; none of those Orchestra lost.
    assert sorted(stored) == expected_ids(delivered)
    created = sum(body["eventName"] == "VISIT_CREATE" for body in delivered)
    arrived, started, finished = setup.visit_figures()
    assert (arrived, started, finished) == (created, created, created)
