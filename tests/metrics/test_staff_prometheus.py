"""The staff series through a real Prometheus (Debian's) scraping a real uvicorn server every second:
agents by state and occupancy equal GET /v1/staff, and rate() of the seconds counter is the number of
agents in each state."""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.metrics.conftest import PrometheusTools
from tests.metrics.test_real_prometheus import INGEST_HEADERS, Prometheus, served_and_scraped, until

pytestmark = pytest.mark.slow

QUEUE = "prom-staff"
STATES = ("available", "ringing", "on_contact", "after_contact_work", "paused")
# Scrape-to-scrape gaps as Prometheus stamps them and as the app's clock sees them differ by the
# scheduling of one request: a few milliseconds on seconds.
RATE_TOLERANCE = 0.05


def staff_event(event_type: str, agent: str, at: float, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"{agent}:{event_type}:{at}",
        "type": event_type,
        "queue": QUEUE,
        "agent": agent,
        "occurred_at": datetime.fromtimestamp(at, UTC).isoformat(),
        **extra,
    }


def call_event(event_type: str, contact: str, at: float, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"{contact}:{event_type}",
        "type": event_type,
        "contact_id": contact,
        "queue": QUEUE,
        "occurred_at": datetime.fromtimestamp(at, UTC).isoformat(),
        **extra,
    }


async def test_prometheus_sees_the_staff_series(
    prometheus_tools: PrometheusTools, settings: Settings, clean_db: AsyncEngine
) -> None:
    directory = Path(tempfile.mkdtemp(prefix="qp-prometheus-staff-"))
    try:
        async with served_and_scraped(prometheus_tools, settings, directory) as (service, prom):
            await _checks(service, prom)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _checks(service: httpx.AsyncClient, prom: Prometheus) -> None:
    now = time.time()
    # a1 free, a2 on a break, a3 talking since 30 s ago: 3 staffed, 1 in each of three states.
    body = [
        staff_event("agent.logged_in", "a1", now - 60),
        staff_event("agent.logged_in", "a2", now - 60),
        staff_event("agent.logged_in", "a3", now - 60),
        staff_event("agent.paused", "a2", now - 50, reason="frokost"),
        call_event("call.offered", "c1", now - 40),
        call_event("call.answered", "c1", now - 30, agent="a3"),
    ]
    response = await service.post("/v1/events", json=body, headers=INGEST_HEADERS)
    assert response.status_code == 200, response.text
    selector = f'channel="phone", queue="{QUEUE}"'

    async def paused_scraped() -> bool:
        return await prom.scalar(f'queuepulse_agents{{{selector}, state="paused"}}') == 1

    await until(paused_scraped, "a scrape of the staff gauges")
    staff = (await service.get("/v1/staff", params={"channel": "phone", "queue": QUEUE})).json()
    figures = staff["channels"]["phone"]["queues"][QUEUE]
    for state in STATES:
        assert await prom.scalar(f'queuepulse_agents{{{selector}, state="{state}"}}') == figures[state], state
    assert await prom.scalar(f"sum(queuepulse_agents{{{selector}}})") == figures["staffed"] == 3
    for window in ("15m", "1h", "today"):
        shown = (await service.get("/v1/staff", params={"window": window})).json()
        occupancy = shown["channels"]["phone"]["queues"][QUEUE]["occupancy"]
        scraped = await prom.scalar(f'queuepulse_agent_occupancy_ratio{{{selector}, window="{window}"}}')
        # Both grow with the clock (a3's call goes on): equal up to the second between scrape and read.
        assert scraped == pytest.approx(occupancy, abs=0.01)

    # Ten seconds of scrapes: the counter grows by the agents in each state per second.
    started = time.time()
    await until(lambda: _later(started + 10), "ten seconds of scrapes", 20)
    expected = {"staffed": 3.0, "available": 1.0, "handling": 1.0, "paused": 1.0}
    for state, agents in expected.items():
        series = f'queuepulse_agent_seconds_total{{{selector}, state="{state}"}}'
        samples = (await prom.query(f"{series}[8s]"))[0]["values"]
        assert len(samples) >= 5, samples
        (first_at, first), (last_at, last) = samples[0], samples[-1]
        per_second = (float(last) - float(first)) / (float(last_at) - float(first_at))
        assert per_second == pytest.approx(agents, rel=RATE_TOLERANCE), (state, samples)
        # The README's PromQL: the average number of agents in the state.
        rate = await prom.scalar(f"rate({series}[8s])")
        assert rate == pytest.approx(agents, rel=RATE_TOLERANCE), state


async def _later(at: float) -> bool:
    return time.time() >= at
