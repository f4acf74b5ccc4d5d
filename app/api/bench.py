"""Ceiling endpoints for `make bench`, mounted only when QUEUEPULSE_BENCH_ENDPOINTS is on.

Each one does what a real route does minus the part being measured, in the same process and server, so
a benchmark can report the real route as a fraction of what the framework allows on the same machine.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.api.events import JSON_MEDIA_MESSAGE, answer, is_json_media_type, read_events, respond
from app.core.snapshot import snapshot_json
from app.ingest import Accepted, Invalid, check
from app.services import Services

# The source the ceiling's queue checks charge; its reservations are released at once.
BENCH_SOURCE = "bench"

router = APIRouter(prefix="/bench", tags=["bench"], include_in_schema=False)


@router.post("/parse")
async def parse_only(request: Request) -> Response:
    """POST /v1/events without auth and without the store: the same body reading, validation, time and
    queue checks (app/ingest.py) and answer, so the real route's shortfall is the store's share."""
    services: Services = request.app.state.services
    if not is_json_media_type(request.headers.get("content-type")):
        return JSONResponse({"detail": JSON_MEDIA_MESSAGE}, status_code=415)
    read = read_events(await request.body(), services.settings.max_batch)
    if isinstance(read, Invalid):
        return answer(read, False)
    checked = check(services, read.events, read.labels, BENCH_SOURCE, services.clock())
    if isinstance(checked, Invalid):
        return respond(checked, read)
    # Nothing is stored, so the queues it would have admitted are free again.
    services.queues.release(checked)
    return respond(Accepted(accepted=len(read.events), duplicates=0), read)


@router.get("/bytes")
async def precomputed_bytes(request: Request) -> Response:
    """A body of the same shape as GET /v1/kpis, serialised once and then served as it is."""
    state = request.app.state
    body: bytes | None = getattr(state, "bench_bytes", None)
    if body is None:
        services = state.services
        now = services.clock()
        body = state.bench_bytes = orjson.dumps(snapshot_json(services.window.snapshot("1h", now)))
    return Response(body, media_type="application/json")
