"""GET /v1/staffing: agents needed now per queue, as a range, from the live window (app/core/staffing.py)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from app.api.auth import ReadyReader
from app.api.schemas import SLUG_PATTERN
from app.core.clock import INTERVAL_SECONDS, interval_start
from app.core.events import Channel
from app.core.staffing import QueueInputs, WindowFigures, adjustment, advise, plan_queue
from app.core.window import ROLLING_SECONDS, Window
from app.db.staffing import contact_pattern
from app.services import Services

router = APIRouter(prefix="/v1", tags=["staffing"])


def _live_inputs(
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


def staffing_advice(services: Services, now: float) -> dict[str, Any]:
    queues: dict[str, dict[str, Any]] = {channel.value: {} for channel in Channel}
    for (channel, queue), (recent, hour, backlog) in sorted(_live_inputs(services.window, now).items()):
        target = services.targets(channel, queue)
        inputs = QueueInputs(target.threshold_seconds, target.goal_pct, target.formula, recent, hour, backlog)
        queues[channel.value][queue] = advise(inputs, services.settings.max_occupancy_pct).as_dict()
    return {
        "as_of": datetime.fromtimestamp(now, services.window.tz).isoformat(timespec="seconds"),
        "queues": queues,
    }


@router.get("/staffing", responses={401: {}, 403: {}, 503: {}})
async def get_staffing(services: ReadyReader) -> dict[str, Any]:
    """Agents needed now per channel and queue, to meet each queue's own target.

    `needed` is {low, point, high}: the agents Erlang A (abandons counted as misses) or Erlang C
    requires at the arrival rate's 95 % interval and at its point estimate, with occupancy capped at
    QUEUEPULSE_MAX_OCCUPANCY_PCT; null with a `reason` when the data is too thin. `inputs` are the
    figures the advice rests on; `backlog` counts the contacts waiting past the threshold now, which
    the advice does not include. `staffed` is null: agent states are not received yet.
    """
    return staffing_advice(services, services.clock())


PLAN_CSV_FIELDS = (
    "channel",
    "queue",
    "start",
    "arrivals",
    "handle_seconds",
    "needed_low",
    "needed_point",
    "needed_high",
    "reason",
)
# The baseline reaches 52 weeks back at most (staffing_history_weeks); inside these years every date is
# a valid one, and so is each baseline day.
EARLIEST_PLAN_YEAR, LATEST_PLAN_YEAR = 1971, 9998


async def staffing_plan(
    services: Services, day: date, now: float, channel: Channel | None, queue: str | None
) -> dict[str, Any]:
    settings = services.settings
    tz = services.window.tz
    pattern = await contact_pattern(
        services.engine,
        day=day,
        now=now,
        time_zone=settings.time_zone,
        weeks=settings.staffing_history_weeks,
        channel=channel,
    )
    running = float(interval_start(now))
    today = datetime.fromtimestamp(now, tz).date()
    queues: dict[str, dict[str, Any]] = {ch.value: {} for ch in Channel if channel in (None, ch)}
    for (ch, name), history in pattern.queues.items():
        if queue is not None and name != queue:
            continue
        target = services.targets(ch, name)
        factor: float | None = None
        if day == today:
            ended = [slot for slot in history.slots if slot.start < running]
            baseline = sum(slot.arrivals for slot in ended) / history.days
            factor = adjustment(sum(pattern.today.get((ch, name), {}).values()), baseline)
        intervals = plan_queue(
            history,
            threshold_seconds=target.threshold_seconds,
            goal_pct=target.goal_pct,
            formula=target.formula,
            max_occupancy_pct=settings.max_occupancy_pct,
            interval_seconds=INTERVAL_SECONDS,
            factor=factor,
            adjust_from=running,
        )
        for row in intervals:
            row["start"] = datetime.fromtimestamp(row["start"], tz).isoformat()
        queues[ch.value][name] = {
            "target": target.as_dict(),
            "days_used": history.days,
            "adjustment": None if factor is None else round(factor, 3),
            "intervals": intervals,
        }
    return {
        "date": day.isoformat(),
        "time_zone": settings.time_zone,
        "weeks": settings.staffing_history_weeks,
        "baseline_dates": [past.isoformat() for past in pattern.baseline],
        "generated_at": datetime.fromtimestamp(now, tz).isoformat(timespec="seconds"),
        "max_occupancy_pct": settings.max_occupancy_pct,
        "queues": queues,
    }


@router.get(
    "/staffing/plan",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}, 401: {}, 403: {}, 503: {}},
)
async def get_staffing_plan(
    services: ReadyReader,
    day: Annotated[date, Query(alias="date", description="the local day to plan")],
    channel: Channel | None = None,
    queue: Annotated[str | None, Query(pattern=SLUG_PATTERN)] = None,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """Agents needed per quarter-hour of a day, from the same weekday of the last N weeks.

    Per queue and local quarter-hour: the mean arrivals (short abandons left out) and handle time over
    the baseline days (QUEUEPULSE_STAFFING_HISTORY_WEEKS same weekdays before the day, and before today),
    and the agents needed {low, point, high} for the queue's target, the range from the arrivals' 95 %
    Poisson interval. For today, the quarter-hours not yet over are scaled by how today's ended ones ran
    against the baseline (`adjustment`). `format=csv` gives one row per queue and quarter-hour.
    """
    if not EARLIEST_PLAN_YEAR <= day.year <= LATEST_PLAN_YEAR:
        raise HTTPException(422, f"date: must lie in the years {EARLIEST_PLAN_YEAR} to {LATEST_PLAN_YEAR}")
    body = await staffing_plan(services, day, services.clock(), channel, queue)
    if format == "json":
        return Response(orjson.dumps(body), media_type="application/json")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(PLAN_CSV_FIELDS)
    for channel_name, by_queue in body["queues"].items():
        for queue_name, plan in by_queue.items():
            for row in plan["intervals"]:
                needed = row["needed"] or {}
                values = [
                    channel_name,
                    queue_name,
                    row["start"],
                    row["arrivals"],
                    row["handle_seconds"],
                    needed.get("low"),
                    needed.get("point"),
                    needed.get("high"),
                    row["reason"],
                ]
                writer.writerow(["" if value is None else value for value in values])
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="queuepulse-staffing-{day}.csv"'},
    )
