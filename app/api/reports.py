"""History reports: GET /v1/reports (JSON or CSV) and the managers' report page /reports."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, Response

from app.api.auth import RequireRead
from app.api.deps import ServicesDep
from app.api.pages import html_page, page_asset
from app.core.clock import local_date
from app.core.events import Channel
from app.db.reports import CSV_FIELDS, Granularity, WaitingPast, csv_record, queues_by_channel, report
from app.services import Services

router = APIRouter(tags=["reports"])

PAGE_DIR = Path(__file__).resolve().parent.parent / "web" / "reports"
# Only these files are served, so no path from a URL reaches the file system.
ASSETS: dict[str, str] = {
    "reports.css": "text/css; charset=utf-8",
    "reports.js": "text/javascript; charset=utf-8",
}
# A quarter-hour report is for looking closely at a few days; a year of them would be 35,000 rows a queue.
MAX_INTERVAL_DAYS = 31
# Far enough for any history, near enough that local midnights convert to UTC without overflow.
EARLIEST, LATEST = date(1970, 1, 1), date(9998, 12, 31)
QUEUE_LIST_PATTERN = r"^[a-z0-9_-]{1,64}(,[a-z0-9_-]{1,64})*$"


def _queues(value: str | None) -> list[str]:
    return value.split(",") if value else []


def waiting_past_now(services: Services, now: float) -> WaitingPast:
    """Who waits past the target now, per queue and channel total, exactly as the live KPIs count it."""
    snapshot = services.window.snapshot("today", now)
    waiting: dict[tuple[str, str | None], int] = {}
    for channel, figures in snapshot.channels.items():
        waiting[(channel, None)] = figures.total.waiting_past_target
        for queue, kpis in figures.queues.items():
            waiting[(channel, queue)] = kpis.waiting_past_target
    return waiting


@router.get(
    "/v1/reports",
    dependencies=[RequireRead],
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
async def get_report(
    services: ServicesDep,
    granularity: Granularity = "month",
    first: Annotated[
        date | None, Query(alias="from", description="first local day (default: 1 January)")
    ] = None,
    last: Annotated[
        date | None, Query(alias="to", description="last local day, included (default: today)")
    ] = None,
    channel: Channel | None = None,
    queue: Annotated[
        str | None, Query(pattern=QUEUE_LIST_PATTERN, description="one queue, or several separated by commas")
    ] = None,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """Service level, waits, abandons and first-contact resolution per local period and queue.

    Each period has a row for the channel total (`queue` null; all its queues, as live) and one per queue
    (the chosen ones, if `queue` is given). Same formulas and targets as the live KPIs; a closed period
    has nobody still waiting, and the rollup keeps no per-second wait bins, so no percentiles. A period
    that holds now is marked `closed: false` and counted as live: who waits past the target now is a
    miss, and arrivals per hour are over the hours elapsed.
    """
    settings = services.settings
    now = services.clock()
    today = local_date(now, services.window.tz)
    last = last or today
    first = first or date(last.year, 1, 1)
    if first > last:
        raise HTTPException(422, "from: must not be after to")
    if first < EARLIEST or last > LATEST:
        raise HTTPException(422, f"from, to: must lie between {EARLIEST} and {LATEST}")
    if granularity == "interval" and (last - first).days >= MAX_INTERVAL_DAYS:
        raise HTTPException(422, f"to: interval reports span at most {MAX_INTERVAL_DAYS} days")
    rows = await report(
        services.engine,
        services.targets,
        time_zone=settings.time_zone,
        granularity=granularity,
        first=first,
        last=last,
        channel=channel,
        queues=_queues(queue),
        fcr_goal_pct=settings.first_contact_resolution_goal_pct,
        warning_margin_pct=settings.warning_margin_pct,
        now=now,
        waiting_past=waiting_past_now(services, now),
    )
    if format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_FIELDS)
        writer.writerows(csv_record(row) for row in rows)
        name = f"queuepulse-{granularity}-{first}-{last}.csv"
        return Response(
            buffer.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    body: dict[str, Any] = {
        "granularity": granularity,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "time_zone": settings.time_zone,
        "generated_at": datetime.fromtimestamp(now, services.window.tz).isoformat(timespec="seconds"),
        "queues": await queues_by_channel(services.engine),
        "rows": rows,
    }
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/reports", include_in_schema=False)
async def page() -> FileResponse:
    return html_page(PAGE_DIR / "index.html")


@router.get("/reports/assets/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, "no such file")
    return page_asset(PAGE_DIR / name, media_type)
