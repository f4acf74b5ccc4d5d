"""The resources a request may use, handed over from the lifespan as typed state."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.targets import TargetBook
from app.core.window import Window
from app.db.writer import GroupCommitWriter
from app.settings import Settings


@dataclass(frozen=True)
class Tokens:
    ingest: str
    read: str | None
    admin: str | None


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    window: Window
    targets: TargetBook
    writer: GroupCommitWriter
    tokens: Tokens
    clock: Callable[[], float] = time.time
    ready: bool = False
    replayed_events: int = 0
    replay_seconds: float = 0.0
    kpi_cache: dict[tuple[str, str | None, str | None], tuple[int, int, bytes]] = field(default_factory=dict)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def _ready(services: ServicesDep) -> None:
    if not services.ready:
        raise HTTPException(503, "starting: replaying today's events", headers={"Retry-After": "1"})


RequireReady = Depends(_ready)
