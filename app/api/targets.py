"""GET /v1/targets and PUT /v1/targets/{channel}/{queue}: service-level targets, stored and applied live.

A change recomputes today's figures: the window is rebuilt by replaying the stored events with the new
target (app/db/rebuild.py), so within-threshold counts are exact for the target now in force and equal
what a restart would compute.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.auth import RequireAdmin, RequireRead
from app.api.deps import RequireReady, ServicesDep
from app.api.schemas import SLUG_PATTERN, strict_json_problems
from app.core.events import Channel
from app.core.kpis import Formula, Target
from app.core.targets import TargetBook
from app.db.rebuild import Live, rebuild_window
from app.db.targets import load_targets, store_target
from app.services import Services
from app.settings import target_book

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["targets"])

# A day: no citizen-service target waits longer, and a bound keeps the value finite.
MAX_THRESHOLD_SECONDS = 86_400.0


class TargetIn(BaseModel):
    """A queue's target: the wait threshold, the goal for the share within it, and the formula."""

    model_config = ConfigDict(extra="forbid")

    threshold_seconds: float = Field(gt=0, le=MAX_THRESHOLD_SECONDS)
    goal_pct: float = Field(ge=0, le=100)
    formula: Formula = "offered"


class TargetOut(TargetIn):
    channel: Channel
    queue: str | None = Field(description="null for the channel default")
    source: str = Field(description="'default' (settings) or 'queue' (set per queue)")


class TargetsOut(BaseModel):
    targets: list[TargetOut]


async def strict_json_body(request: Request) -> None:
    """Refuse, before the body is validated, what the JSON parser lets through: a key given twice (the
    last would win silently) and NaN, Infinity or 1e309, which a float field cannot hold and which would
    otherwise come back in the error's `input` and break its rendering."""
    try:
        problems = strict_json_problems(await request.body())
    except (ValueError, RecursionError):
        return  # not JSON: FastAPI's own parser answers that
    if problems:
        raise RequestValidationError(
            [
                {"type": "json_value", "loc": ("body", *problem.path), "msg": problem.message}
                for problem in problems
            ]
        )


# How often each instance compares its targets with the stored ones: a PUT on another instance is taken up
# (today's figures recomputed, as there) within this time plus one replay.
TARGETS_REFRESH_SECONDS = 1.0
# Held by a PUT for its store and rebuild: the refresh then waits for its next turn instead of replaying
# a second time for the target this process is putting in force itself.
_putting = asyncio.Lock()


async def refresh_targets(services: Services) -> bool:
    """Take up targets another instance stored: rebuild with them if they differ from those in force."""
    if _putting.locked():
        return False
    stored = target_book(services.settings)
    await load_targets(services.engine, stored)
    book = services.targets
    if stored.defaults == book.defaults and stored.overrides == book.overrides:
        return False

    def change(live_book: TargetBook) -> None:
        live_book.defaults, live_book.overrides = dict(stored.defaults), dict(stored.overrides)

    await rebuild_window(live(services), change)
    log.info("targets changed by another instance: today's figures recomputed")
    return True


async def refresh_targets_forever(services: Services, every: float = TARGETS_REFRESH_SECONDS) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await refresh_targets(services)
        except Exception as error:
            log.info("target refresh deferred: %s: %s", type(error).__name__, error)


def live(services: Services) -> Live:
    return Live(
        services.engine, services.writer, services.window, services.targets, services.clock, services.tail
    )


def _out(channel: Channel, queue: str | None, target: Target) -> TargetOut:
    return TargetOut(
        channel=channel,
        queue=queue,
        source="default" if queue is None else "queue",
        threshold_seconds=target.threshold_seconds,
        goal_pct=target.goal_pct,
        formula=target.formula,
    )


@router.get("/targets", dependencies=[RequireRead], response_model=TargetsOut, responses={401: {}, 403: {}})
async def get_targets(services: ServicesDep) -> TargetsOut:
    """The channel defaults and every per-queue target in force."""
    book = services.targets
    defaults = [_out(channel, None, target) for channel, target in sorted(book.defaults.items())]
    queues = [_out(channel, queue, target) for (channel, queue), target in sorted(book.overrides.items())]
    return TargetsOut(targets=defaults + queues)


@router.put(
    "/targets/{channel}/{queue}",
    dependencies=[RequireAdmin, RequireReady, Depends(strict_json_body)],
    response_model=TargetOut,
    responses={401: {}, 403: {}, 503: {}},
)
async def put_target(
    services: ServicesDep,
    channel: Channel,
    queue: Annotated[str, Path(pattern=SLUG_PATTERN)],
    body: TargetIn,
) -> Response:
    """Set one queue's target; stored, then today's figures are recomputed with it before the answer."""
    target = Target(body.threshold_seconds, body.goal_pct, body.formula)

    def change(book: TargetBook) -> None:
        book.set(channel, queue, target)

    async def store() -> None:
        await store_target(services.engine, channel, queue, target)

    try:
        async with _putting:
            await rebuild_window(live(services), change, before_swap=store)
    except Exception as error:
        return JSONResponse(
            {"detail": f"target not changed: {type(error).__name__}"},
            status_code=503,
            headers={"Retry-After": "1"},
        )
    return Response(_out(channel, queue, target).model_dump_json(), media_type="application/json")
