"""A real Prometheus scraping a real uvicorn server of the app, with the shipped config and rules.

Prometheus (Debian's package) and the app each run as a child process on a free loopback port; the
Prometheus scrapes and evaluates rules every second into a temporary storage directory. Both are
stopped and the directory removed whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.metrics.conftest import PrometheusTools
from tests.metrics.helpers import arrival, left, parse, started, value
from tests.metrics.promql import (
    PROMETHEUS_CONFIG,
    RULES,
    dashboard_expressions,
    rule_expressions,
    with_grafana_variables,
)

pytestmark = pytest.mark.slow

INGEST_HEADERS = {"Authorization": "Bearer test-ingest-token"}
START_SECONDS = 60.0
# Scrapes and rule evaluations come every second; this bounds a wait for a handful of them.
SETTLE_SECONDS = 30.0
LIVE = "prom-a"  # live gauges against /v1/kpis
RANGE = "prom-b"  # the range-based recording rule


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def child(args: list[str], log: Path, **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A child process that is stopped (terminated, then killed) on the way out."""
    with log.open("wb") as output:
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, **kwargs)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = SETTLE_SECONDS) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(0.2)


class Prometheus:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def query(self, expr: str) -> list[dict[str, Any]]:
        response = await self.client.get("/api/v1/query", params={"query": expr})
        body = response.json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def scalar(self, expr: str) -> float | None:
        result = await self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None


def prometheus_config(directory: Path, app_port: int) -> Path:
    """The shipped config, pointed at the test instance, scraping and evaluating every second."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(RULES)]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "queuepulse"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{app_port}"]}]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def app_environment(settings: Settings, data_dir: Path) -> dict[str, str]:
    environment = {name: v for name, v in os.environ.items() if not name.startswith("QUEUEPULSE_")}
    assert settings.database_url is not None
    environment.update(
        QUEUEPULSE_DATABASE_URL=settings.database_url,
        QUEUEPULSE_INGEST_TOKEN="test-ingest-token",
        QUEUEPULSE_DATA_DIR=str(data_dir),
    )
    return environment


def kpi(kpis: dict[str, Any], queue: str) -> dict[str, Any]:
    found: dict[str, Any] = kpis["channels"]["phone"]["queues"][queue]
    return found


def offered_ratio(kpi: dict[str, Any]) -> float:
    denominator = kpi["started"] + kpi["left_after_short_abandon"] + kpi["waiting_past_target"]
    ratio: float = kpi["started_within_target"] / denominator
    return ratio


async def test_prometheus_sees_what_the_service_reports(
    prometheus_tools: PrometheusTools, settings: Settings, clean_db: AsyncEngine
) -> None:
    directory = Path(tempfile.mkdtemp(prefix="qp-prometheus-"))
    try:
        await _scenario(prometheus_tools, settings, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _scenario(tools: PrometheusTools, settings: Settings, directory: Path) -> None:
    async with served_and_scraped(tools, settings, directory) as (service, prom):
        await _checks(service, prom)


@contextlib.asynccontextmanager
async def served_and_scraped(
    tools: PrometheusTools, settings: Settings, directory: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Prometheus]]:
    """A uvicorn server of the app and a Prometheus scraping it every second, both ready: a client of
    each."""
    app_port, prometheus_port = free_port(), free_port()
    app_command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
    app_command += ["--host", "127.0.0.1", "--port", str(app_port), "--log-level", "warning"]
    prometheus_command = [
        str(tools.prometheus),
        f"--config.file={prometheus_config(directory, app_port)}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
        "--log.level=warn",
    ]
    with (
        # cwd: a directory without a developer's .env for the settings to pick up
        child(
            app_command, directory / "app.log", env=app_environment(settings, directory), cwd=directory
        ) as app,
        child(prometheus_command, directory / "prometheus.log", cwd=directory) as prometheus,
    ):
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{app_port}", timeout=10) as service,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{prometheus_port}", timeout=10) as prom_client,
        ):

            async def service_ready() -> bool:
                assert app.poll() is None, (directory / "app.log").read_text()
                with contextlib.suppress(httpx.TransportError):
                    return (await service.get("/readyz")).status_code == 200
                return False

            async def prometheus_ready() -> bool:
                assert prometheus.poll() is None, (directory / "prometheus.log").read_text()
                with contextlib.suppress(httpx.TransportError):
                    return (await prom_client.get("/-/ready")).status_code == 200
                return False

            await until(service_ready, "the app to be ready", START_SECONDS)
            await until(prometheus_ready, "Prometheus to be ready", START_SECONDS)
            yield service, Prometheus(prom_client)


async def _checks(service: httpx.AsyncClient, prom: Prometheus) -> None:
    async def post(body: list[dict[str, Any]]) -> None:
        response = await service.post("/v1/events", json=body, headers=INGEST_HEADERS)
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(body)

    async def exported(name: str, queue: str) -> float:
        samples = parse((await service.get("/metrics")).text)
        return value(samples, name, channel="phone", queue=queue)

    async def scraped(name: str, queue: str) -> float | None:
        return await prom.scalar(f'{name}{{channel="phone", queue="{queue}"}}')

    now = time.time()
    base = float(int(now) - 600)
    live_waits = {"a1": 20.0, "a2": 40.0, "a3": 60.0, "a4": 61.0, "a5": 120.0}
    first = [arrival("phone", contact, LIVE, base) for contact in (*live_waits, "a6", "a7")]
    first += [started("phone", contact, LIVE, base, wait) for contact, wait in live_waits.items()]
    first += [left("phone", "a6", LIVE, base, 30.0), left("phone", "a7", LIVE, base, 2.0)]
    first.append(arrival("phone", "a8", LIVE, now - 600))  # still waiting, long past the target
    # The range queue's counters must be scraped at 0 before its outcomes come, so increase() sees them all.
    first += [arrival("phone", f"b{i}", RANGE, base) for i in range(1, 5)]
    await post(first)

    async def range_queue_scraped() -> bool:
        return await scraped("queuepulse_contacts_started_total", RANGE) is not None

    await until(range_queue_scraped, "a scrape of the range queue's counters at zero")
    range_waits = {"b1": 30.0, "b2": 50.0, "b3": 100.0}
    second = [started("phone", contact, RANGE, base, wait) for contact, wait in range_waits.items()]
    second.append(left("phone", "b4", RANGE, base, 20.0))
    await post(second)

    # (a) The live service level Prometheus scraped equals /v1/kpis, in every window.
    async def live_queue_scraped() -> bool:
        name = "queuepulse_contacts_started_total"
        return await scraped(name, LIVE) == await exported(name, LIVE)

    await until(live_queue_scraped, "a scrape of the live queue")
    for window in ("15m", "1h", "today"):
        kpis = (await service.get("/v1/kpis", params={"window": window, "channel": "phone"})).json()
        level = await prom.scalar(f'queuepulse_service_level_ratio{{queue="{LIVE}", window="{window}"}}')
        assert level is not None
        assert level == pytest.approx(offered_ratio(kpi(kpis, LIVE)), rel=1e-12)
        assert round(level * 100, 2) == kpi(kpis, LIVE)["service_level_pct"]
    assert level == pytest.approx(3 / 7)

    # (b) The range-based recording rule gives within / (started + left after short abandon + waiting past).
    final = {
        name: await exported(name, RANGE)
        for name in (
            "queuepulse_contacts_started_total",
            "queuepulse_contacts_started_within_target_total",
            "queuepulse_contacts_left_after_short_abandon_total",
        )
    }

    async def range_outcomes_scraped() -> bool:
        return all([await scraped(name, RANGE) == count for name, count in final.items()])

    await until(range_outcomes_scraped, "a scrape of the range queue's outcomes")
    selector = f'{{channel="phone", queue="{RANGE}"}}'
    seen = await prom.scalar(f"timestamp(queuepulse_contacts_started_total{selector})")
    assert seen is not None

    async def scraped_again() -> bool:
        later = await prom.scalar(f"timestamp(queuepulse_contacts_started_total{selector})")
        return later is not None and later > seen

    await until(scraped_again, "the next scrape")
    committed = await prom.scalar(f"timestamp(queuepulse_contacts_started_total{selector})")
    assert committed is not None

    async def rule_evaluated() -> bool:
        evaluated = await prom.scalar(f"timestamp(queuepulse:service_level:ratio_1h{selector})")
        return evaluated is not None and evaluated > committed

    await until(rule_evaluated, "an evaluation of the recording rule after the outcomes")
    recorded = await prom.scalar(f"queuepulse:service_level:ratio_1h{selector}")
    kpis = (await service.get("/v1/kpis", params={"window": "1h", "channel": "phone"})).json()
    assert kpi(kpis, RANGE)["waiting_past_target"] == 0
    assert recorded == pytest.approx(offered_ratio(kpi(kpis, RANGE)), rel=1e-9)
    assert recorded == pytest.approx(2 / 4, rel=1e-9)

    # Every shipped expression runs on a real Prometheus, and every rule evaluates without error.
    assert await prom.scalar('up{job="queuepulse"}') == 1
    for _, expr in [*rule_expressions(), *dashboard_expressions()]:
        await prom.query(with_grafana_variables(expr))
    rules = (await prom.client.get("/api/v1/rules")).json()["data"]["groups"]
    evaluated = [rule for group in rules for rule in group["rules"]]
    assert len(evaluated) == len(list(rule_expressions()))
    assert [(rule["name"], rule.get("lastError")) for rule in evaluated if rule["health"] != "ok"] == []
