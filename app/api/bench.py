"""Ceiling endpoints for `make bench`, mounted only when QUEUEPULSE_BENCH_ENDPOINTS is on.

Each one does what a real route does minus the part being measured, in the same process and server, so
a benchmark can report the real route as a fraction of what the framework allows on the same machine.
"""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.api.schemas import IngestResult, event_batch, future_issues, single_event

router = APIRouter(prefix="/bench", tags=["bench"], include_in_schema=False)


@router.post("/parse")
async def parse_only(request: Request) -> Response:
    """POST /v1/events without auth or persistence: the same body parsing, validation and answer."""
    body = await request.body()
    batch = body.lstrip()[:1] == b"["
    try:
        core = event_batch.validate_json(body) if batch else [single_event.validate_json(body)]
    except ValidationError as error:
        return Response(error.json(include_url=False), status_code=422, media_type="application/json")
    if future_issues(core, time.time(), 300.0):
        return Response(b'{"detail":"future"}', status_code=422, media_type="application/json")
    return Response(
        IngestResult(accepted=len(core), duplicates=0).model_dump_json(), media_type="application/json"
    )


@router.get("/bytes")
async def precomputed_bytes(request: Request) -> Response:
    """A body of the same shape as GET /v1/kpis, serialised once and then served as it is."""
    state = request.app.state
    body: bytes | None = getattr(state, "bench_bytes", None)
    if body is None:
        services = state.services
        now = services.clock()
        body = state.bench_bytes = orjson.dumps(services.window.snapshot("1h", now))
    return Response(body, media_type="application/json")
