"""The staffing plan's contact pattern, read from interval_rollup: the same weekday of the last N weeks.

Quarter-hours are matched by local clock time ("09:15"), so a pattern carries across daylight-saving
changes. On an autumn day the repeated hour's two quarter-hours share one clock time: in a baseline day
they are summed, and a planned autumn day gets that clock time's figures for both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.clock import day_bounds, day_intervals, interval_start, local_date
from app.core.events import Channel
from app.core.kpis import COUNTED
from app.core.staffing import QueueHistory, SlotHistory

# The staff seconds per quarter-hour (app/core/staff.py, rolled up with the contacts), where the rollup
# has them; 0 where no staff events came.
_STAFFED = "staffed_seconds" if "staffed_seconds" in {counted.column for counted in COUNTED} else "0.0"
# One row per channel, queue and quarter-hour with traffic; retired queues are left out, as in reports.
_ROWS = text(
    f"""
SELECT channel, queue, interval_start, arrived, "left", left_after_short, started, wait_sum,
       handled, handle_sum, {_STAFFED}
FROM interval_rollup
WHERE interval_start >= :since AND interval_start < :until
  AND (CAST(:channel AS text) IS NULL OR channel = :channel)
  AND NOT EXISTS (
    SELECT 1 FROM queues AS retired
    WHERE retired.retired_at IS NOT NULL
      AND retired.channel = interval_rollup.channel AND retired.queue = interval_rollup.queue
  )
"""
)


def baseline_dates(day: date, today: date, weeks: int) -> list[date]:
    """The `weeks` most recent dates with `day`'s weekday before both `day` and today, newest first."""
    before = min(day, today)
    latest = before - timedelta(days=(before.weekday() - day.weekday()) % 7 or 7)
    return [latest - timedelta(weeks=week) for week in range(weeks)]


@dataclass
class _Sums:
    arrivals: int = 0
    handled: int = 0
    handle_sum: float = 0.0
    staffed_seconds: float = 0.0


@dataclass
class _Queue:
    days: set[date] = field(default_factory=set)
    slots: dict[str, _Sums] = field(default_factory=dict)
    started: int = 0
    wait_sum: float = 0.0
    abandons: int = 0
    today: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pattern:
    """Per (channel, queue): the baseline, and today's counted arrivals per ended quarter-hour label.

    `staffed_usual` is the mean staff seconds per slot start over the baseline days, and `staffed` the
    planned day's own per slot start (what it had, up to now), each only for queues with staff time.
    """

    baseline: list[date]
    queues: dict[tuple[Channel, str], QueueHistory]
    today: dict[tuple[Channel, str], dict[str, int]]
    labels: dict[float, str]  # the planned day's slot starts and their clock times
    staffed_usual: dict[tuple[Channel, str], dict[float, float]] = field(default_factory=dict)
    staffed: dict[tuple[Channel, str], dict[float, float]] = field(default_factory=dict)


def _label(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%H:%M")


async def _fetch(
    engine: AsyncEngine, since: float, until: float, channel: Channel | None
) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        result = await connection.execute(
            _ROWS,
            {
                "since": datetime.fromtimestamp(since, UTC),
                "until": datetime.fromtimestamp(until, UTC),
                "channel": None if channel is None else channel.value,
            },
        )
        return [tuple(row) for row in result]


async def contact_pattern(
    engine: AsyncEngine,
    *,
    day: date,
    now: float,
    time_zone: str,
    weeks: int,
    channel: Channel | None,
) -> Pattern:
    tz = ZoneInfo(time_zone)
    today = local_date(now, tz)
    baseline = baseline_dates(day, today, weeks)
    queues: dict[tuple[Channel, str], _Queue] = {}
    for past in baseline:
        start, end = day_bounds(past, tz)
        for row in await _fetch(engine, start, end, channel):
            name, queue, at, arrived, left, after_short, started, wait_sum, handled, handle_sum = row[:10]
            entry = queues.setdefault((Channel(str(name)), str(queue)), _Queue())
            entry.days.add(past)
            sums = entry.slots.setdefault(_label(at, tz), _Sums())
            # Short abandons are wrong numbers: no agent time, so not in the arrivals staffed for.
            sums.arrivals += max(0, int(arrived) - (int(left) - int(after_short)))
            sums.handled += int(handled)
            sums.handle_sum += float(handle_sum)
            sums.staffed_seconds += float(row[10])
            entry.started += int(started)
            entry.wait_sum += float(wait_sum)
            entry.abandons += int(after_short)
    today_counts: dict[tuple[Channel, str], dict[str, int]] = {}
    if day == today:
        start, _ = day_bounds(today, tz)
        # Only the quarter-hours already over: the running one would make today look quieter than it is.
        for row in await _fetch(engine, start, interval_start(now), channel):
            name, queue, at, arrived, left, after_short = row[:6]
            counts = today_counts.setdefault((Channel(str(name)), str(queue)), {})
            label = _label(at, tz)
            counted = max(0, int(arrived) - (int(left) - int(after_short)))
            counts[label] = counts.get(label, 0) + counted
    labels = {
        float(start): _label(datetime.fromtimestamp(start, UTC), tz) for start in day_intervals(day, tz)
    }
    histories: dict[tuple[Channel, str], QueueHistory] = {}
    staffed_usual: dict[tuple[Channel, str], dict[float, float]] = {}
    for key, entry in sorted(queues.items()):
        slots = []
        usual: dict[float, float] = {}
        for start, label in labels.items():
            sums = entry.slots.get(label, _Sums())
            slots.append(SlotHistory(start, sums.arrivals, sums.handled, sums.handle_sum))
            usual[start] = sums.staffed_seconds / len(entry.days)
        histories[key] = QueueHistory(len(entry.days), slots, entry.started, entry.wait_sum, entry.abandons)
        if any(usual.values()):
            staffed_usual[key] = usual
    # The planned day's own staff seconds, for a day already (partly) over.
    staffed: dict[tuple[Channel, str], dict[float, float]] = {}
    start, end = day_bounds(day, tz)
    if start <= now:
        for row in await _fetch(engine, start, min(end, now), channel):
            seconds = float(row[10])
            if seconds > 0:
                slot = staffed.setdefault((Channel(str(row[0])), str(row[1])), {})
                slot[float(row[2].timestamp())] = slot.get(float(row[2].timestamp()), 0.0) + seconds
    return Pattern(baseline, histories, today_counts, labels, staffed_usual, staffed)
