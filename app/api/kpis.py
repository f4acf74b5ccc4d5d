"""GET /v1/kpis: the live window as JSON, serialised once per change and second, then served as bytes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from app.api.auth import ReadyReader
from app.api.schemas import SLUG_PATTERN
from app.core.events import Channel
from app.core.snapshot import snapshot_json
from app.core.window import WindowName
from app.services import Services

router = APIRouter(prefix="/v1", tags=["kpis"])


def snapshot_bytes(
    services: Services, window: WindowName, channel: Channel | None, queue: str | None
) -> bytes:
    """The snapshot as JSON bytes, with `as_of` in the centre's time zone."""
    now = services.clock()
    snapshot = snapshot_json(services.window.snapshot(window, now, channel, queue))
    snapshot["as_of"] = datetime.fromtimestamp(now, services.window.tz).isoformat(timespec="seconds")
    return orjson.dumps(snapshot)


class KpiQuery(BaseModel):
    window: WindowName = "1h"
    channel: Channel | None = None
    queue: Annotated[str | None, Field(pattern=SLUG_PATTERN)] = None


_KPI_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "window",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["15m", "1h", "today"], "default": "1h"},
    },
    {
        "name": "channel",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": [channel.value for channel in Channel]},
    },
    {
        "name": "queue",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "pattern": SLUG_PATTERN},
    },
]
# Distinct query strings whose answers are kept; past this the cache starts afresh, so odd queries
# cannot grow it without bound.
QUERY_CACHE_LIMIT = 256


@router.get(
    "/kpis",
    responses={200: {"content": {"application/json": {}}}, 401: {}, 403: {}, 422: {}, 503: {}},
    openapi_extra={"parameters": _KPI_PARAMETERS},
)
async def get_kpis(request: Request, services: ReadyReader) -> Response:
    """Live KPIs per channel and queue against their targets, plus data-quality counters.

    Query: `window` (15m, 1h or today), `channel` (phone or visit), `queue` (a slug). Wall screens poll
    this many times a second, so a repeated query string is answered from the bytes made for it as long
    as neither the window nor the second has changed, without parsing the query again.
    """
    raw_query: bytes = request.scope["query_string"]
    stamp = (services.window.version, int(services.clock()))
    cached = services.kpi_query_cache.get(raw_query)
    if cached is not None and cached[0] == stamp:
        return Response(cached[1], media_type="application/json")
    try:
        query = KpiQuery.model_validate(dict(request.query_params))
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("query", *item["loc"])} for item in error.errors(include_url=False)]
        ) from error
    body = snapshot_bytes(services, query.window, query.channel, query.queue)
    if len(services.kpi_query_cache) >= QUERY_CACHE_LIMIT:
        services.kpi_query_cache.clear()
    services.kpi_query_cache[raw_query] = ((services.window.version, int(services.clock())), body)
    return Response(body, media_type="application/json")
