"""The counters across a restart, on a real Prometheus: `increase()` over a range holding the restart gives
what happened in it, each outcome once.

The service (`queuepulse run`) runs since "yesterday": it counts yesterday's calls and today's, then
restarts on the same database and port. Its start-up replay reads today's events only (yesterday's are
made yesterday's in the store while it is down), so the counters come back lower than they were and
Prometheus sees a counter reset, as after any restart of a long-running instance. A counter that came
back holding the replayed calls would have them added a second time; one that starts from zero adds
exactly the calls answered after the restart.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.metrics.conftest import PrometheusTools
from tests.metrics.helpers import arrival, parse, started, value
from tests.metrics.promql import ROOT
from tests.metrics.test_real_prometheus import (
    INGEST_HEADERS,
    START_SECONDS,
    Prometheus,
    app_environment,
    child,
    free_port,
    prometheus_config,
    until,
)

pytestmark = pytest.mark.slow

QUEUE = "restart-queue"
SELECTOR = f'{{channel="phone", queue="{QUEUE}"}}'
STARTED = "queuepulse_contacts_started_total"
DAY = 24 * 3600.0
YESTERDAY = [f"y{i}" for i in range(3)]  # answered yesterday, before the restart
TODAY = [f"t{i}" for i in range(5)]  # answered today, before the restart
AFTER = [f"m{i}" for i in range(2)]  # offered before the restart, answered after it
WAIT = 20.0


async def test_increase_over_a_restart_counts_each_outcome_once(
    prometheus_tools: PrometheusTools, settings: Settings, clean_db: AsyncEngine
) -> None:
    directory = Path(tempfile.mkdtemp(prefix="qp-restart-"))
    try:
        await _scenario(prometheus_tools, settings, clean_db, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def service(settings: Settings, directory: Path, port: int, name: str) -> Iterator[Any]:
    """`queuepulse run` of this tree (PYTHONPATH), from a directory without a developer's .env."""
    environment = {**app_environment(settings, directory), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "app.cli", "run", "--port", str(port)]
    with child(command, directory / f"{name}.log", env=environment, cwd=directory) as process:
        yield process


async def _scenario(tools: PrometheusTools, settings: Settings, engine: AsyncEngine, directory: Path) -> None:
    app_port, prometheus_port = free_port(), free_port()
    prometheus_command = [
        str(tools.prometheus),
        f"--config.file={prometheus_config(directory, app_port)}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
        "--log.level=warn",
    ]
    now = time.time()
    yesterday, today = now - 2 * DAY, now - 600.0
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{app_port}", timeout=10) as app,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{prometheus_port}", timeout=10) as prom_client,
    ):
        prom = Prometheus(prom_client)

        async def post(body: list[dict[str, Any]]) -> None:
            response = await app.post("/v1/events", json=body, headers=INGEST_HEADERS)
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == len(body)

        async def exported() -> float:
            return value(parse((await app.get("/metrics")).text), STARTED, channel="phone", queue=QUEUE)

        async def scraped_as_exported() -> bool:
            return await prom.scalar(f"{STARTED}{SELECTOR}") == await exported()

        async def ready(process: Any, log: str) -> bool:
            assert process.poll() is None, (directory / log).read_text()
            with contextlib.suppress(httpx.TransportError):
                return (await app.get("/readyz")).status_code == 200
            return False

        with child(prometheus_command, directory / "prometheus.log", cwd=directory) as prometheus:

            async def prometheus_ready() -> bool:
                assert prometheus.poll() is None, (directory / "prometheus.log").read_text()
                with contextlib.suppress(httpx.TransportError):
                    return (await prom_client.get("/-/ready")).status_code == 200
                return False

            await until(prometheus_ready, "Prometheus to be ready", START_SECONDS)

            with service(settings, directory, app_port, "before") as before:
                await until(lambda: ready(before, "before.log"), "the service to be ready", START_SECONDS)
                offered = [arrival("phone", c, QUEUE, yesterday) for c in YESTERDAY]
                offered += [arrival("phone", c, QUEUE, today) for c in [*TODAY, *AFTER]]
                await post(offered)
                # Scraped at zero first, so the range holds the counter's whole rise.
                await until(scraped_as_exported, "a scrape of the counter at zero")
                assert await exported() == 0
                answered = [started("phone", c, QUEUE, yesterday, WAIT) for c in YESTERDAY]
                answered += [started("phone", c, QUEUE, today, WAIT) for c in TODAY]
                await post(answered)
                assert await exported() == len(YESTERDAY) + len(TODAY)
                await until(scraped_as_exported, "a scrape of the answers before the restart")

            # While it is down the day turns: yesterday's calls were received yesterday.
            async with engine.begin() as connection:
                aged = await connection.execute(
                    text("UPDATE events SET received_at = occurred_at WHERE contact_id LIKE 'y%'")
                )
                assert aged.rowcount == 2 * len(YESTERDAY)

            with service(settings, directory, app_port, "after") as after:
                await until(lambda: ready(after, "after.log"), "the restarted service", START_SECONDS)
                await until(scraped_as_exported, "a scrape of the restarted service")
                await post([started("phone", c, QUEUE, today, WAIT) for c in AFTER])
                await until(scraped_as_exported, "a scrape of the answers after the restart")
                counted_after = await exported()

                samples = await prom.query(f"{STARTED}{SELECTOR}[1h]")
                assert len(samples) == 1
                points = [(float(at), float(count)) for at, count in samples[0]["values"]]
                last_at = points[-1][0]
                increase = await prom.client.get(
                    "/api/v1/query",
                    params={"query": f"increase({STARTED}{SELECTOR}[1h])", "time": f"{last_at:.3f}"},
                )
                result = increase.json()["data"]["result"]

    counted = len(YESTERDAY) + len(TODAY) + len(AFTER)
    # Up to the last sample, from a first sample of 0: nothing for increase() to extrapolate.
    assert len(result) == 1
    assert float(result[0]["value"][1]) == pytest.approx(counted, rel=1e-9)
    # The raw samples, read as Prometheus reads a counter: a fall is a reset, after which all counts.
    pairs = [(earlier, later) for (_, earlier), (_, later) in itertools.pairwise(points)]
    rises = [later - earlier if later >= earlier else later for earlier, later in pairs]
    assert points[0][1] == 0
    assert sum(later < earlier for earlier, later in pairs) == 1
    assert sum(rises) == counted
    # The new process counts what it saw happen: the answers after the restart, no replayed one.
    assert counted_after == len(AFTER)
