"""GET /v1/lobby/waits: what a citizen taking a ticket now can expect to wait, and how well that held.

Authorised as /v1/lobby is (the read token when one is set, which the lobby screen carries in its URL):
the figures are those the lobby screen shows in public.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from app.api.auth import RequireRead
from app.api.deps import RequireReady, ServicesDep
from app.core.clock import day_bounds, local_date
from app.core.events import Channel
from app.core.waits import MIN_CALLED, MIN_SERVICES, RANGES, RECENT_SECONDS, WaitLedger
from app.db.waits import accuracy_by_day
from app.services import Services

router = APIRouter(tags=["lobby"])
log = logging.getLogger("queuepulse.waits")

# Past days' accuracy comes from the store; a year of days and queues is a few thousand rows.
MAX_ACCURACY_DAYS = 366
EARLIEST, LATEST = date(1970, 1, 2), date(9998, 12, 30)


def _queues(value: str | None) -> set[str] | None:
    if value is None or not value.strip():
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _ledger(services: Services) -> WaitLedger:
    if services.waits is None:
        raise HTTPException(503, "the wait ledger is not running")
    return services.waits.ledger


def ranges_json() -> list[dict[str, Any]]:
    return [
        {"range": name, "from_minutes": low / 60, "to_minutes": None if high is None else high / 60}
        for name, low, high in RANGES
    ]


def lobby_waits(services: Services, now: float, wanted: set[str] | None) -> dict[str, Any]:
    ledger = _ledger(services)
    window = services.window
    names = set(ledger.queue_names())
    names |= {queue for channel, queue in window.queues() if channel is Channel.VISIT}
    if wanted is not None:
        names = {name for name in names if name in wanted} | wanted
    # A retired queue's stored events stay in the ledger until they age out; it is shown nowhere else.
    names = {name for name in names if (Channel.VISIT, name) not in services.queues.retired}
    since, until = day_bounds(local_date(now, window.tz), window.tz)
    scores = ledger.score(since, until)
    queues = []
    for name in sorted(names):
        score = scores.get(name)
        queues.append(
            {
                "queue": name,
                "expected_wait": ledger.estimate(name, now).as_dict(),
                "accuracy_today": None if score is None else score.as_dict(),
            }
        )
    return {
        "as_of": datetime.fromtimestamp(now, window.tz).isoformat(timespec="seconds"),
        "time_zone": services.settings.time_zone,
        "ranges": ranges_json(),
        "min_services": MIN_SERVICES,
        "min_called": MIN_CALLED,
        "recent_seconds": RECENT_SECONDS,
        "queues": queues,
    }


@router.get("/v1/lobby/waits", dependencies=[RequireRead, RequireReady])
async def get_lobby_waits(
    services: ServicesDep,
    queue: Annotated[
        str | None, Query(description="comma-separated visit queues (ticket categories); all when absent")
    ] = None,
) -> dict[str, Any]:
    """The expected wait per visit queue for a ticket issued now, as a range, and today's accuracy.

    `expected_wait.range` is one of under_5, 5_10, 10_20, over_20 (minutes), from (people ahead + 1 -
    free desks) x mean service time / desks open (`basis: queue_length`), or, with the desks unknown,
    (people ahead + 1) / the tickets called per second over the last hour (`basis: throughput`); null
    with a `reason` when too few tickets were called or completed in the last hour. `accuracy_today`
    scores the estimates given to today's tickets (the one in force at each ticket's issue) against the
    waits they then had: the share inside the announced range and the mean absolute error.
    """
    if services.waits is not None:
        try:
            await services.waits.refresh()
        except Exception as error:
            # The store is away: the lobby screen keeps the ledger's last reading, as it keeps the
            # window's (its own background read retries).
            log.warning("wait ledger not refreshed: %s: %s", type(error).__name__, error)
    return lobby_waits(services, services.clock(), _queues(queue))


@router.get("/v1/lobby/waits/accuracy", dependencies=[RequireRead, RequireReady])
async def get_wait_accuracy(
    services: ServicesDep,
    first: Annotated[
        date | None, Query(alias="from", description="first local day (default: 30 days ago)")
    ] = None,
    last: Annotated[
        date | None, Query(alias="to", description="last local day, included (default: today)")
    ] = None,
) -> dict[str, Any]:
    """Per local day (of issue) and visit queue: estimates scored, the share whose actual wait fell inside
    the announced range, and the mean absolute error in minutes, from the stored scores."""
    now = services.clock()
    today = local_date(now, services.window.tz)
    last = last or today
    first = first or last - timedelta(days=29)
    if first > last:
        raise HTTPException(422, "from: must not be after to")
    if first < EARLIEST or last > LATEST:
        raise HTTPException(422, f"from, to: must lie between {EARLIEST} and {LATEST}")
    if (last - first).days >= MAX_ACCURACY_DAYS:
        raise HTTPException(422, f"to: at most {MAX_ACCURACY_DAYS} days")
    if services.waits is not None:
        await services.waits.refresh()
        await services.waits.persist()
    rows = await accuracy_by_day(services.engine, first, last, services.settings.time_zone)
    return {"from": first.isoformat(), "to": last.isoformat(), "days": rows}
