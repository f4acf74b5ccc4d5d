"""GET /v1/kpis: the live window as JSON, serialised once per change and second, then served as bytes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.api.auth import RequireRead
from app.api.deps import RequireReady, Services, ServicesDep
from app.api.schemas import SLUG_PATTERN
from app.core.events import Channel
from app.core.window import WindowName

router = APIRouter(prefix="/v1", tags=["kpis"])


def snapshot_bytes(
    services: Services, window: WindowName, channel: Channel | None, queue: str | None
) -> bytes:
    """The snapshot as JSON bytes, reused while neither the window nor the second has changed."""
    now = services.clock()
    key = (window, channel.value if channel else None, queue)
    stamp = (services.window.version, int(now))
    cached = services.kpi_cache.get(key)
    if cached is not None and cached[:2] == stamp:
        return cached[2]
    snapshot: dict[str, Any] = services.window.snapshot(window, now, channel, queue)
    snapshot["as_of"] = datetime.fromtimestamp(now, services.window.tz).isoformat(timespec="seconds")
    body = orjson.dumps(snapshot)
    services.kpi_cache[key] = (services.window.version, int(now), body)
    return body


@router.get(
    "/kpis", dependencies=[RequireRead, RequireReady], responses={200: {"content": {"application/json": {}}}}
)
async def get_kpis(
    services: ServicesDep,
    window: Literal["15m", "1h", "today"] = "1h",
    channel: Channel | None = None,
    queue: Annotated[str | None, Query(pattern=SLUG_PATTERN)] = None,
) -> Response:
    """Live KPIs per channel and queue against their targets, plus data-quality counters."""
    return Response(snapshot_bytes(services, window, channel, queue), media_type="application/json")
