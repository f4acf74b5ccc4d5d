"""The FastAPI dependencies that hand a request the services the lifespan built (app/services.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.services import Services


# async: FastAPI runs a plain `def` dependency in the thread pool, a costly hop on every request.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def check_ready(services: Services) -> None:
    """503 until the start-up replay is done; then a window rebuilt since the last request is cleared of
    retired queues before anything reads it (see QueueRegistry.hide_retired)."""
    if not services.ready:
        raise HTTPException(503, "starting: replaying today's events", headers={"Retry-After": "1"})
    services.queues.hide_retired(services.window)


async def _ready(services: ServicesDep) -> None:
    check_ready(services)


RequireReady = Depends(_ready)
