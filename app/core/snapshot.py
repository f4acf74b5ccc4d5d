"""The read model: what readers get from the window, as typed values, unrounded.

Rounding for display happens only at the JSON edge (snapshot_json and kpis.shown), which the routes
call; the collector and other readers take the exact values.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, fields
from typing import Any

from app.core.config import TargetLookup
from app.core.events import Channel
from app.core.kpis import QueueFigures, Tally, Target, figures, shown
from app.core.series import SeriesBook, WindowName


# Mutable: the window counts into its own instance; a snapshot gets a copy.
@dataclass(slots=True)
class DataQuality:
    duplicates: int = 0
    out_of_order: int = 0
    orphans: int = 0
    late: int = 0
    expired: int = 0
    unfinished: int = 0
    negative_waits: int = 0
    before_today: int = 0
    cleared: int = 0

    def copy(self) -> DataQuality:
        return DataQuality(*[getattr(self, name) for name in DATA_QUALITY_KEYS])

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in DATA_QUALITY_KEYS}


DATA_QUALITY_KEYS: tuple[str, ...] = tuple(spec.name for spec in fields(DataQuality))


@dataclass(slots=True)
class RecentCall:
    """A ticket called to a desk (for the lobby screen)."""

    ticket_number: str | None
    desk: str | None
    queue: str
    called_at: float


@dataclass(slots=True)
class LifetimeCounts:
    """A queue's counts over this process's life (a copy): what the Prometheus counters report."""

    tally: Tally
    # Started contacts' waits by whole seconds rounded up (bin N holds N-1 < wait <= N).
    waits: dict[int, int]


@dataclass(slots=True)
class ChannelFigures:
    total: QueueFigures
    queues: dict[str, QueueFigures]


@dataclass(slots=True)
class Snapshot:
    window: WindowName
    as_of: float
    time_zone: str
    channels: dict[str, ChannelFigures]
    data_quality: DataQuality


@dataclass(slots=True)
class IntervalFigures:
    start: int
    # The interval holding `now`: it also counts who waits past the threshold right now.
    current: bool
    figures: QueueFigures


@dataclass(frozen=True, slots=True)
class Reading:
    """What one snapshot is read against: the window, the time, its length in hours, the goals."""

    window: WindowName
    now: float
    hours: float
    today: tuple[float, float]
    fcr_goal_pct: float
    warning_margin_pct: float


def assemble(
    book: SeriesBook,
    targets: TargetLookup,
    reading: Reading,
    channel: Channel | None,
    queue: str | None,
) -> dict[str, ChannelFigures]:
    """KPIs per channel, per queue and per channel total."""
    now = reading.now
    channels: dict[str, ChannelFigures] = {}
    ordered = sorted(book.by_key.items())
    for ch in Channel:
        if channel is not None and ch is not channel:
            continue
        total = Tally()
        total_waiting: list[float] = []
        total_past = 0
        waiting_total = 0
        queues: dict[str, QueueFigures] = {}
        channel_target = targets(ch, None)
        for (series_channel, name), series in ordered:
            if series_channel is not ch:
                continue
            tally = series.window_total(reading.window, now, reading.today)
            target = targets(ch, name)
            waiting = series.waiting
            total.add(tally)
            total_past += bisect.bisect_left(waiting, now - channel_target.threshold_seconds)
            waiting_total += len(waiting)
            if waiting:
                total_waiting.append(waiting[0])
            if queue is not None and name != queue:
                continue
            queues[name] = _figures(
                tally,
                target,
                reading,
                len(waiting),
                bisect.bisect_left(waiting, now - target.threshold_seconds),
                max(0.0, now - waiting[0]) if waiting else None,
            )
        longest = max(0.0, now - min(total_waiting)) if total_waiting else None
        channels[ch.value] = ChannelFigures(
            _figures(total, channel_target, reading, waiting_total, total_past, longest), queues
        )
    return channels


def _figures(
    tally: Tally, target: Target, reading: Reading, waiting: int, past: int, longest: float | None
) -> QueueFigures:
    return figures(
        tally,
        target,
        waiting_now=waiting,
        waiting_past_threshold=past,
        longest_wait_now=longest,
        window_hours=reading.hours,
        fcr_goal_pct=reading.fcr_goal_pct,
        warning_margin_pct=reading.warning_margin_pct,
    )


def snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    """The snapshot as GET /v1/kpis shows it (before `as_of` is written as local time)."""
    return {
        "window": snapshot.window,
        "as_of": snapshot.as_of,
        "time_zone": snapshot.time_zone,
        "channels": {
            name: {
                "total": shown(channel.total),
                "queues": {queue: shown(kpis) for queue, kpis in channel.queues.items()},
            }
            for name, channel in snapshot.channels.items()
        },
        "data_quality": snapshot.data_quality.as_dict(),
    }
