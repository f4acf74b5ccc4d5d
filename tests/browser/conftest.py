"""A real queuepulse over real HTTP (uvicorn in a subprocess, on its own database) and a real Chromium.

The server is a separate process so a test can stop it and start it again, as an outage would: the
pages must then say they are disconnected, and recover by themselves.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from app.db.migrate import run_migrations
from tests.browser.chromium import launch
from tests.conftest import PostgresServer

INGEST_TOKEN = "browser-ingest-token"
READ_TOKEN = "browser-read-token"
# Screens poll fast in tests, so "within two polls" is quick to see.
POLL_MS = 500
STARTUP_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LiveServer:
    """`uvicorn app.main:create_app` on a loopback port; stop() and start() are a real outage."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.env = {
            **os.environ,
            "QUEUEPULSE_DATABASE_URL": database_url,
            "QUEUEPULSE_DATA_DIR": str(workdir),
            "QUEUEPULSE_INGEST_TOKEN": INGEST_TOKEN,
            "QUEUEPULSE_READ_TOKEN": READ_TOKEN,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.sequence = 0

    def start(self) -> None:
        assert self.process is None, "already running"
        self.starts += 1
        log = (self.workdir / f"server-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=self.env,
            # Not the repository: a developer's .env there must not reach the server under test.
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"server not ready within {STARTUP_SECONDS} s: {self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def log_tail(self) -> str:
        return (self.workdir / f"server-{self.starts}.log").read_text(errors="replace")[-3000:]

    def post(self, *events: dict[str, Any]) -> None:
        response = httpx.post(
            f"{self.url}/v1/events",
            json=list(events),
            headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(events)

    def event(self, type_: str, contact: str, queue: str, **fields: Any) -> dict[str, Any]:
        """An event stamped now; waits are given as wait_seconds, so no test depends on the clock."""
        self.sequence += 1
        return {
            "event_id": f"browser-{self.sequence}-{time.time_ns()}",
            "type": type_,
            "contact_id": contact,
            "queue": queue,
            "occurred_at": datetime.now(UTC).isoformat(),
            **fields,
        }

    def screen(self, name: str, **params: str) -> str:
        query = {"interval": str(POLL_MS), "token": READ_TOKEN, **params}
        return f"{self.url}/screens/{name}?" + urlencode(
            {key: value for key, value in query.items() if value}
        )


@pytest.fixture(scope="module")
def live_server(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The service on a database of its own, so what the screens show is only what these tests post."""
    database_url = postgres_server.create_database(prefix="qp_browser")
    run_migrations(database_url)
    server = LiveServer(database_url, tmp_path_factory.mktemp("live-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        postgres_server.drop_database(database_url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Per module, so Playwright's own event loop is gone before any asyncio test runs.
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="da-DK")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
