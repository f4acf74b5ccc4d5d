"""Additive tallies of outcomes and the KPI formulas computed from them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

Formula = Literal["offered", "answered", "abandons_excluded"]
FORMULAS: tuple[Formula, ...] = ("offered", "answered", "abandons_excluded")
Status = Literal["ok", "warning", "breach", "no_data"]
# Percentages are shown to two decimals; a status is decided on what is shown.
SHOWN_DECIMALS = 2
# Goals and margins are configured with a few decimals; rounding their difference to nine removes the
# binary floating-point error of the subtraction without moving any bound a person can type.
BOUND_DECIMALS = 9

# Waits go into a fixed set of histogram bins, whole seconds where targets live and wider beyond, so a
# percentile costs the same at ten events as at a million. Each (up to, width) step below: a reported
# percentile is its bin's lower edge, so it errs by less than the width (1 s up to 2 minutes, 5 s up to
# 10 minutes, 30 s up to an hour, 5 minutes beyond). Counts against thresholds never use these bins.
WAIT_BIN_STEPS: tuple[tuple[float, float], ...] = ((120, 1), (600, 5), (3600, 30), (14400, 300))


def _bin_edges() -> list[float]:
    edges: list[float] = []
    lower = 0.0
    for upper, width in WAIT_BIN_STEPS:
        while lower < upper:
            edges.append(lower)
            lower += width
    edges.append(lower)  # the open-ended last bin: waits of four hours and more
    return edges


WAIT_BIN_LOWER_EDGES: tuple[float, ...] = tuple(_bin_edges())
_LAST_BIN = len(WAIT_BIN_LOWER_EDGES) - 1


def wait_bin(wait: float) -> int:
    """The histogram bin of a wait in seconds (see WAIT_BIN_STEPS)."""
    if wait < 120:
        return int(wait)
    if wait < 600:
        return 120 + int((wait - 120) // 5)
    if wait < 3600:
        return 216 + int((wait - 600) // 30)
    if wait < 14400:
        return 316 + int((wait - 3600) // 300)
    return _LAST_BIN


@dataclass(frozen=True, slots=True)
class Target:
    threshold_seconds: float
    goal_pct: float
    formula: Formula = "offered"

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold_seconds": self.threshold_seconds,
            "goal_pct": self.goal_pct,
            "formula": self.formula,
        }


@dataclass(slots=True)
class Tally:
    """Counts and sums over a set of outcomes. Tallies add and subtract, so windows can slide."""

    arrived: int = 0
    started: int = 0
    started_within: int = 0
    wait_sum: float = 0.0
    left: int = 0
    left_after_short: int = 0
    finished: int = 0
    served: int = 0
    resolved_first_contact: int = 0
    transferred: int = 0
    handled: int = 0
    handle_sum: float = 0.0
    # Agent or desk seconds in the interval (app/core/staff.py), filled in only for the rollup: the live
    # staff figures read the subjects' timelines, so these stay 0 in the window's own tallies.
    staffed_seconds: float = 0.0
    available_seconds: float = 0.0
    handling_seconds: float = 0.0
    paused_seconds: float = 0.0
    wait_bins: dict[int, int] = field(default_factory=dict)

    def add(self, other: Tally, sign: int = 1) -> None:
        self.arrived += sign * other.arrived
        self.started += sign * other.started
        self.started_within += sign * other.started_within
        self.wait_sum += sign * other.wait_sum
        self.left += sign * other.left
        self.left_after_short += sign * other.left_after_short
        self.finished += sign * other.finished
        self.served += sign * other.served
        self.resolved_first_contact += sign * other.resolved_first_contact
        self.transferred += sign * other.transferred
        self.handled += sign * other.handled
        self.handle_sum += sign * other.handle_sum
        self.staffed_seconds += sign * other.staffed_seconds
        self.available_seconds += sign * other.available_seconds
        self.handling_seconds += sign * other.handling_seconds
        self.paused_seconds += sign * other.paused_seconds
        if not other.wait_bins:
            return
        bins = self.wait_bins
        for key, count in other.wait_bins.items():
            merged = bins.get(key, 0) + sign * count
            if merged:
                bins[key] = merged
            else:
                del bins[key]

    def is_empty(self) -> bool:
        return not (
            self.arrived or self.started or self.left or self.finished or self.handled or self.staffed_seconds
        )

    def add_start(self, wait: float, within: bool, key: int | None = None) -> None:
        """Count one started contact; `key` is wait_bin(wait), passed in when adding to many tallies."""
        self.started += 1
        self.started_within += within
        self.wait_sum += wait
        if key is None:
            key = wait_bin(wait)
        self.wait_bins[key] = self.wait_bins.get(key, 0) + 1


CountKind = Literal["count", "sum"]


@dataclass(frozen=True, slots=True)
class Counted:
    """One counted field of a Tally and the interval_rollup column that stores it."""

    field: str
    column: str
    kind: CountKind


# Every counted field, declared once by Tally itself: the rollup's columns, its table and the reports
# derive from this (a test holds the table and the migrated database to it). The wait histogram is not
# rolled up: history reports give no percentiles.
COUNTED: tuple[Counted, ...] = tuple(
    Counted(spec.name, spec.name, "sum" if spec.type == "float" else "count")
    for spec in fields(Tally)
    if spec.name != "wait_bins"
)


def _rank(total: int, fraction: float) -> int:
    return max(1, -(-int(total * fraction * 1_000_000) // 1_000_000))


def wait_percentiles(bins: dict[int, int], total: int, fractions: tuple[float, ...]) -> list[float | None]:
    """Nearest-rank percentiles in one pass over the fixed bins; each is its bin's lower edge."""
    # No bins for counted starts: totals read back from the history rollup, which keeps no histogram.
    if total <= 0 or not bins:
        return [None] * len(fractions)
    ranks = [_rank(total, fraction) for fraction in fractions]
    found: list[float | None] = [None] * len(fractions)
    pending = 0
    seen = 0
    get = bins.get
    for key, edge in enumerate(WAIT_BIN_LOWER_EDGES):
        seen += get(key, 0)
        while pending < len(ranks) and seen >= ranks[pending]:
            found[pending] = edge
            pending += 1
        if pending == len(ranks):
            break
    return found


def wait_percentile(bins: dict[int, int], total: int, fraction: float) -> float | None:
    return wait_percentiles(bins, total, (fraction,))[0]


def service_level(tally: Tally, waiting_past_threshold: int, formula: Formula) -> float | None:
    """Share of contacts started within the threshold, as a percentage, by the chosen denominator.

    offered:           within / (started + left after the short-abandon limit + still waiting past threshold)
    answered:          within / started
    abandons_excluded: within / (started + still waiting past threshold)
    """
    if formula == "offered":
        denominator = tally.started + tally.left_after_short + waiting_past_threshold
    elif formula == "answered":
        denominator = tally.started
    else:
        denominator = tally.started + waiting_past_threshold
    if denominator == 0:
        return None
    return 100.0 * tally.started_within / denominator


def status(value: float | None, goal: float, warning_margin: float) -> Status:
    """ok at or above the goal; warning when at most `warning_margin` points below it; else breach.

    Judged on the value as shown (two decimals), so the status never contradicts the figure beside it:
    a screen showing 90.00 % against a goal of 90 says ok, and 85.00 % against 90 with a margin of 5 is
    "within 5 points", a warning. The bound is rounded too, so float noise in goal - margin cannot move it.
    """
    if value is None:
        return "no_data"
    shown = round(value, SHOWN_DECIMALS)
    if shown >= round(goal, BOUND_DECIMALS):
        return "ok"
    if shown >= round(goal - warning_margin, BOUND_DECIMALS):
        return "warning"
    return "breach"


def _ratio_pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def _mean(total: float, count: int) -> float | None:
    return None if count == 0 else total / count


def _shown(value: float | None, decimals: int = SHOWN_DECIMALS) -> float | None:
    return None if value is None else round(value, decimals)


# Not frozen: a frozen dataclass sets each of its 22 fields through object.__setattr__, and a snapshot
# builds one per queue and window on every read.
@dataclass(slots=True)
class QueueFigures:
    """One queue's (or one channel's) KPIs over a window, unrounded; `null` wherever there is nothing to
    divide. The field order is the JSON's (see shown)."""

    arrived: int
    started: int
    left: int
    finished: int
    started_within_target: int
    left_after_short_abandon: int
    waiting_past_target: int
    service_level_pct: float | None
    target: Target
    status: Status
    avg_wait_seconds: float | None
    wait_p50_seconds: float | None
    wait_p90_seconds: float | None
    abandon_rate_pct: float | None
    avg_handle_seconds: float | None
    first_contact_resolution_pct: float | None
    first_contact_resolution_goal_pct: float
    first_contact_resolution_status: Status
    transferred: int
    arrivals_per_hour: float | None
    waiting_now: int
    longest_wait_now_seconds: float | None


def figures(
    tally: Tally,
    target: Target,
    *,
    waiting_now: int,
    waiting_past_threshold: int,
    longest_wait_now: float | None,
    window_hours: float,
    fcr_goal_pct: float,
    warning_margin_pct: float,
) -> QueueFigures:
    """The KPIs of a tally against its target; statuses are judged on the values as shown."""
    level = service_level(tally, waiting_past_threshold, target.formula)
    fcr = _ratio_pct(tally.resolved_first_contact, tally.served)
    p50, p90 = wait_percentiles(tally.wait_bins, tally.started, (0.5, 0.9))
    return QueueFigures(
        tally.arrived,
        tally.started,
        tally.left,
        tally.finished,
        tally.started_within,
        tally.left_after_short,
        waiting_past_threshold,
        level,
        target,
        status(level, target.goal_pct, warning_margin_pct),
        _mean(tally.wait_sum, tally.started),
        p50,
        p90,
        _ratio_pct(tally.left, tally.started + tally.left),
        _mean(tally.handle_sum, tally.handled),
        fcr,
        fcr_goal_pct,
        status(fcr, fcr_goal_pct, warning_margin_pct),
        tally.transferred,
        None if window_hours <= 0 else tally.arrived / window_hours,
        waiting_now,
        longest_wait_now,
    )


def shown(kpis: QueueFigures) -> dict[str, Any]:
    """The JSON form of the figures, as the API and the screens show them: rounded for display."""
    return {
        "arrived": kpis.arrived,
        "started": kpis.started,
        "left": kpis.left,
        "finished": kpis.finished,
        "started_within_target": kpis.started_within_target,
        "left_after_short_abandon": kpis.left_after_short_abandon,
        "waiting_past_target": kpis.waiting_past_target,
        "service_level_pct": _shown(kpis.service_level_pct),
        "target": kpis.target.as_dict(),
        "status": kpis.status,
        "avg_wait_seconds": _shown(kpis.avg_wait_seconds),
        "wait_p50_seconds": kpis.wait_p50_seconds,
        "wait_p90_seconds": kpis.wait_p90_seconds,
        "abandon_rate_pct": _shown(kpis.abandon_rate_pct),
        "avg_handle_seconds": _shown(kpis.avg_handle_seconds),
        "first_contact_resolution_pct": _shown(kpis.first_contact_resolution_pct),
        "first_contact_resolution_goal_pct": kpis.first_contact_resolution_goal_pct,
        "first_contact_resolution_status": kpis.first_contact_resolution_status,
        "transferred": kpis.transferred,
        "arrivals_per_hour": _shown(kpis.arrivals_per_hour),
        "waiting_now": kpis.waiting_now,
        "longest_wait_now_seconds": _shown(kpis.longest_wait_now_seconds, 1),
    }


def kpi(
    tally: Tally,
    target: Target,
    *,
    waiting_now: int,
    waiting_past_threshold: int,
    longest_wait_now: float | None,
    window_hours: float,
    fcr_goal_pct: float,
    warning_margin_pct: float,
) -> dict[str, Any]:
    """The KPI object the API and the screens show (figures() in its JSON form)."""
    return shown(
        figures(
            tally,
            target,
            waiting_now=waiting_now,
            waiting_past_threshold=waiting_past_threshold,
            longest_wait_now=longest_wait_now,
            window_hours=window_hours,
            fcr_goal_pct=fcr_goal_pct,
            warning_margin_pct=warning_margin_pct,
        )
    )
