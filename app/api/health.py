"""Liveness and readiness for orchestrators and load balancers."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import ServicesDep

router = APIRouter(tags=["health"])

DATABASE_CHECK_SECONDS = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "alive"}


@router.get("/readyz", responses={503: {}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready once today's events are replayed and while the database answers."""
    if not services.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    lag = 0.0 if services.tail is None else services.tail.lag_seconds()
    if lag > services.settings.tail_max_lag_seconds:
        # Other instances' commits are not in this window yet: a load balancer sends readers elsewhere.
        return JSONResponse({"status": "behind", "tail_lag_seconds": round(lag, 3)}, status_code=503)
    try:
        async with asyncio.timeout(DATABASE_CHECK_SECONDS), services.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:
        return JSONResponse(
            {"status": "database unavailable", "error": type(error).__name__}, status_code=503
        )
    return JSONResponse(
        {"status": "ready", "replayed_events": services.replayed_events, "tail_lag_seconds": round(lag, 3)}
    )
