"""GET /v1/staff: who is there to answer, per channel and queue, live and over a window."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.auth import ReadyReader
from app.api.schemas import SLUG_PATTERN
from app.core.events import Channel
from app.core.staff import member_json, staff_json
from app.core.window import WindowName
from app.services import Services

router = APIRouter(prefix="/v1", tags=["staff"])


@router.get("/staff", responses={401: {}, 403: {}, 422: {}, 503: {}})
async def get_staff(
    services: ReadyReader,
    window: WindowName = "15m",
    channel: Channel | None = None,
    queue: Annotated[str | None, Query(pattern=SLUG_PATTERN)] = None,
) -> dict[str, Any]:
    """Agents (phone) and desks (visit) by state now, and their time over the window, per queue and in
    total. `channel` and `queue` narrow the answer. `members` (one entry per agent or desk) is there only
    with QUEUEPULSE_PER_AGENT_FIGURES on: the staff are watched by these screens too."""
    now = services.clock()
    body = staff_json(services.window.staff(window, now))
    body["as_of"] = datetime.fromtimestamp(now, services.window.tz).isoformat(timespec="seconds")
    channels: dict[str, Any] = body["channels"]
    if channel is not None:
        channels = {name: part for name, part in channels.items() if name == channel.value}
    if queue is not None:
        channels = {
            name: {**part, "queues": {key: value for key, value in part["queues"].items() if key == queue}}
            for name, part in channels.items()
        }
    body["channels"] = channels
    if services.settings.per_agent_figures:
        tz = services.window.tz
        body["members"] = [
            member_json(state)
            | {"since": datetime.fromtimestamp(state.since, tz).isoformat(timespec="seconds")}
            for state in services.window.staff_members(now)
            if (channel is None or state.channel == channel) and (queue is None or queue in state.queues)
        ]
    return body


@dataclass(frozen=True, slots=True)
class DesksOpen:
    """The lobby's desks open now: in total, per category, and each desk's categories."""

    total: int
    queues: dict[str, int]
    desks: tuple[tuple[str, frozenset[str]], ...]

    def total_in(self, wanted: Collection[str]) -> int:
        """Desks open in any of the categories, each counted once."""
        return sum(1 for _, queues in self.desks if not queues.isdisjoint(wanted))


def desks_open(services: Services, now: float) -> DesksOpen:
    """For GET /v1/lobby: the visit channel's `staffed`, the same figure /v1/staff shows."""
    visit = services.window.staff("15m", now).channels[Channel.VISIT.value]
    desks = tuple(
        (state.subject, frozenset(state.queues))
        for state in services.window.staff_members(now)
        if state.channel == Channel.VISIT and state.state != "offline"
    )
    queues = {name: figures.staffed for name, figures in visit.queues.items() if figures.staffed}
    return DesksOpen(visit.total.staffed, queues, desks)
