"""Live staffing advice for one queue: agents needed now, as a range, from what the window has seen.

The estimators (what each figure rests on):

- Arrival rate: contacts that arrived in the last 15 minutes, less the short abandons (wrong numbers,
  which take no agent time), over 15 minutes. When those are fewer than MIN_ARRIVALS the last hour is
  used instead; fewer there too and there is no advice.
- Handle time: the last hour's mean handle time (start to finish of served contacts); none, no advice.
- Patience (exponential, Erlang A's θ⁻¹): abandons happen at rate θ per waiting contact, so the
  maximum-likelihood estimate is total time spent waiting / abandons, which is ASA / P(abandon) with
  ASA the mean wait of all (answered and abandoned) and P(abandon) = abandons / (answered + abandons),
  over the last hour and counting only abandons after the short-abandon limit. The window keeps the
  waits of answered contacts only, so the abandoners are taken to have waited as long on average as
  the answered; no abandons means no evidence of impatience, and Erlang C is used.
- Uncertainty: arrivals over a window are Poisson, so the rate is given with a 95 % interval, the
  score (Wilson) interval for a Poisson count N: (N + z²/2 ± z·sqrt(N + z²/4)) / T with z = 1.96, which
  is about N ± 1.96·sqrt(N) for large N (50 calls: ±28 %, i.e. ±14 % is one standard deviation) and
  never goes below zero for small N. The range is the agents required at the low and at the high
  rate. Handle time and patience are taken as known; their own noise is not in the range.
- Backlog (contacts waiting past the threshold now) is reported beside the advice, never added to it:
  the advice is the steady-state staffing for the current arrival rate.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.core.erlang import model_for, required_agents
from app.core.events import Channel
from app.core.series import ROLLING_SECONDS

if TYPE_CHECKING:
    from app.core.window import Window

# Below this many arrivals the rate's 95 % interval is wider than about ±45 %: a range that says nothing.
MIN_ARRIVALS = 20
# The z of the two-sided 95 % interval.
Z_95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class WindowFigures:
    """One rolling window's counts for one queue, as the live window reports them."""

    seconds: float
    arrived: int
    started: int
    left: int
    left_after_short: int
    avg_wait_seconds: float | None
    avg_handle_seconds: float | None


@dataclass(frozen=True, slots=True)
class QueueInputs:
    threshold_seconds: float
    goal_pct: float
    formula: str
    recent: WindowFigures  # the last 15 minutes
    hour: WindowFigures  # the last hour
    backlog: int  # waiting past the threshold now


@dataclass(frozen=True, slots=True)
class Needed:
    low: int
    point: int
    high: int


@dataclass(frozen=True, slots=True)
class Advice:
    needed: Needed | None
    reason: str | None
    inputs: dict[str, Any]
    backlog: int
    # Agents (desks) staffed in the queue now, from the staff readers; None while no staff events come.
    staffed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "needed": None
            if self.needed is None
            else {"low": self.needed.low, "point": self.needed.point, "high": self.needed.high},
            "reason": self.reason,
            "inputs": self.inputs,
            "backlog": self.backlog,
            "staffed": self.staffed,
        }


def live_inputs(
    window: Window, now: float
) -> dict[tuple[Channel, str], tuple[WindowFigures, WindowFigures, int]]:
    """Per queue: the last 15 minutes' and the last hour's figures, and the backlog, from the snapshots
    (waiting past target is live, the same in both)."""
    found: dict[str, dict[tuple[Channel, str], WindowFigures]] = {}
    backlog: dict[tuple[Channel, str], int] = {}
    for name in ("15m", "1h"):
        snapshot = window.snapshot(name, now)
        found[name] = {}
        for channel in Channel:
            for queue, figures in snapshot.channels[channel.value].queues.items():
                found[name][(channel, queue)] = WindowFigures(
                    seconds=ROLLING_SECONDS[name],
                    arrived=figures.arrived,
                    started=figures.started,
                    left=figures.left,
                    left_after_short=figures.left_after_short_abandon,
                    avg_wait_seconds=figures.avg_wait_seconds,
                    avg_handle_seconds=figures.avg_handle_seconds,
                )
                backlog.setdefault((channel, queue), figures.waiting_past_target)
    return {
        key: (recent, found["1h"][key], backlog[key])
        for key, recent in found["15m"].items()
        if key in found["1h"]
    }


# Erlang A for one queue takes milliseconds (tens for a large one), and the wallboards, the scrapes and
# the API all ask: the advice is worked out at most this often per window, and shared.
ADVICE_REFRESH_SECONDS = 5.0
_advice_cache: weakref.WeakKeyDictionary[
    Window, tuple[float, int, float, dict[tuple[Channel, str], Advice]]
] = weakref.WeakKeyDictionary()


def live_advice(window: Window, now: float, max_occupancy_pct: float) -> dict[tuple[Channel, str], Advice]:
    """Advice per queue from the live window, each against the queue's own target, sorted by queue; the
    same answer for ADVICE_REFRESH_SECONDS after it was worked out (a new window generation, a target
    change, recomputes it at once)."""
    cached = _advice_cache.get(window)
    if cached is not None:
        at, generation, cap, found = cached
        if (
            generation == window.generation
            and cap == max_occupancy_pct
            and 0 <= now - at < ADVICE_REFRESH_SECONDS
        ):
            return found
    found = {}
    for (channel, queue), (recent, hour, backlog) in sorted(live_inputs(window, now).items()):
        target = window.targets(channel, queue)
        inputs = QueueInputs(target.threshold_seconds, target.goal_pct, target.formula, recent, hour, backlog)
        found[(channel, queue)] = advise(inputs, max_occupancy_pct)
    _advice_cache[window] = (now, window.generation, max_occupancy_pct, found)
    return found


def counted_arrivals(figures: WindowFigures) -> int:
    return max(0, figures.arrived - (figures.left - figures.left_after_short))


def rate_interval(count: int, seconds: float, z: float = Z_95) -> tuple[float, float, float]:
    """(low, point, high) arrival rate per second from `count` Poisson arrivals over `seconds`."""
    centre = count + z * z / 2
    spread = z * math.sqrt(count + z * z / 4)
    return max(0.0, centre - spread) / seconds, count / seconds, (centre + spread) / seconds


def estimate_patience(hour: WindowFigures) -> float | None:
    """Mean patience in seconds, total wait / abandons (see the module text); None without abandons."""
    abandons = hour.left_after_short
    if abandons <= 0 or hour.avg_wait_seconds is None:
        return None
    total_wait = hour.avg_wait_seconds * (hour.started + abandons)
    # Abandons with no recorded wait at all (every answered contact started at once): patience is short,
    # but not zero; one second keeps the model defined.
    return max(total_wait / abandons, 1.0)


def advise(inputs: QueueInputs, max_occupancy_pct: float) -> Advice:
    """Agents needed now for one queue, or no advice and the reason."""
    recent_count = counted_arrivals(inputs.recent)
    hour_count = counted_arrivals(inputs.hour)
    if recent_count >= MIN_ARRIVALS:
        rate_window, count, seconds = "15m", recent_count, inputs.recent.seconds
    else:
        rate_window, count, seconds = "1h", hour_count, inputs.hour.seconds
    handle = inputs.hour.avg_handle_seconds
    patience = estimate_patience(inputs.hour)
    low_rate, rate, high_rate = rate_interval(count, seconds)
    described: dict[str, Any] = {
        "rate_window": rate_window,
        "arrivals": count,
        "arrivals_per_hour": round(rate * 3600, 2),
        "arrivals_per_hour_range": [round(low_rate * 3600, 2), round(high_rate * 3600, 2)],
        "handle_seconds": None if handle is None else round(handle, 1),
        "patience_seconds": None if patience is None else round(patience, 1),
        "abandons": inputs.hour.left_after_short,
        "model": model_for(inputs.formula, patience),
        "target": {
            "threshold_seconds": inputs.threshold_seconds,
            "goal_pct": inputs.goal_pct,
            "formula": inputs.formula,
        },
        "max_occupancy_pct": max_occupancy_pct,
    }
    reason: str | None = None
    if count < MIN_ARRIVALS:
        reason = f"{hour_count} arrivals in the last hour; advice needs at least {MIN_ARRIVALS}"
    elif handle is None or handle <= 0:
        reason = "no contact finished in the last hour to give a handle time"
    elif inputs.goal_pct >= 100:
        reason = "a goal of 100 % cannot be met by any number of agents"
    if reason is not None:
        return Advice(None, reason, described, inputs.backlog)
    assert handle is not None

    def agents(at_rate: float) -> int:
        return required_agents(
            at_rate,
            handle,
            inputs.threshold_seconds,
            inputs.goal_pct,
            inputs.formula,
            patience,
            max_occupancy_pct,
        ).agents

    return Advice(Needed(agents(low_rate), agents(rate), agents(high_rate)), None, described, inputs.backlog)


# ---- the plan: agents per quarter-hour from the contact pattern of past weeks ------------------------


@dataclass(frozen=True, slots=True)
class SlotHistory:
    """One quarter-hour of the day summed over the baseline days (the same weekday of past weeks)."""

    start: float  # the slot's start on the planned day, Unix seconds
    arrivals: int  # counted arrivals (short abandons left out), summed over the baseline days
    handled: int
    handle_sum: float


@dataclass(frozen=True, slots=True)
class QueueHistory:
    """A queue's baseline: its slots, and the totals the slot figures fall back on."""

    days: int  # baseline days on which the queue had any traffic: the divisor of the mean
    slots: list[SlotHistory]
    started: int
    wait_sum: float
    abandons: int  # after the short-abandon limit


def patience_from(started: int, wait_sum: float, abandons: int) -> float | None:
    """The same estimator as estimate_patience, on totals: total wait / abandons."""
    if abandons <= 0 or started <= 0:
        return None
    return max(wait_sum / started * (started + abandons) / abandons, 1.0)


def adjustment(today_arrivals: int, baseline_arrivals: float) -> float | None:
    """How today runs against its baseline so far: the ratio of arrivals in today's ended quarter-hours to
    the baseline's mean over the same quarter-hours; None while the baseline holds too few to compare."""
    if baseline_arrivals < MIN_ARRIVALS:
        return None
    return today_arrivals / baseline_arrivals


def plan_queue(
    history: QueueHistory,
    *,
    threshold_seconds: float,
    goal_pct: float,
    formula: str,
    max_occupancy_pct: float,
    interval_seconds: float,
    factor: float | None,
    adjust_from: float,
) -> list[dict[str, Any]]:
    """Per slot: the mean arrivals, handle time and agents needed as {low, point, high}, or a reason.

    The range is the 95 % score interval of the slot's arrivals summed over the baseline days (a Poisson
    count over days x 15 minutes), so it narrows with more weeks; the day-to-day spread beyond Poisson is
    not in it. Slots starting at or after `adjust_from` are scaled by `factor` (today's running ratio).
    """
    handled = sum(slot.handled for slot in history.slots)
    pooled_handle = sum(slot.handle_sum for slot in history.slots) / handled if handled else None
    patience = patience_from(history.started, history.wait_sum, history.abandons)
    rows: list[dict[str, Any]] = []
    for slot in history.slots:
        scale = factor if factor is not None and slot.start >= adjust_from else 1.0
        handle = slot.handle_sum / slot.handled if slot.handled else pooled_handle
        low, rate, high = (
            value * scale for value in rate_interval(slot.arrivals, history.days * interval_seconds)
        )
        row: dict[str, Any] = {
            "start": slot.start,
            "arrivals": round(slot.arrivals / history.days * scale, 2),
            "handle_seconds": None if handle is None else round(handle, 1),
            "needed": None,
            "reason": None,
        }
        if handle is None:
            row["reason"] = "no contact finished in the baseline weeks to give a handle time"
        elif goal_pct >= 100:
            row["reason"] = "a goal of 100 % cannot be met by any number of agents"
        else:
            needed = [
                required_agents(
                    at_rate, handle, threshold_seconds, goal_pct, formula, patience, max_occupancy_pct
                ).agents
                for at_rate in (low, rate, high)
            ]
            row["needed"] = {"low": needed[0], "point": needed[1], "high": needed[2]}
        rows.append(row)
    return rows
