"""A brute-force recomputation of the KPIs from raw events, written from the brief, not from app.core.

It loops over contacts and counts each outcome by the brief's definitions; nothing is incremental, so
it is slow and obviously right, which is what the window's fast answers are checked against.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

ROLLING = {"15m": 900, "1h": 3600}
STEPS = {
    "call.offered": "arrive",
    "ticket.issued": "arrive",
    "call.answered": "start",
    "ticket.called": "start",
    "call.abandoned": "leave",
    "ticket.cancelled": "leave",
    "call.ended": "finish",
    "call.transferred": "finish",
    "ticket.completed": "finish",
    "ticket.no_show": "finish",
}


class RawEvent(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def contact_id(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def at(self) -> float: ...
    @property
    def wait_seconds(self) -> float | None: ...
    @property
    def resolved(self) -> bool | None: ...


@dataclass(frozen=True)
class Rules:
    time_zone: str = "Europe/Copenhagen"
    thresholds: dict[str, float] = field(default_factory=lambda: {"phone": 60.0, "visit": 300.0})
    goals: dict[str, float] = field(default_factory=lambda: {"phone": 90.0, "visit": 70.0})
    formula: str = "offered"
    # (channel, queue) -> (threshold, goal, formula)
    overrides: dict[tuple[str, str], tuple[float, float, str]] = field(default_factory=dict)
    short_abandon_seconds: float = 5.0
    max_wait_seconds: float = 4 * 3600.0
    warning_margin_pct: float = 5.0
    fcr_goal_pct: float = 80.0

    def target(self, channel: str, queue: str | None) -> tuple[float, float, str]:
        if queue is not None and (channel, queue) in self.overrides:
            return self.overrides[(channel, queue)]
        return self.thresholds[channel], self.goals[channel], self.formula


def channel_of(event_type: str) -> str:
    return "phone" if event_type.startswith("call.") else "visit"


def local_day(now: float, time_zone: str) -> tuple[float, float]:
    """Local midnight before `now` and the next one, from wall-clock dates (DST days are 23 or 25 h)."""
    tz = ZoneInfo(time_zone)
    day = datetime.fromtimestamp(now, tz).date()
    following = day + timedelta(days=1)
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    end = datetime(following.year, following.month, following.day, tzinfo=tz)
    return start.timestamp(), end.timestamp()


def in_window(at: float, now: float, window: str, time_zone: str) -> bool:
    if window == "today":
        start, end = local_day(now, time_zone)
        return start <= at < end
    # Rolling windows have one-second resolution: the last `width` whole seconds up to and including now's.
    return math.floor(now) - ROLLING[window] < math.floor(at) <= math.floor(now)


@dataclass
class Contact:
    channel: str
    steps: dict[str, RawEvent] = field(default_factory=dict)

    def wait(self, step: str) -> float | None:
        event = self.steps[step]
        if event.wait_seconds is not None:
            return event.wait_seconds
        arrival = self.steps.get("arrive")
        if arrival is None:
            return None
        return max(0.0, event.at - arrival.at)


def contacts_of(events: Iterable[RawEvent]) -> dict[tuple[str, str], Contact]:
    """The first delivery of each step of each contact; later repeats change nothing."""
    contacts: dict[tuple[str, str], Contact] = {}
    for event in events:
        channel = channel_of(event.type)
        contact = contacts.setdefault((channel, event.contact_id), Contact(channel))
        contact.steps.setdefault(STEPS[event.type], event)
    return contacts


@dataclass
class Counts:
    arrived: int = 0
    started: int = 0
    within: int = 0
    waits: list[float] = field(default_factory=list)
    left: int = 0
    left_after_short: int = 0
    finished: int = 0
    served: int = 0
    resolved: int = 0
    transferred: int = 0
    handles: list[float] = field(default_factory=list)
    waiting_since: list[float] = field(default_factory=list)


def _status(value: float | None, goal: float, margin: float) -> str:
    """By the README: on the value as shown (two decimals), ok at or above the goal, warning when at most
    the margin below it ("within 5 points"), else breach."""
    if value is None:
        return "no_data"
    shown = round(value, 2)
    if shown >= goal:
        return "ok"
    # A hundredth of the shown resolution absorbs the float error of goal - margin, nothing more.
    return "warning" if goal - shown <= margin + 1e-4 else "breach"


def _reported_wait(wait: float) -> float:
    """A wait as the README says percentiles report it: rounded down to a whole second below two
    minutes, to 5 s below ten minutes, to 30 s below an hour, to 5 minutes below four hours, else 4 h."""
    for upper, step, origin in ((120, 1, 0), (600, 5, 120), (3600, 30, 600), (14400, 300, 3600)):
        if wait < upper:
            return origin + math.floor((wait - origin) / step) * step
    return 14400.0


def _nearest_rank(values: list[float], percent: int) -> float | None:
    if not values:
        return None
    ordered = sorted(_reported_wait(value) for value in values)
    rank = max(1, -(-len(ordered) * percent // 100))
    return float(ordered[rank - 1])


def _kpi(
    counts: Counts, target: tuple[float, float, str], past: int, now: float, hours: float, rules: Rules
) -> dict[str, Any]:
    threshold, goal, formula = target
    if formula == "offered":
        denominator = counts.started + counts.left_after_short + past
    elif formula == "answered":
        denominator = counts.started
    else:
        denominator = counts.started + past
    level = None if denominator == 0 else 100.0 * counts.within / denominator
    fcr = None if counts.served == 0 else round(100.0 * counts.resolved / counts.served, 2)
    attempts = counts.started + counts.left
    return {
        "arrived": counts.arrived,
        "started": counts.started,
        "left": counts.left,
        "finished": counts.finished,
        "started_within_target": counts.within,
        "left_after_short_abandon": counts.left_after_short,
        "waiting_past_target": past,
        "service_level_pct": None if level is None else round(level, 2),
        "target": {"threshold_seconds": threshold, "goal_pct": goal, "formula": formula},
        "status": _status(level, goal, rules.warning_margin_pct),
        "avg_wait_seconds": round(sum(counts.waits) / len(counts.waits), 2) if counts.waits else None,
        "wait_p50_seconds": _nearest_rank(counts.waits, 50),
        "wait_p90_seconds": _nearest_rank(counts.waits, 90),
        "abandon_rate_pct": None if attempts == 0 else round(100.0 * counts.left / attempts, 2),
        "avg_handle_seconds": round(sum(counts.handles) / len(counts.handles), 2) if counts.handles else None,
        "first_contact_resolution_pct": fcr,
        "first_contact_resolution_goal_pct": rules.fcr_goal_pct,
        "first_contact_resolution_status": _status(fcr, rules.fcr_goal_pct, rules.warning_margin_pct),
        "transferred": counts.transferred,
        "arrivals_per_hour": None if hours <= 0 else round(counts.arrived / hours, 2),
        "waiting_now": len(counts.waiting_since),
        "longest_wait_now_seconds": (
            round(now - min(counts.waiting_since), 1) if counts.waiting_since else None
        ),
    }


def expected_channels(events: Iterable[RawEvent], now: float, window: str, rules: Rules) -> dict[str, Any]:
    """`channels` of a snapshot: per channel, per queue and the channel total, by brute force."""
    per_queue: dict[tuple[str, str], Counts] = {}

    def counts(channel: str, queue: str) -> Counts:
        return per_queue.setdefault((channel, queue), Counts())

    def inside(event: RawEvent) -> bool:
        return in_window(event.at, now, window, rules.time_zone)

    for contact in contacts_of(events).values():
        channel, steps = contact.channel, contact.steps
        arrive, start, leave, finish = (steps.get(name) for name in ("arrive", "start", "leave", "finish"))
        if arrive is not None:
            tally = counts(channel, arrive.queue)
            tally.arrived += inside(arrive)
            if (
                start is None
                and leave is None
                and finish is None
                and now - arrive.at <= rules.max_wait_seconds
            ):
                tally.waiting_since.append(arrive.at)
        if start is not None and (wait := contact.wait("start")) is not None:
            tally = counts(channel, start.queue)
            if inside(start):
                tally.started += 1
                tally.within += wait <= rules.target(channel, start.queue)[0]
                tally.waits.append(wait)
        if leave is not None and (wait := contact.wait("leave")) is not None:
            tally = counts(channel, leave.queue)
            if inside(leave):
                tally.left += 1
                tally.left_after_short += wait > rules.short_abandon_seconds
        if finish is not None:
            tally = counts(channel, finish.queue)
            if inside(finish):
                served = finish.type != "ticket.no_show"
                transferred = finish.type == "call.transferred"
                tally.finished += 1
                tally.served += served
                tally.transferred += transferred
                tally.resolved += served and not transferred and finish.resolved is True
                if served and start is not None:
                    tally.handles.append(max(0.0, finish.at - start.at))

    if window == "today":
        hours = max(0.0, now - local_day(now, rules.time_zone)[0]) / 3600
    else:
        hours = ROLLING[window] / 3600
    result: dict[str, Any] = {}
    for channel in ("phone", "visit"):
        total = Counts()
        total_target = rules.target(channel, None)
        queues: dict[str, Any] = {}
        for (queue_channel, queue), tally in sorted(per_queue.items()):
            if queue_channel != channel:
                continue
            target = rules.target(channel, queue)
            past = sum(now - since > target[0] for since in tally.waiting_since)
            queues[queue] = _kpi(tally, target, past, now, hours, rules)
            for name in (
                "arrived",
                "started",
                "within",
                "left",
                "left_after_short",
                "finished",
                "served",
                "resolved",
                "transferred",
            ):
                setattr(total, name, getattr(total, name) + getattr(tally, name))
            total.waits += tally.waits
            total.handles += tally.handles
            total.waiting_since += tally.waiting_since
        total_past = sum(now - since > total_target[0] for since in total.waiting_since)
        result[channel] = {
            "total": _kpi(total, total_target, total_past, now, hours, rules),
            "queues": queues,
        }
    return result
