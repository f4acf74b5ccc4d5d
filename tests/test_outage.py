"""Database outages: ingest answers 503 (never 2xx), /readyz says not ready, reads keep serving the window,
and the service recovers by itself when PostgreSQL comes back."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.db.embedded import asyncpg_dsn, normalise_url
from app.db.migrate import run_migrations
from app.settings import Settings
from tests.conftest import PostgresServer
from tests.running import RunningApp, running_app

RECOVERY_ATTEMPTS = 300


@pytest.fixture(scope="module")
def stoppable_server(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """An embedded server the test may stop: the session's, or one of its own beside an external server."""
    if postgres_server.pgdata is not None:
        yield postgres_server
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    root = Path(tempfile.mkdtemp(prefix="qp-out-", dir="/tmp"))
    server: Any = pgserver.get_server(root / "pg", cleanup_mode="delete")
    try:
        yield PostgresServer(admin_url=normalise_url(str(server.get_uri())), pgdata=root / "pg")
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def outage_settings(stoppable_server: PostgresServer, tmp_path: Path) -> Iterator[Settings]:
    url = stoppable_server.create_database(prefix="qp_outage")
    run_migrations(url)
    yield Settings(
        _env_file=None,
        database_url=url,
        data_dir=tmp_path,
        ingest_token="test-ingest-token",
        admin_token="test-admin-token",
    )
    stoppable_server.drop_database(url)


@pytest.fixture
async def outage_api(outage_settings: Settings) -> AsyncIterator[RunningApp]:
    async with running_app(outage_settings) as running:
        yield running


def _event(index: int) -> dict[str, Any]:
    return {
        "event_id": f"e{index}",
        "type": "call.offered",
        "contact_id": f"c{index}",
        "queue": "borgerservice",
        "occurred_at": datetime.now(UTC).isoformat(),
    }


async def _stored_ids(settings: Settings) -> list[str]:
    assert settings.database_url is not None
    connection = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        return [row[0] for row in await connection.fetch("SELECT event_id FROM events ORDER BY id")]
    finally:
        await connection.close()


def _arrived(kpis: dict[str, Any]) -> int:
    arrived: int = kpis["channels"]["phone"]["total"]["arrived"]
    return arrived


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_ingest_refuses_while_down_and_recovers_without_restart(
    outage_api: RunningApp, outage_settings: Settings, stoppable_server: PostgresServer, mode: str
) -> None:
    api = outage_api
    assert (await api.post(_event(1))).status_code == 200
    await asyncio.to_thread(stoppable_server.stop, mode)
    try:
        for index in (2, 3):
            refused = await api.post(_event(index))
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "1"
        readiness = await api.client.get("/readyz")
        assert readiness.status_code == 503
        assert readiness.json()["status"] == "database unavailable"
        # The window still answers from memory.
        assert _arrived(await api.kpis("today")) == 1
        assert (await api.client.get("/v1/targets")).status_code == 200
    finally:
        await asyncio.to_thread(stoppable_server.start)

    # The client retries what got no 2xx; the service recovers on its own.
    for _ in range(RECOVERY_ATTEMPTS):
        retried = await api.post(_event(2))
        if retried.status_code == 200:
            break
        assert retried.status_code == 503
        await asyncio.sleep(0.1)
    assert retried.json() == {"accepted": 1, "duplicates": 0}
    assert (await api.client.get("/readyz")).status_code == 200
    assert _arrived(await api.kpis("today")) == 2
    assert await _stored_ids(outage_settings) == ["e1", "e2"]


async def test_window_rebuilt_after_failed_commits_matches_a_restart(
    outage_settings: Settings, stoppable_server: PostgresServer
) -> None:
    # One frozen instant for both processes' snapshots, so even the time-dependent figures must agree.
    now = time.time()
    async with running_app(outage_settings, clock=lambda: now) as api:
        await _rebuilt_after_failed_commits(api, outage_settings, stoppable_server, now)


async def _rebuilt_after_failed_commits(
    api: RunningApp, outage_settings: Settings, stoppable_server: PostgresServer, now: float
) -> None:
    await api.post([_event(i) for i in range(5)])
    await asyncio.to_thread(stoppable_server.stop, "immediate")
    try:
        assert (await api.post(_event(5))).status_code == 503
    finally:
        await asyncio.to_thread(stoppable_server.start)
    writer = api.services.writer
    assert writer.stats.errors >= 1
    before = api.services.window.generation
    for _ in range(RECOVERY_ATTEMPTS):
        if (await api.post(_event(5))).status_code == 200:
            break
        await asyncio.sleep(0.1)
    # The healer rebuilds the window from the database once it answers again (its state is replaced).
    for _ in range(RECOVERY_ATTEMPTS):
        if api.services.window.generation != before:
            break
        await asyncio.sleep(0.1)
    assert api.services.window.generation != before
    live = await api.kpis("today")
    async with running_app(outage_settings, clock=lambda: now) as fresh:
        recomputed = await fresh.kpis("today")
    assert _arrived(live) == _arrived(recomputed) == 6
    assert live == recomputed
