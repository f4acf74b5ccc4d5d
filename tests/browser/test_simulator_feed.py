"""`queuepulse simulate` against a live service over HTTP: its events are accepted and counted."""

from __future__ import annotations

import subprocess
import sys

import httpx

from tests.browser.conftest import INGEST_TOKEN, READ_TOKEN, LiveServer


def test_simulate_feeds_a_running_instance(live_server: LiveServer) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "simulate",
            "--url",
            live_server.url,
            "--token",
            INGEST_TOKEN,
            "--backfill",
            "0.5",
            "--duration",
            "2",
            "--seed",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "backfilled" in result.stdout
    kpis = httpx.get(
        f"{live_server.url}/v1/kpis",
        params={"window": "today"},
        headers={"Authorization": f"Bearer {READ_TOKEN}"},
    ).json()
    phone, visit = kpis["channels"]["phone"], kpis["channels"]["visit"]
    assert phone["total"]["arrived"] > 0
    assert set(phone["queues"]) >= {"borgerservice"}
    assert visit["total"]["arrived"] > 0
    lobby = httpx.get(f"{live_server.url}/v1/lobby", headers={"Authorization": f"Bearer {READ_TOKEN}"}).json()
    assert lobby["recent_calls"], "the simulated desks called no ticket"


def test_simulate_stops_on_a_refused_token(live_server: LiveServer) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "simulate",
            "--url",
            live_server.url,
            "--token",
            "wrong",
            "--backfill",
            "0.2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "refused" in result.stderr
