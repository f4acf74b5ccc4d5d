"""Live staffing advice: thin data, the rate interval, and the estimator measured against a simulated queue.

The simulation is an M/M/c+M queue (Poisson arrivals, exponential handle times and patience, first come
first served), seeded. For each load level it first finds, over a long stretch, the fewest agents with
which the simulated queue met its target (and the occupancy cap); then, staffed with that many, it reads
the figures the live window would show at each hour and checks that the advice's range contains them.
"""

from __future__ import annotations

import bisect
import heapq
import random
from dataclasses import dataclass

import pytest

from app.core.staffing import (
    MIN_ARRIVALS,
    QueueInputs,
    WindowFigures,
    advise,
    estimate_patience,
    rate_interval,
)

SHORT_ABANDON = 5.0
CAP_PCT = 85.0
LOOKBACK = 6 * 3600.0


@dataclass(frozen=True)
class Contact:
    arrived: float
    started: float | None
    left: float | None
    finished: float | None


def simulate(
    rate: float, handle: float, patience: float, agents: int, hours: float, seed: int
) -> list[Contact]:
    """FCFS with servers taken in arrival order: each caller is answered when the earliest server frees
    (after everyone ahead), unless their patience runs out first, in which case they take no server."""
    rng = random.Random(seed)
    free = [0.0] * agents
    contacts: list[Contact] = []
    at = 0.0
    end = hours * 3600
    while True:
        at += rng.expovariate(rate)
        if at > end:
            return contacts
        start = max(at, free[0])
        willing = rng.expovariate(1 / patience)
        if start - at > willing:
            contacts.append(Contact(at, None, at + willing, None))
            continue
        finish = start + rng.expovariate(1 / handle)
        heapq.heapreplace(free, finish)
        contacts.append(Contact(at, start, None, finish))


def long_run(contacts: list[Contact], agents: int, threshold: float, hours: float) -> tuple[float, float]:
    """(service level by the "offered" formula, occupancy) over the whole stretch."""
    within = sum(1 for c in contacts if c.started is not None and c.started - c.arrived <= threshold)
    started = sum(1 for c in contacts if c.started is not None)
    left_late = sum(1 for c in contacts if c.left is not None and c.left - c.arrived > SHORT_ABANDON)
    busy = sum(c.finished - c.started for c in contacts if c.started is not None and c.finished is not None)
    return within / (started + left_late), busy / (agents * hours * 3600)


def figures(contacts: list[Contact], now: float, seconds: float) -> WindowFigures:
    """What the live window shows for (now - seconds, now]: each outcome counted when it happened."""

    def inside(at: float | None) -> bool:
        return at is not None and now - seconds < at <= now

    # Contacts are in arrival order; none of these waits and handle times lasts LOOKBACK.
    first = bisect.bisect_left([c.arrived for c in contacts], now - seconds - LOOKBACK)
    contacts = [c for c in contacts[first:] if c.arrived <= now]
    starts = [c.started - c.arrived for c in contacts if c.started is not None and inside(c.started)]
    leaves = [c.left - c.arrived for c in contacts if c.left is not None and inside(c.left)]
    handles = [
        c.finished - c.started
        for c in contacts
        if c.finished is not None and c.started is not None and inside(c.finished)
    ]
    return WindowFigures(
        seconds=seconds,
        arrived=sum(1 for c in contacts if inside(c.arrived)),
        started=len(starts),
        left=len(leaves),
        left_after_short=sum(1 for wait in leaves if wait > SHORT_ABANDON),
        avg_wait_seconds=sum(starts) / len(starts) if starts else None,
        avg_handle_seconds=sum(handles) / len(handles) if handles else None,
    )


@dataclass(frozen=True)
class Load:
    name: str
    rate: float  # per second
    handle: float
    patience: float
    threshold: float
    goal_pct: float


LOADS = [
    # The published reference: 100 calls per 30 minutes, 180 s, 80 % in 20 s, 5 minutes' patience.
    Load("reference", 100 / 1800, 180.0, 300.0, 20.0, 80.0),
    # The default phone target on the demo feed's borgerservice queue.
    Load("phone", 92 / 3600, 160.0, 150.0, 60.0, 90.0),
    # A larger queue, where the occupancy cap decides.
    Load("large", 400 / 3600, 240.0, 200.0, 60.0, 90.0),
    # A lobby: few arrivals in 15 minutes, so the rate comes from the hour.
    Load("lobby", 42 / 3600, 250.0, 2400.0, 300.0, 70.0),
]
NEED_HOURS = 400.0
ADVICE_HOURS = 48


def needed_by_simulation(load: Load, seed: int) -> int:
    """The fewest agents with which the long simulated stretch met the goal within the occupancy cap."""

    def met(agents: int) -> bool:
        contacts = simulate(load.rate, load.handle, load.patience, agents, NEED_HOURS, seed)
        level, occupancy = long_run(contacts, agents, load.threshold, NEED_HOURS)
        return level >= load.goal_pct / 100 and occupancy <= CAP_PCT / 100

    # Well below the need (at most agents/load of the callers can be answered at all), so the search
    # starts from a staffing that fails, checked, and steps up to the first that meets the target.
    agents = max(1, int(0.7 * load.rate * load.handle))
    assert not met(agents)
    while not met(agents):
        agents += 1
    return agents


@pytest.mark.parametrize("load", LOADS, ids=lambda load: load.name)
def test_advice_range_contains_the_agents_the_simulation_needed(load: Load) -> None:
    needed = needed_by_simulation(load, seed=11)
    contacts = simulate(load.rate, load.handle, load.patience, needed, ADVICE_HOURS, seed=23)
    covered = 0
    errors = []
    samples = range(2, ADVICE_HOURS)
    for hour in samples:
        now = hour * 3600.0
        inputs = QueueInputs(
            threshold_seconds=load.threshold,
            goal_pct=load.goal_pct,
            formula="offered",
            recent=figures(contacts, now, 900.0),
            hour=figures(contacts, now, 3600.0),
            backlog=0,
        )
        advice = advise(inputs, CAP_PCT)
        assert advice.needed is not None, advice.reason
        assert advice.needed.low <= advice.needed.point <= advice.needed.high
        covered += advice.needed.low <= needed <= advice.needed.high
        errors.append(advice.needed.point - needed)
    coverage = covered / len(samples)
    # The range is a 95 % interval for the rate alone; handle time and patience are estimated from one
    # hour too, which the range does not cover, so a little less than 95 % is the honest expectation.
    assert coverage >= 0.85, f"{load.name}: range held the simulated need in {coverage:.0%} of hours"
    # The point estimate errs by the rate's noise (about ±14 % per sd on 50 calls) but not one way.
    assert abs(sum(errors) / len(errors)) <= 1.0


def test_the_lobby_rate_rests_on_the_hour_when_fifteen_minutes_are_too_few() -> None:
    load = LOADS[-1]
    contacts = simulate(load.rate, load.handle, load.patience, 5, 3, seed=5)
    recent, hour = figures(contacts, 3 * 3600.0, 900.0), figures(contacts, 3 * 3600.0, 3600.0)
    assert recent.arrived < MIN_ARRIVALS <= hour.arrived
    advice = advise(QueueInputs(300.0, 70.0, "offered", recent, hour, 0), CAP_PCT)
    assert advice.inputs["rate_window"] == "1h"
    assert advice.inputs["arrivals"] == hour.arrived - (hour.left - hour.left_after_short)


def window(
    arrived: int,
    *,
    seconds: float = 900.0,
    started: int | None = None,
    left: int = 0,
    left_after_short: int = 0,
    wait: float | None = 10.0,
    handle: float | None = 180.0,
) -> WindowFigures:
    return WindowFigures(
        seconds, arrived, arrived if started is None else started, left, left_after_short, wait, handle
    )


def test_too_few_arrivals_give_no_advice_and_say_why() -> None:
    advice = advise(QueueInputs(60.0, 90.0, "offered", window(5), window(12, seconds=3600.0), 3), CAP_PCT)
    assert advice.needed is None
    assert advice.reason == f"12 arrivals in the last hour; advice needs at least {MIN_ARRIVALS}"
    # The backlog is shown whether or not there is advice.
    assert advice.backlog == 3
    assert advice.as_dict()["staffed"] is None


def test_no_handle_time_gives_no_advice_and_says_why() -> None:
    recent, hour = window(40, handle=None), window(120, seconds=3600.0, handle=None)
    advice = advise(QueueInputs(60.0, 90.0, "offered", recent, hour, 0), CAP_PCT)
    assert advice.needed is None
    assert advice.reason == "no contact finished in the last hour to give a handle time"


def test_backlog_is_not_folded_into_the_needed_agents() -> None:
    recent, hour = window(50), window(200, seconds=3600.0)
    calm = advise(QueueInputs(20.0, 80.0, "answered", recent, hour, 0), CAP_PCT)
    piled = advise(QueueInputs(20.0, 80.0, "answered", recent, hour, 25), CAP_PCT)
    assert calm.needed == piled.needed
    assert piled.backlog == 25


def test_the_reference_rate_gives_the_reference_staffing_at_its_point() -> None:
    # 50 arrivals in 15 minutes = 100 per 30 minutes; no abandons, so Erlang C: 14 agents for 80 % in 20 s.
    advice = advise(QueueInputs(20.0, 80.0, "offered", window(50), window(200, seconds=3600.0), 0), CAP_PCT)
    assert advice.needed is not None
    assert advice.needed.point == 14
    assert advice.needed.low < 14 < advice.needed.high
    assert advice.inputs["model"] == "erlang_c"
    assert advice.inputs["arrivals_per_hour"] == 200.0


def test_the_rate_interval_is_about_two_standard_deviations() -> None:
    low, point, high = rate_interval(50, 900.0)
    assert point == pytest.approx(50 / 900)
    # ±1.96·sqrt(50) arrivals ≈ ±28 %; the score interval is shifted up by z²/2 ≈ 1.9 arrivals.
    assert (high - low) * 900 / 2 == pytest.approx(1.96 * (50 + 1.96**2 / 4) ** 0.5, rel=1e-3)
    assert low * 900 == pytest.approx(37.9, abs=0.1)
    assert high * 900 == pytest.approx(65.9, abs=0.1)
    # Never below zero, even with no arrivals at all.
    assert rate_interval(0, 900.0)[0] == 0.0


def test_patience_is_total_wait_over_abandons() -> None:
    hour = window(110, seconds=3600.0, started=100, left=12, left_after_short=10, wait=30.0)
    # ASA 30 s over the 110 that were answered or abandoned after the short limit, 10 abandons.
    assert estimate_patience(hour) == pytest.approx(30.0 * 110 / 10)
    assert estimate_patience(window(100, left=3, left_after_short=0)) is None
