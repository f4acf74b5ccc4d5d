"""The Prometheus gauges of issue 16, computed at scrape time: agents needed per queue (the live advice of
app/core/staffing.py) and the lobby's expected wait with its own score for today (app/core/waits.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily

from app.core.clock import day_bounds, local_date
from app.core.events import Channel
from app.core.staffing import live_advice
from app.core.waits import WaitLedger

if TYPE_CHECKING:
    from prometheus_client import Metric

    from app.core.window import Window

BOUNDS = ("low", "point", "high")


def agents_needed(
    window: Window, now: float, max_occupancy_pct: float, keys: Sequence[tuple[Channel, str]]
) -> Iterator[Metric]:
    """queuepulse_agents_needed{channel,queue,bound}: the advice's range and point; no series for a queue
    whose advice is withheld (too few arrivals, no handle time): no number rather than a made-up one."""
    needed = GaugeMetricFamily(
        "queuepulse_agents_needed",
        "Agents (desks) the queue needs now to meet its own target at the current arrival rate: bound low "
        "and high are the ends of the rate's 95 % interval, point the measured rate (GET /v1/staffing). "
        "Absent when the data is too thin.",
        labels=["channel", "queue", "bound"],
    )
    exported = set(keys)
    for key, advice in live_advice(window, now, max_occupancy_pct).items():
        if key not in exported or advice.needed is None:
            continue
        channel, queue = key
        for bound in BOUNDS:
            needed.add_metric([channel.value, queue, bound], getattr(advice.needed, bound))
    yield needed


def lobby_waits(ledger: WaitLedger | None, window: Window, now: float, queues: set[str]) -> Iterator[Metric]:
    """The expected wait per visit queue now, and today's score of the estimates given."""
    expected = GaugeMetricFamily(
        "queuepulse_expected_wait_seconds",
        "Expected wait of a ticket issued now (GET /v1/lobby/waits); absent when there is too little data.",
        labels=["queue"],
    )
    scored = GaugeMetricFamily(
        "queuepulse_wait_estimates_scored",
        "Tickets issued today given a wait estimate and since called (the estimate scored).",
        labels=["queue"],
    )
    inside = GaugeMetricFamily(
        "queuepulse_wait_estimate_inside_range_ratio",
        "Share of today's scored estimates whose actual wait fell inside the announced range (0..1).",
        labels=["queue"],
    )
    error = GaugeMetricFamily(
        "queuepulse_wait_estimate_abs_error_seconds",
        "Mean absolute error of today's scored estimates against the actual waits.",
        labels=["queue"],
    )
    if ledger is not None:
        today: date = local_date(now, window.tz)
        since, until = day_bounds(today, window.tz)
        scores = ledger.score(since, until)
        # Only the exported queues: QUEUEPULSE_MAX_QUEUES bounds these series as it does the others.
        for queue in sorted(queues):
            estimate = ledger.estimate(queue, now)
            if estimate.seconds is not None:
                expected.add_metric([queue], estimate.seconds)
            score = scores.get(queue)
            if score is None or not score.scored:
                continue
            scored.add_metric([queue], score.scored)
            inside.add_metric([queue], score.inside_ratio or 0.0)
            error.add_metric([queue], score.mean_abs_error_seconds or 0.0)
    yield expected
    yield scored
    yield inside
    yield error
