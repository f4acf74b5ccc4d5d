"""GET /metrics: the Prometheus text format from the service's own registry."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.auth import RequireRead
from app.api.deps import ServicesDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", dependencies=[RequireRead], responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(services: ServicesDep) -> Response:
    """Live queue figures and service health for Prometheus, computed from the window at scrape time.

    An `async def` route on purpose: the collector reads the window on the event loop that changes it.
    Open like the other read endpoints, or behind the read token when one is set.
    """
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
