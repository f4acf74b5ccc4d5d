"""The wall screens: the staff wallboard and the lobby screen, their static files, and the JSON they poll.

The pages are plain files from app/web/, served without a token: a wall browser cannot set headers, so
a page takes `?token=` from its own URL and sends it as a bearer token on every fetch of the JSON below.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse

from app.api.auth import RequireRead
from app.api.deps import RequireReady, ServicesDep
from app.api.pages import html_page, page_asset
from app.api.schemas import SLUG_PATTERN
from app.api.staff import desks_open
from app.core.clock import INTERVAL_SECONDS, local_date
from app.core.events import Channel
from app.core.kpis import shown
from app.services import Services

router = APIRouter(tags=["screens"])

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# Only these files are served, so no path from a URL ever reaches the file system.
ASSETS: dict[str, str] = {
    "screens.css": "text/css; charset=utf-8",
    "screens.js": "text/javascript; charset=utf-8",
    "wallboard.js": "text/javascript; charset=utf-8",
    "lobby.js": "text/javascript; charset=utf-8",
    # The report and staffing pages' CSV download.
    "download.js": "text/javascript; charset=utf-8",
}
LOBBY_CALLS_MAX = 50
# Fields of each interval the chart and its tooltip use; the rest of the figures would only add bytes.
INTERVAL_FIELDS = (
    "service_level_pct",
    "status",
    "arrived",
    "started",
    "started_within_target",
    "left_after_short_abandon",
    "waiting_past_target",
    "first_contact_resolution_pct",
)


def _page(name: str) -> FileResponse:
    return html_page(WEB_DIR / name)


@router.get("/screens/wallboard", include_in_schema=False)
async def wallboard() -> FileResponse:
    return _page("wallboard.html")


@router.get("/screens/lobby", include_in_schema=False)
async def lobby() -> FileResponse:
    return _page("lobby.html")


@router.get("/screens/assets/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, "no such asset")
    return page_asset(WEB_DIR / name, media_type)


def _iso(at: float, services: Services) -> str:
    return datetime.fromtimestamp(at, services.window.tz).isoformat(timespec="seconds")


def _queues(value: str | None) -> set[str] | None:
    if value is None or not value.strip():
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


@router.get("/v1/kpis/intervals", dependencies=[RequireRead, RequireReady])
async def kpi_intervals(
    services: ServicesDep,
    channel: Channel,
    queue: Annotated[str | None, Query(pattern=SLUG_PATTERN)] = None,
    day: Annotated[date | None, Query(alias="date")] = None,
) -> dict[str, Any]:
    """Service level and counts per 15-minute interval of a local day, for one queue or the channel total.

    Holds today and yesterday (the live window's span). The interval in progress also counts the
    contacts waiting past the threshold right now, as the live service level does: a pile of waiting
    callers shows as a dip at once, not only once they are answered.
    """
    now = services.clock()
    window = services.window
    today = local_date(now, window.tz)
    day = day or today
    if day not in (today, today - timedelta(days=1)):
        raise HTTPException(
            422, "date: only today and yesterday are held live; older days come from the history reports"
        )
    target = services.targets(channel, queue)
    settings = services.settings
    intervals = []
    for interval in window.interval_figures(channel, queue, day, now):
        figures = shown(interval.figures)
        intervals.append(
            {"start": _iso(interval.start, services), "current": interval.current}
            | {name: figures[name] for name in INTERVAL_FIELDS}
        )
    return {
        "channel": channel.value,
        "queue": queue,
        "date": day.isoformat(),
        "time_zone": settings.time_zone,
        "as_of": _iso(now, services),
        "interval_seconds": INTERVAL_SECONDS,
        "target": target.as_dict(),
        "intervals": intervals,
    }


@router.get("/v1/lobby", dependencies=[RequireRead, RequireReady])
async def lobby_status(
    services: ServicesDep,
    queue: Annotated[
        str | None, Query(description="comma-separated visit queues (ticket categories); all when absent")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=LOBBY_CALLS_MAX)] = 10,
) -> dict[str, Any]:
    """The tickets called most recently with their desks, newest first, and who is waiting per category,
    with the desks open per category and in total (`desks_open`: a desk open in two categories counts
    in each, and once in the total)."""
    now = services.clock()
    wanted = _queues(queue)
    calls = [
        {
            "ticket_number": call.ticket_number,
            "desk": call.desk,
            "queue": call.queue,
            "called_at": _iso(call.called_at, services),
        }
        for call in services.window.recent_calls()
        if wanted is None or call.queue in wanted
    ][:limit]
    visits = services.window.snapshot("15m", now, Channel.VISIT).channels[Channel.VISIT.value]
    desks = desks_open(services, now)
    waiting = []
    for name, kpis in visits.queues.items():
        if wanted is None or name in wanted:
            figures = shown(kpis)
            waiting.append(
                {
                    "queue": name,
                    "waiting_now": figures["waiting_now"],
                    "longest_wait_now_seconds": figures["longest_wait_now_seconds"],
                    "desks_open": desks.queues.get(name, 0),
                }
            )
    # A category with desks open and no ticket yet is listed too: nobody waits there.
    for name in sorted(set(desks.queues) - set(visits.queues)):
        if wanted is None or name in wanted:
            waiting.append(
                {
                    "queue": name,
                    "waiting_now": 0,
                    "longest_wait_now_seconds": None,
                    "desks_open": desks.queues[name],
                }
            )
    return {
        "as_of": _iso(now, services),
        "time_zone": services.settings.time_zone,
        "recent_calls": calls,
        "waiting": waiting,
        "desks_open": desks.total if wanted is None else desks.total_in(wanted),
    }
