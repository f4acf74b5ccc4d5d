"""Queueing formulas for staffing: Erlang C (M/M/n) and Erlang A (M/M/n+M, exponential patience).

Rates are per second, times in seconds. Both models are computed without factorials or powers, so
they stay finite for hundreds of agents:

- Erlang C from the Erlang B recursion B(k) = A·B(k-1) / (k + A·B(k-1)), then
  C = n·B / (n - A·(1 - B)), SL(t) = 1 - C·e^(-(n-A)·t/h), ASA = C·h / (n - A).
- Erlang A from its birth-death chain: k in the system, arrivals at rate λ, departures at
  min(k, n)·μ + max(k - n, 0)·θ (θ = 1 / mean patience). The probabilities below n come from the
  same Erlang B recursion; above n each state is the one before times λ / (nμ + jθ), and the chain is
  cut where the remaining tail (bounded by a geometric series, as the ratios only fall) is below
  TAIL_EPSILON of the mass. A caller arriving with i others queued ahead is answered when i + 1
  queue departures ahead of them have happened (each at rate nμ + mθ with m still ahead) before
  their own patience runs out (rate θ); the chance that happens within t is read off that small
  pure-death chain by uniformisation, a sum of positive terms only. This was chosen over the
  published closed form with incomplete gamma functions, whose terms cancel for large n and need
  their own careful series: here no step subtracts, and the error is the truncated mass, bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Model = Literal["erlang_a", "erlang_c"]
# Mass of the queue-length distribution left out by truncation, and of the Poisson weights of
# uniformisation: far below the third decimal the figures are quoted to.
TAIL_EPSILON = 1e-13
# The truncated chain is longer than this only when patience is vastly longer than the handle time and
# the agents are too few: a figure nobody should staff by.
MAX_QUEUE_STATES = 1_000_000


@dataclass(frozen=True, slots=True)
class Performance:
    """What a model predicts for `agents` agents.

    service_level: share of all arrivals answered within the threshold (an abandon is a miss; in
    Erlang C nobody abandons). service_level_answered: the same share among the answered.
    asa_seconds: mean wait of the answered; mean_wait_seconds: mean time in queue of all arrivals,
    abandoners' included. occupancy: the agents' busy share, answered load / agents.
    """

    model: Model
    agents: int
    offered_load: float
    p_wait: float
    service_level: float
    service_level_answered: float
    asa_seconds: float
    mean_wait_seconds: float
    p_abandon: float
    occupancy: float


def erlang_b(agents: int, load: float) -> float:
    """Blocking probability of M/M/n/n with `load` Erlangs, by the stable recursion."""
    if agents < 0 or load < 0:
        raise ValueError("agents and load must not be negative")
    blocking = 1.0
    for k in range(1, agents + 1):
        blocking = load * blocking / (k + load * blocking)
    return blocking


def _check(agents: int, arrival_rate: float, handle_seconds: float, threshold_seconds: float) -> None:
    if agents < 1:
        raise ValueError("agents must be at least 1")
    if arrival_rate < 0 or not math.isfinite(arrival_rate):
        raise ValueError("arrival_rate must be finite and not negative")
    if handle_seconds <= 0 or not math.isfinite(handle_seconds):
        raise ValueError("handle_seconds must be finite and positive")
    if threshold_seconds < 0:
        raise ValueError("threshold_seconds must not be negative")


def erlang_c(
    agents: int, arrival_rate: float, handle_seconds: float, threshold_seconds: float
) -> Performance:
    """Erlang C; with as many agents as Erlangs or fewer the queue grows without bound (SL 0, ASA inf)."""
    _check(agents, arrival_rate, handle_seconds, threshold_seconds)
    load = arrival_rate * handle_seconds
    if load >= agents:
        return Performance("erlang_c", agents, load, 1.0, 0.0, 0.0, math.inf, math.inf, 0.0, 1.0)
    blocking = erlang_b(agents, load)
    p_wait = agents * blocking / (agents - load * (1.0 - blocking))
    # Clamped: with nearly everyone waiting and no threshold, rounding can land a hair below 0.
    level = min(1.0, max(0.0, 1.0 - p_wait * math.exp(-(agents - load) * threshold_seconds / handle_seconds)))
    asa = p_wait * handle_seconds / (agents - load)
    return Performance("erlang_c", agents, load, p_wait, level, level, asa, asa, 0.0, load / agents)


def _queued_states(
    agents: int, arrival_rate: float, service_rate: float, theta: float
) -> tuple[list[float], float]:
    """Stationary probabilities of n, n+1, ... in the system, and that of fewer than n (no wait)."""
    load = arrival_rate / service_rate
    below = 1.0 / erlang_b(agents, load) - 1.0
    states = [1.0]
    total = 1.0
    term = 1.0
    j = 0
    while True:
        j += 1
        ratio = arrival_rate / (agents * service_rate + j * theta)
        term *= ratio
        states.append(term)
        total += term
        if ratio < 1.0 and term * ratio / (1.0 - ratio) < TAIL_EPSILON * (total + below):
            break
        if j > MAX_QUEUE_STATES:
            raise ValueError("patience too long for so few agents: the queue does not settle")
        if total > 1e250:
            # Only while the ratios still exceed 1: rescale so the sums stay finite.
            states = [value / total for value in states]
            below /= total
            term /= total
            total = 1.0
    return [value / (total + below) for value in states], below / (total + below)


def _poisson_weights(mean: float) -> list[float]:
    """Poisson(mean) probabilities from 0 up to where the remaining tail is below TAIL_EPSILON."""
    weights: list[float] = []
    cumulative = 0.0
    k = 0
    log_mean = math.log(mean) if mean > 0 else 0.0
    while True:
        weight = math.exp(k * log_mean - mean - math.lgamma(k + 1)) if mean > 0 else float(k == 0)
        weights.append(weight)
        cumulative += weight
        if k >= mean and (
            cumulative >= 1.0 - TAIL_EPSILON or (weight == 0.0 and k > mean + 40 * math.sqrt(mean))
        ):
            return weights
        k += 1


def _answered_within(queued: list[float], service: float, theta: float, threshold: float) -> float:
    """Share of all arrivals that queue and are answered within `threshold`: uniformised pure-death chain.

    Index m of the chain is the number still ahead; each uniformised step moves a caller at most one
    place, so only the first (steps + 1) places can be answered within the steps the Poisson weights
    reach, and the chain is cut there (with the uniform rate then taken over the kept places only).
    """
    size = len(queued)
    while True:
        uniform = service + size * theta
        weights = _poisson_weights(uniform * threshold)
        if size <= len(weights) + 1:
            break
        size = len(weights) + 1
    down = [(service + m * theta) / uniform for m in range(size)]
    stay = [1.0 - (service + (m + 1) * theta) / uniform for m in range(size)]
    vector = queued[:size]
    answered = 0.0
    result = 0.0
    last = len(weights) - 1
    for step, weight in enumerate(weights):
        result += weight * answered
        answered += vector[0] * service / uniform
        # Places beyond what the remaining steps can bring to the front are dropped as they go.
        keep = max(1, min(len(vector), last - step))
        vector = [vector[m] * stay[m] + vector[m + 1] * down[m + 1] for m in range(keep - 1)] + [
            vector[keep - 1] * stay[keep - 1] + (vector[keep] * down[keep] if keep < len(vector) else 0.0)
        ]
    return result


def erlang_a(
    agents: int,
    arrival_rate: float,
    handle_seconds: float,
    patience_seconds: float,
    threshold_seconds: float,
) -> Performance:
    """Erlang A (M/M/n+M); an infinite patience is Erlang C."""
    _check(agents, arrival_rate, handle_seconds, threshold_seconds)
    if patience_seconds <= 0 or math.isnan(patience_seconds):
        raise ValueError("patience_seconds must be positive")
    if math.isinf(patience_seconds):
        return erlang_c(agents, arrival_rate, handle_seconds, threshold_seconds)
    load = arrival_rate * handle_seconds
    if arrival_rate == 0:
        return Performance("erlang_a", agents, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    service_rate = 1.0 / handle_seconds
    theta = 1.0 / patience_seconds
    service = agents * service_rate
    queued, at_once = _queued_states(agents, arrival_rate, service_rate, theta)
    # From the mass below n, not 1 - the sum above it: no cancellation when nearly everyone waits.
    p_wait = 1.0 - at_once
    mean_queue = math.fsum(i * value for i, value in enumerate(queued))
    # Little's law on the queue, and abandons = θ·E[queue] per unit time.
    mean_wait = mean_queue / arrival_rate
    p_abandon = min(1.0, theta * mean_queue / arrival_rate)
    # With i ahead, answered with probability L_i = Π (nμ + mθ) / (nμ + (m+1)θ) and, when answered, after
    # a mean of Σ 1 / (nμ + (m+1)θ) (the exponentially tilted stages): E[W·1{answered}] = L_i·that sum.
    answered_wait = 0.0
    reach = 1.0
    stages = 0.0
    for i, value in enumerate(queued):
        reach *= (service + i * theta) / (service + (i + 1) * theta)
        stages += 1.0 / (service + (i + 1) * theta)
        answered_wait += value * reach * stages
    p_answered = max(1.0 - p_abandon, 0.0)
    within = min(1.0, max(0.0, at_once + _answered_within(queued, service, theta, threshold_seconds)))
    return Performance(
        "erlang_a",
        agents,
        load,
        p_wait,
        within,
        within / p_answered if p_answered > 0 else 0.0,
        answered_wait / p_answered if p_answered > 0 else math.inf,
        mean_wait,
        p_abandon,
        load * p_answered / agents,
    )


@dataclass(frozen=True, slots=True)
class Requirement:
    """The fewest agents meeting the goal and the occupancy cap; `bound` says which of the two decided."""

    agents: int
    bound: Literal["service_level", "occupancy", "no_load"]
    performance: Performance | None


def model_for(formula: str, patience_seconds: float | None) -> Model:
    """Which model reads a queue's target.

    "offered" counts abandons as misses: Erlang A's share of ALL arrivals answered within the threshold,
    when a patience is known. "answered" and "abandons_excluded" leave abandons out of the share; their
    model-consistent reading (Erlang A conditional on being answered) rewards abandonment (with short
    patience a handful of agents "meets" it while most callers hang up), so they are read by Erlang C,
    in which nobody hangs up: the conservative reading workforce tools use. With no patience known
    (no abandons seen) every formula is Erlang C, Erlang A's limit as patience grows without bound.
    """
    return "erlang_a" if formula == "offered" and patience_seconds is not None else "erlang_c"


def evaluate(
    agents: int,
    arrival_rate: float,
    handle_seconds: float,
    threshold_seconds: float,
    model: Model,
    patience_seconds: float | None,
) -> Performance:
    if model == "erlang_a" and patience_seconds is not None:
        return erlang_a(agents, arrival_rate, handle_seconds, patience_seconds, threshold_seconds)
    return erlang_c(agents, arrival_rate, handle_seconds, threshold_seconds)


def required_agents(
    arrival_rate: float,
    handle_seconds: float,
    threshold_seconds: float,
    goal_pct: float,
    formula: str,
    patience_seconds: float | None,
    max_occupancy_pct: float,
) -> Requirement:
    """The fewest agents whose predicted service level reaches `goal_pct` with occupancy at most the cap.

    Raises ValueError for a goal no finite staffing reaches (100 % or more) or a cap of 0 %.
    """
    if not 0 <= goal_pct < 100:
        raise ValueError("a goal of 100 % or more cannot be met by any number of agents")
    if not 0 < max_occupancy_pct <= 100:
        raise ValueError("max_occupancy_pct must be above 0 and at most 100")
    if arrival_rate == 0:
        return Requirement(0, "no_load", None)
    model = model_for(formula, patience_seconds)
    goal = goal_pct / 100.0
    cap = max_occupancy_pct / 100.0
    load = arrival_rate * handle_seconds

    def meets(agents: int) -> tuple[bool, Performance]:
        performance = evaluate(
            agents, arrival_rate, handle_seconds, threshold_seconds, model, patience_seconds
        )
        # A hair of slack so a goal met exactly (to the float) counts as met.
        ok = performance.service_level >= goal - 1e-12 and performance.occupancy <= cap + 1e-12
        return ok, performance

    # Lower bounds: Erlang C is stable only above the load; in Erlang A at most n/A of the arrivals can
    # be answered at all, so fewer than goal·A agents cannot reach the goal.
    if model == "erlang_c":
        low = max(1, math.floor(load) + 1, math.floor(load / cap))
    else:
        low = max(1, math.floor(goal * load))
    # Both the service level and the occupancy improve with every agent added (the property tests
    # check it), so a doubling search and then bisection find the fewest.
    high = low
    found = meets(high)
    while not found[0]:
        low = high + 1
        high = max(high * 2, high + 1)
        found = meets(high)
    best, performance = high, found[1]
    while low < best:
        middle = (low + best) // 2
        ok, candidate = meets(middle)
        if ok:
            best, performance = middle, candidate
        else:
            low = middle + 1
    # Which constraint decided: the service level if one agent fewer misses the goal, else the cap.
    bound: Literal["service_level", "occupancy"] = "service_level"
    if best > 1:
        fewer = evaluate(best - 1, arrival_rate, handle_seconds, threshold_seconds, model, patience_seconds)
        if fewer.service_level >= goal - 1e-12:
            bound = "occupancy"
    return Requirement(best, bound, performance)
