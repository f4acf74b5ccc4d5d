"""The resources a request may use, handed over from the lifespan as typed state."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.events import Channel
from app.core.targets import TargetBook
from app.core.window import Window
from app.db.rollup import RollupWriter
from app.db.writer import GroupCommitWriter
from app.metrics import Metrics
from app.settings import Settings


@dataclass(frozen=True)
class Tokens:
    """The secrets themselves; kept out of repr so a logged object never shows them."""

    ingest: str = field(repr=False)
    read: str | None = field(repr=False)
    admin: str | None = field(repr=False)


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
    rollup: RollupWriter | None = None
    kpi_query_cache: dict[bytes, tuple[tuple[int, int], bytes]] = field(default_factory=dict)
    # Queues admitted under settings.max_queues (app/api/limits.py), reserved before their events commit.
    queues: set[tuple[Channel, str]] = field(default_factory=set)
    # This app's own Prometheus registry and instruments (a registry per app, so tests never share one).
    metrics: Metrics = field(default_factory=Metrics)


# async: FastAPI runs a plain `def` dependency in the thread pool, a costly hop on every request.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def _ready(services: ServicesDep) -> None:
    if not services.ready:
        raise HTTPException(503, "starting: replaying today's events", headers={"Retry-After": "1"})


RequireReady = Depends(_ready)
