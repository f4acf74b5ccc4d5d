"""Running the real app in-process: its lifespan, replay and writer, driven through httpx."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.main import create_app
from app.services import Services
from app.settings import Settings

INGEST_HEADERS = {"Authorization": "Bearer test-ingest-token"}
ADMIN_HEADERS = {"Authorization": "Bearer test-admin-token"}


@dataclass
class RunningApp:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    async def post(self, body: object) -> httpx.Response:
        return await self.client.post("/v1/events", json=body, headers=INGEST_HEADERS)

    async def kpis(self, window: str = "today", **params: str) -> dict[str, object]:
        response = await self.client.get("/v1/kpis", params={"window": window, **params})
        response.raise_for_status()
        result: dict[str, object] = response.json()
        return result


@contextlib.asynccontextmanager
async def running_app(
    settings: Settings, clock: Callable[[], float] | None = None
) -> AsyncIterator[RunningApp]:
    """Start the app with its lifespan and wait until it reports ready."""
    app = create_app(settings, clock) if clock else create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://queuepulse") as client:
            for _ in range(600):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            else:
                raise TimeoutError("app never became ready")
            yield RunningApp(app, client)
