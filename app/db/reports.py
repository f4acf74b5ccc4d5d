"""History reports: the interval rollup summed per local period, with the live window's KPI formulas.

A report reads only interval_rollup (a few dozen rows per queue and day), never the events, so a year's
monthly report costs the same whatever the call volume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.clock import INTERVAL_SECONDS, interval_start, local_date
from app.core.events import Channel
from app.core.kpis import Tally, kpi
from app.core.targets import TargetBook
from app.db.connection import raw_connection
from app.db.rollup import COUNT_COLUMNS, ROLLUP_FIELDS, SUM_COLUMNS

Granularity = Literal["interval", "day", "week", "month", "year"]
GRANULARITIES: tuple[Granularity, ...] = ("interval", "day", "week", "month", "year")

_sums = ", ".join(
    # Quoted: "left" is a reserved word in SQL.
    [f'sum("{name}")::bigint' for name in COUNT_COLUMNS] + [f'sum("{name}")::float8' for name in SUM_COLUMNS]
)
# Local periods by truncating local time: midnights are never ambiguous, so days, ISO weeks (from
# Monday), months and years come out right on daylight-saving days too. Quarter-hours keep their UTC
# instant, because the autumn's repeated hour would otherwise merge two of them.
_PERIOD_SQL: dict[Granularity, str] = {
    "interval": "interval_start",
    **{
        unit: f"date_trunc('{unit}', interval_start AT TIME ZONE $4)::date"
        for unit in ("day", "week", "month", "year")
    },
}


# Retired queues (app/db/queues.py) are left out of every row, channel totals too; their rollup rows are
# kept, so a restore brings their history back.
_NOT_RETIRED = """NOT EXISTS (
  SELECT 1 FROM queues AS retired
  WHERE retired.retired_at IS NOT NULL
    AND retired.channel = interval_rollup.channel AND retired.queue = interval_rollup.queue
)"""


def _query(granularity: Granularity) -> str:
    return f"""
SELECT {_PERIOD_SQL[granularity]} AS period, channel, queue, {_sums}
FROM interval_rollup
WHERE interval_start >= $1 AND interval_start < $2 AND ($3::text IS NULL OR channel = $3)
  AND $4::text IS NOT NULL  -- the time zone, referenced here too so every granularity takes it
  AND {_NOT_RETIRED}
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""


# What a history row shows of the live KPI object: the live-only fields (waiting now, percentiles from
# per-second bins the rollup does not keep) are left out. "Waiting past target" stays: it is part of the
# service level of a period still running, and 0 in a closed one.
REPORT_FIELDS = (
    "arrived",
    "started",
    "started_within_target",
    "left",
    "left_after_short_abandon",
    "finished",
    "waiting_past_target",
    "service_level_pct",
    "target",
    "status",
    "avg_wait_seconds",
    "abandon_rate_pct",
    "avg_handle_seconds",
    "first_contact_resolution_pct",
    "first_contact_resolution_goal_pct",
    "first_contact_resolution_status",
    "transferred",
    "arrivals_per_hour",
)
# Agents' and desks' time (app/core/staff.py) by the live staff figures' definitions: hours logged in,
# hours handling (on contact plus after-contact work), occupancy = handling / (handling + available).
# An agent logged into several queues gives each an equal share, so the queues add up to the total.
STAFF_FIELDS = ("staffed_hours", "handled_hours", "occupancy")
CSV_FIELDS = (
    "period",
    "start",
    "end",
    "closed",
    "channel",
    "queue",
    "arrived",
    "started",
    "started_within_target",
    "left",
    "left_after_short_abandon",
    "finished",
    "waiting_past_target",
    "service_level_pct",
    "threshold_seconds",
    "goal_pct",
    "goal_met",
    "formula",
    "status",
    "avg_wait_seconds",
    "abandon_rate_pct",
    "avg_handle_seconds",
    "first_contact_resolution_pct",
    "first_contact_resolution_goal_pct",
    "transferred",
    "arrivals_per_hour",
    *STAFF_FIELDS,
)


@dataclass(frozen=True, slots=True)
class Period:
    label: str
    start: datetime
    end: datetime

    @property
    def hours(self) -> float:
        # By timestamps: subtracting two datetimes of one zone ignores a daylight-saving change between.
        return (self.end.timestamp() - self.start.timestamp()) / 3600


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tz)


def period_of(granularity: Granularity, key: Any, tz: ZoneInfo) -> Period:
    """The local period a query row's key names, with its label and exact bounds."""
    if granularity == "interval":
        start = key.astimezone(tz)
        end = datetime.fromtimestamp(start.timestamp() + INTERVAL_SECONDS, tz)
        return Period(start.strftime("%Y-%m-%d %H:%M %z"), start, end)
    day: date = key
    if granularity == "day":
        return Period(day.isoformat(), _midnight(day, tz), _midnight(day + timedelta(days=1), tz))
    if granularity == "week":
        year, week, _ = day.isocalendar()
        return Period(f"{year}-W{week:02d}", _midnight(day, tz), _midnight(day + timedelta(days=7), tz))
    if granularity == "month":
        following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        return Period(f"{day:%Y-%m}", _midnight(day, tz), _midnight(following, tz))
    return Period(f"{day:%Y}", _midnight(day, tz), _midnight(date(day.year + 1, 1, 1), tz))


# Who waits past the target right now, from the live window: per (channel, queue), and per (channel, None)
# for the channel total with the channel's target, as the live KPIs count it.
WaitingPast = Mapping[tuple[str, str | None], int]


def _tally(values: Sequence[Any]) -> Tally:
    return Tally(**dict(zip(ROLLUP_FIELDS, values, strict=True)))


def _running_key(granularity: Granularity, now: float, tz: ZoneInfo) -> Any:
    """The query's period key of the period holding `now`."""
    if granularity == "interval":
        return datetime.fromtimestamp(interval_start(now), UTC)
    day = local_date(now, tz)
    if granularity == "day":
        return day
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day.replace(month=1, day=1)


def _row(
    period: Period,
    channel: str,
    queue: str | None,
    tally: Tally,
    targets: TargetBook,
    fcr_goal_pct: float,
    warning_margin_pct: float,
    now: float,
    waiting_past: WaitingPast,
) -> dict[str, Any]:
    target = targets(Channel(channel), queue)
    start, end = period.start.timestamp(), period.end.timestamp()
    closed = end <= now
    if closed:
        # Nobody is still waiting in a closed period; its arrivals spread over its whole length.
        past, hours = 0, period.hours
    else:
        # A period still running is what the live view shows: who waits past the target now counts as a
        # miss, and arrivals per hour are over the hours elapsed (none yet for a period not begun).
        past = waiting_past.get((channel, queue), 0) if start <= now else 0
        hours = max(0.0, now - start) / 3600
    live = kpi(
        tally,
        target,
        waiting_now=0,
        waiting_past_threshold=past,
        longest_wait_now=None,
        window_hours=hours,
        fcr_goal_pct=fcr_goal_pct,
        warning_margin_pct=warning_margin_pct,
    )
    level = live["service_level_pct"]
    return {
        "period": period.label,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "closed": closed,
        "channel": channel,
        "queue": queue,
        **{name: live[name] for name in REPORT_FIELDS},
        "goal_pct": target.goal_pct,
        "goal_met": None if level is None else level >= target.goal_pct,
        **staff_hours(tally),
    }


def staff_hours(tally: Tally) -> dict[str, float | None]:
    """The staff columns of a report row, from the rolled-up seconds."""
    busy_or_free = tally.handling_seconds + tally.available_seconds
    return {
        "staffed_hours": round(tally.staffed_seconds / 3600, 3),
        "handled_hours": round(tally.handling_seconds / 3600, 3),
        "occupancy": round(tally.handling_seconds / busy_or_free, 4) if busy_or_free > 0 else None,
    }


async def report(
    engine: AsyncEngine,
    targets: TargetBook,
    *,
    time_zone: str,
    granularity: Granularity,
    first: date,
    last: date,
    channel: Channel | None,
    queues: Sequence[str],
    fcr_goal_pct: float,
    warning_margin_pct: float,
    now: float,
    waiting_past: WaitingPast,
) -> list[dict[str, Any]]:
    """Rows per period and channel: the channel total (queue null) first, then each (chosen) queue.

    `now` decides which periods are closed; the period holding it takes `waiting_past` from the live
    window, and gets a row for every queue with someone waiting past its target even before the rollup
    has any tally of that queue in the period (a caller waiting since before midnight, say).
    """
    tz = ZoneInfo(time_zone)
    since = _midnight(first, tz).astimezone(UTC)
    until = _midnight(last + timedelta(days=1), tz).astimezone(UTC)
    async with raw_connection(engine) as driver:
        records = await driver.fetch(
            _query(granularity), since, until, channel.value if channel else None, time_zone
        )
    chosen = set(queues)
    grouped: dict[tuple[Any, str], list[tuple[str, Tally]]] = {}
    for record in records:
        grouped.setdefault((record[0], record[1]), []).append((record[2], _tally(record[3:])))
    if since.timestamp() <= now < until.timestamp():
        running = _running_key(granularity, now, tz)
        for (channel_name, queue_name), count in waiting_past.items():
            if queue_name is None or count <= 0 or (channel is not None and channel_name != channel.value):
                continue
            queue_tallies = grouped.setdefault((running, channel_name), [])
            if all(name != queue_name for name, _ in queue_tallies):
                queue_tallies.append((queue_name, Tally()))
                queue_tallies.sort(key=lambda item: item[0])
        grouped = dict(sorted(grouped.items(), key=lambda item: item[0]))
    rows: list[dict[str, Any]] = []
    for (key, channel_name), queue_tallies in grouped.items():
        period = period_of(granularity, key, tz)
        total = Tally()
        for _, tally in queue_tallies:
            total.add(tally)
        shared = (targets, fcr_goal_pct, warning_margin_pct, now, waiting_past)
        rows.append(_row(period, channel_name, None, total, *shared))
        for queue, tally in queue_tallies:
            if not chosen or queue in chosen:
                rows.append(_row(period, channel_name, queue, tally, *shared))
    return rows


async def queues_by_channel(engine: AsyncEngine) -> dict[str, list[str]]:
    """Every queue the rollup has rows for, by channel: what a report can be narrowed to."""
    async with raw_connection(engine) as driver:
        records = await driver.fetch(
            f"SELECT DISTINCT channel, queue FROM interval_rollup WHERE {_NOT_RETIRED} ORDER BY 1, 2"
        )
    queues: dict[str, list[str]] = {channel.value: [] for channel in Channel}
    for channel, queue in records:
        queues.setdefault(channel, []).append(queue)
    return queues


def csv_record(row: dict[str, Any]) -> list[Any]:
    """One report row as the CSV columns: the target flattened, empty for null, queue empty for the total."""
    flat = {
        **row,
        "threshold_seconds": row["target"]["threshold_seconds"],
        "formula": row["target"]["formula"],
    }
    return ["" if flat[name] is None else flat[name] for name in CSV_FIELDS]
