"""GET /v1/staffing: agents needed now per queue, as a range, from the live window (app/core/staffing.py);
GET /v1/staffing/plan per quarter-hour from the rollup; the managers' page /staffing."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, Response

from app.api.auth import ReadyReader
from app.api.pages import html_page, page_asset
from app.api.schemas import SLUG_PATTERN
from app.core.clock import INTERVAL_SECONDS, interval_start
from app.core.events import Channel
from app.core.staffing import adjustment, live_advice, plan_queue
from app.core.window import Window
from app.db.staffing import contact_pattern
from app.services import Services

router = APIRouter(tags=["staffing"])

PAGE_DIR = Path(__file__).resolve().parent.parent / "web" / "staffing"
# Only these files are served, so no path from a URL reaches the file system.
ASSETS: dict[str, str] = {
    "staffing.css": "text/css; charset=utf-8",
    "staffing.js": "text/javascript; charset=utf-8",
}


def staffed_now(window: Window, now: float) -> dict[Channel, dict[str, int] | None]:
    """Agents (phone) and desks (visit) staffed per queue now, from the staff readers; None for a channel
    with no staff time today, whose source sends no staff events: "0 staffed" would be a false figure."""
    current = window.staff("15m", now)
    today = window.staff("today", now)
    found: dict[Channel, dict[str, int] | None] = {}
    for channel in Channel:
        day = today.channels[channel.value].total
        if day.staffed == 0 and day.staffed_seconds <= 0:
            found[channel] = None
            continue
        found[channel] = {
            queue: figures.staffed for queue, figures in current.channels[channel.value].queues.items()
        }
    return found


def staffing_advice(services: Services, now: float) -> dict[str, Any]:
    queues: dict[str, dict[str, Any]] = {channel.value: {} for channel in Channel}
    staffed = staffed_now(services.window, now)
    for (channel, queue), advice in live_advice(
        services.window, now, services.settings.max_occupancy_pct
    ).items():
        known = staffed[channel]
        advice = replace(advice, staffed=None if known is None else known.get(queue, 0))
        queues[channel.value][queue] = advice.as_dict()
    return {
        "as_of": datetime.fromtimestamp(now, services.window.tz).isoformat(timespec="seconds"),
        "queues": queues,
    }


@router.get("/v1/staffing", responses={401: {}, 403: {}, 503: {}})
async def get_staffing(services: ReadyReader) -> dict[str, Any]:
    """Agents needed now per channel and queue, to meet each queue's own target.

    `needed` is {low, point, high}: the agents Erlang A (abandons counted as misses) or Erlang C
    requires at the arrival rate's 95 % interval and at its point estimate, with occupancy capped at
    QUEUEPULSE_MAX_OCCUPANCY_PCT; null with a `reason` when the data is too thin. `inputs` are the
    figures the advice rests on; `backlog` counts the contacts waiting past the threshold now, which
    the advice does not include. `staffed` is the agents (desks) logged in (open) in the queue now, from
    the staff events; null while the channel has had no staff time today (no staff events sent).
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
    "staffed",
    "staffed_usual",
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
        # Erlang for a day of quarter-hours takes a few tenths of a second: off the event loop, which
        # ingest and the screens share.
        intervals = await asyncio.to_thread(
            plan_queue,
            history,
            threshold_seconds=target.threshold_seconds,
            goal_pct=target.goal_pct,
            formula=target.formula,
            max_occupancy_pct=settings.max_occupancy_pct,
            interval_seconds=INTERVAL_SECONDS,
            factor=factor,
            adjust_from=running,
        )
        usual = pattern.staffed_usual.get((ch, name))
        had = pattern.staffed.get((ch, name))
        for row in intervals:
            # Mean agents over the quarter-hour: staff seconds / its length.
            start = row["start"]
            row["staffed_usual"] = (
                None if usual is None else round(usual.get(start, 0.0) / INTERVAL_SECONDS, 2)
            )
            row["staffed"] = (
                None if had is None or start > now else round(had.get(start, 0.0) / INTERVAL_SECONDS, 2)
            )
            row["start"] = datetime.fromtimestamp(start, tz).isoformat()
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
    "/v1/staffing/plan",
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
    against the baseline (`adjustment`). `staffed` is the agents (desks) the day had on average over each
    quarter-hour so far, `staffed_usual` the same over the baseline days, from the staff seconds in the
    rollup (null without staff events). `format=csv` gives one row per queue and quarter-hour.
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
                    row["staffed"],
                    row["staffed_usual"],
                    row["reason"],
                ]
                writer.writerow(["" if value is None else value for value in values])
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="queuepulse-staffing-{day}.csv"'},
    )


@router.get("/staffing", include_in_schema=False)
async def page() -> FileResponse:
    """The week's contact pattern and the plan against those staffed (app/web/staffing/)."""
    return html_page(PAGE_DIR / "index.html")


@router.get("/staffing/assets/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, "no such file")
    return page_asset(PAGE_DIR / name, media_type)
