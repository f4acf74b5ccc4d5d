"""The staff series on GET /metrics: agents by state and occupancy equal GET /v1/staff, and the seconds
counter grows by exactly the agent-seconds that went by between scrapes, midnight included."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.asterisk.test_reentry import Clock
from tests.metrics.helpers import Samples, event, parse, value
from tests.running import RunningApp, running_app

QUEUE = "staff-metrics"
OTHER = "staff-other"
STATES = ("available", "ringing", "on_contact", "after_contact_work", "paused")
SECONDS = ("staffed", "available", "handling", "paused")


def staff_event(event_type: str, agent: str, queue: str, at: float, **extra: Any) -> dict[str, Any]:
    body = event(event_type, agent, queue, at, agent=agent, **extra)
    body["event_id"] = f"{agent}:{event_type}:{queue}:{at}"
    del body["contact_id"]
    return body


async def scrape(api: RunningApp) -> Samples:
    response = await api.client.get("/metrics")
    assert response.status_code == 200, response.text
    return parse(response.text)


def seconds(samples: Samples, queue: str) -> dict[str, float]:
    return {
        state: value(samples, "queuepulse_agent_seconds_total", channel="phone", queue=queue, state=state)
        for state in SECONDS
    }


async def test_agent_gauges_equal_the_staff_route_and_seconds_count_exactly(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    zone = ZoneInfo(settings.time_zone)
    midnight = datetime.combine(datetime.now(zone).date() - timedelta(days=1), datetime.min.time(), zone)
    base = (midnight + timedelta(hours=23, minutes=50)).timestamp()
    clock = Clock(base)
    logins = [
        staff_event("agent.logged_in", "a1", QUEUE, base - 600),
        staff_event("agent.logged_in", "a1", OTHER, base - 600),
        staff_event("agent.logged_in", "a2", QUEUE, base - 600),
        staff_event("agent.logged_in", "a3", QUEUE, base - 600),
    ]
    # Sent after the first scrape, before the second: a3 pauses at +30 s, a2 answers a call at +60 s.
    later = [
        staff_event("agent.paused", "a3", QUEUE, base + 30, reason="frokost"),
        event("call.offered", "c1", QUEUE, base + 50),
        event("call.answered", "c1", QUEUE, base + 60, agent="a2"),
    ]
    async with running_app(settings, clock) as api:
        assert (await api.post(logins)).status_code == 200
        first = await scrape(api)
        # The first scrape starts the counters at zero.
        assert seconds(first, QUEUE) == dict.fromkeys(SECONDS, 0.0)

        clock.now = base + 100
        assert (await api.post(later)).status_code == 200
        second = await scrape(api)
        staff = (await api.client.get("/v1/staff", params={"window": "15m"})).json()
        queue = staff["channels"]["phone"]["queues"][QUEUE]
        for state in STATES:
            shown = value(second, "queuepulse_agents", channel="phone", queue=QUEUE, state=state)
            assert shown == queue[state], state
        assert (queue["staffed"], queue["available"], queue["on_contact"], queue["paused"]) == (3, 1, 1, 1)
        for window in ("15m", "1h", "today"):
            figures = (await api.client.get("/v1/staff", params={"window": window})).json()
            occupancy = figures["channels"]["phone"]["queues"][QUEUE]["occupancy"]
            exported = value(
                second, "queuepulse_agent_occupancy_ratio", channel="phone", queue=QUEUE, window=window
            )
            assert round(exported, 4) == occupancy
        # Over the 100 s: staffed a1 50 (half of his time is OTHER's) + a2 100 + a3 100; available a1 50
        # + a2 60 + a3 30; handling a2 40; paused a3 70.
        assert seconds(second, QUEUE) == {
            "staffed": 250.0,
            "available": 140.0,
            "handling": 40.0,
            "paused": 70.0,
        }
        assert seconds(second, OTHER) == {"staffed": 50.0, "available": 50.0, "handling": 0.0, "paused": 0.0}

        # 1000 s on, across local midnight (at +600 s), in the same states all along.
        clock.now = base + 1100
        third = await scrape(api)
        before, after = seconds(second, QUEUE), seconds(third, QUEUE)
        grown = {state: after[state] - before[state] for state in SECONDS}
        assert grown == {"staffed": 2500.0, "available": 500.0, "handling": 1000.0, "paused": 1000.0}
        assert value(third, "queuepulse_agents", channel="phone", queue=QUEUE, state="paused") == 1
