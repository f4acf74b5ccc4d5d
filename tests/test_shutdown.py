"""SIGTERM against a real server process: the request in flight is committed and answered before exit."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.embedded import asyncpg_dsn
from tests.serving import ServerProcess, server_process

TOKEN = "shutdown-ingest-token"
POLLS = 600


@pytest.fixture
def server(database_url: str, clean_db: AsyncEngine, tmp_path: Path) -> Iterator[ServerProcess]:
    with server_process(database_url, tmp_path, QUEUEPULSE_INGEST_TOKEN=TOKEN) as running:
        yield running


async def test_sigterm_drains_the_writer_and_answers_in_flight_requests(
    server: ServerProcess, database_url: str
) -> None:
    process, url = server.process, server.url
    await asyncio.to_thread(server.wait_ready)
    events = [
        {
            "event_id": f"e{i}",
            "type": "call.offered",
            "contact_id": f"c{i}",
            "queue": "borgerservice",
            "occurred_at": datetime.now(UTC).isoformat(),
        }
        for i in range(5)
    ]
    blocker = await asyncpg.connect(asyncpg_dsn(database_url))
    watcher = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        # Hold the table so the writer's COPY waits: the request is then certainly in flight.
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE events IN EXCLUSIVE MODE")
        client = httpx.AsyncClient(base_url=url, timeout=60)
        in_flight = asyncio.create_task(
            client.post("/v1/events", json=events, headers={"Authorization": f"Bearer {TOKEN}"})
        )
        for _ in range(POLLS):
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'COPY \"events\"%'"
            )
            if waiting:
                break
            await asyncio.sleep(0.05)
        assert waiting == 1

        process.send_signal(signal.SIGTERM)
        # Shutdown has begun once new connections are refused, or a kept-alive one is closed unanswered;
        # the process waits for our request.
        async with httpx.AsyncClient(base_url=url, timeout=5) as probe:
            for _ in range(POLLS):
                try:
                    await probe.get("/healthz")
                except (httpx.ConnectError, httpx.RemoteProtocolError):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("server kept accepting connections after SIGTERM")
        assert process.poll() is None
        assert not in_flight.done()

        await transaction.commit()
        response = await in_flight
        await client.aclose()
        assert response.status_code == 200
        assert response.json() == {"accepted": 5, "duplicates": 0}
        # uvicorn re-raises the SIGTERM it caught once shutdown is complete, so that is the exit status.
        assert await asyncio.to_thread(process.wait, 60) == -signal.SIGTERM
        log = server.log.read_text()
        assert "Application shutdown complete" in log
        stored = await watcher.fetchval("SELECT count(*) FROM events")
        assert stored == 5
    finally:
        await blocker.close()
        await watcher.close()
