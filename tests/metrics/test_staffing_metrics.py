"""The gauges of issue 16 on GET /metrics: agents needed (equal to /v1/staffing) and the lobby's expected
wait with today's score (equal to /v1/lobby/waits), computed at the scrape."""

from __future__ import annotations

from typing import Any

from app.settings import Settings
from loadtests.lobby_waits import QUEUE
from tests.core.test_staffing import LOADS, needed_by_simulation
from tests.metrics.helpers import labelled, parse, value
from tests.running import RunningApp
from tests.test_lobby_waits_api import midday  # noqa: F401  (the fixture)
from tests.test_staffing_api import (  # noqa: F401  (frozen: the fixture)
    HOURS,
    event,
    frozen,
    post_all,
    simulated_events,
)


async def test_agents_needed_gauges_equal_the_advice(frozen: tuple[RunningApp, float]) -> None:  # noqa: F811
    api, now = frozen
    needed = needed_by_simulation(LOADS[0], seed=11)
    await post_all(api, simulated_events("reference", now - HOURS * 3600, now, needed, seed=23))
    # Too few arrivals for advice: no series rather than a made-up number.
    await post_all(api, [event("call.offered", f"q{n}", "quiet", now - 600 + n) for n in range(5)])
    advice = (await api.client.get("/v1/staffing")).json()["queues"]["phone"]["reference"]["needed"]
    samples = parse((await api.client.get("/metrics")).text)
    for bound in ("low", "point", "high"):
        found = value(samples, "queuepulse_agents_needed", channel="phone", queue="reference", bound=bound)
        assert found == advice[bound]
    assert {labels["queue"] for labels in labelled(samples, "queuepulse_agents_needed")} == {"reference"}


async def test_expected_wait_gauges_equal_the_lobby_endpoint(midday: Any, settings: Settings) -> None:  # noqa: F811
    api, _ = midday
    body = (await api.client.get("/v1/lobby/waits", params={"queue": QUEUE})).json()
    samples = parse((await api.client.get("/metrics")).text)
    [found] = body["queues"]
    assert value(samples, "queuepulse_expected_wait_seconds", queue=QUEUE) == 600.0
    assert found["expected_wait"]["minutes"] == 10.0
    score = found["accuracy_today"]
    assert value(samples, "queuepulse_wait_estimates_scored", queue=QUEUE) == score["scored"]
    ratio = value(samples, "queuepulse_wait_estimate_inside_range_ratio", queue=QUEUE)
    assert round(ratio * 100, 1) == score["inside_range_pct"]
    error = value(samples, "queuepulse_wait_estimate_abs_error_seconds", queue=QUEUE)
    assert round(error / 60, 2) == score["mean_abs_error_minutes"]
