"""The queue registry live: admitting queues as their events commit, retiring and restoring them, and
keeping the stored tokens and registry in step with `queuepulse tokens` / `queuepulse queues` run from
another process.

Routes (admin scope):
  GET  /v1/queues                              every registered queue, retired ones included
  POST /v1/queues/{channel}/{queue}/retire     refuse its events, free its place under the caps, hide it
  POST /v1/queues/{channel}/{queue}/restore    admit its events again and show its stored history
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from app.api.auth import RequireAdmin
from app.api.deps import RequireReady, ServicesDep
from app.api.schemas import SLUG_PATTERN
from app.api.targets import live
from app.core.events import Channel
from app.core.queues import QueueKey
from app.db.queues import QueueRecord, load_queues, restore_queue, retire_queue, save_admitted
from app.db.rebuild import rebuild_window
from app.db.tokens import active_digests
from app.db.writer import Backpressure, StoreUnavailable
from app.services import Services

log = logging.getLogger(__name__)

# How often the stored tokens and the registry are read again: a token revoked, or a queue retired or
# restored, by the CLI in another process takes effect within this time (plus one query).
REFRESH_SECONDS = 5.0
# Waiting for the writer's queue to take the marker that follows every request admitted before a retire.
IN_FLIGHT_WAIT_SECONDS = 10.0
IN_FLIGHT_POLL_SECONDS = 0.05

# What a database that is down or restarting raises through SQLAlchemy or the socket.
STORE_ERRORS = (SQLAlchemyError, OSError)

router = APIRouter(prefix="/v1", tags=["queues"])


# ---- admitting (the events' side is app/ingest.py) -----------------------------------------------


async def persist_admitted(services: Services) -> None:
    """Write the queues admitted since the last write; on failure they stay for the next refresh."""
    unsaved = dict(services.queues.unsaved)
    if not unsaved:
        return
    try:
        await save_admitted(services.engine, unsaved)
    except Exception as error:
        log.warning("queue registry not written, will retry: %s: %s", type(error).__name__, error)
        return
    for key in unsaved:
        services.queues.unsaved.pop(key, None)


# ---- start-up and refresh -----------------------------------------------------------------------


async def load_sources(services: Services) -> None:
    """Read the stored tokens and the registry (at start-up, before the replay)."""
    services.tokens.use_stored(await active_digests(services.engine))
    records = await load_queues(services.engine)
    services.queues.load(
        ((record.key, record.admitted_by) for record in records if record.retired_at is None),
        ((record.key, record.admitted_by) for record in records if record.retired_at is not None),
    )


async def open_sources(services: Services) -> None:
    """After the start-up replay: hide the retired queues, and register the queues the replayed events
    name that the registry lost (a crash between their commit and the registry's write)."""
    window = services.window
    services.queues.hide_retired(window)
    added = services.queues.admit_unregistered(window.queues_seen())
    if added:
        log.warning("registered %d queues found in the stored events only", len(added))
    await persist_admitted(services)


async def refresh_sources(services: Services) -> None:
    """Take up what the CLI changed: tokens created or revoked, queues retired or restored."""
    services.tokens.use_stored(await active_digests(services.engine))
    await persist_admitted(services)
    async with services.admin_lock:
        records = await load_queues(services.engine)
        stored_retired = {record.key for record in records if record.retired_at is not None}
        for key in stored_retired:
            if key not in services.queues.retired:
                await _retire_here(services, key)
        registered = {record.key for record in records}
        for key in list(services.queues.retired):
            if key in registered and key not in stored_retired:
                await _restore_here(services, key)


async def refresh_sources_forever(services: Services, every: float = REFRESH_SECONDS) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await refresh_sources(services)
        except Exception as error:
            log.info("token and queue refresh deferred: %s: %s", type(error).__name__, error)


# ---- retiring and restoring ---------------------------------------------------------------------


class QueueNotFound(LookupError):
    pass


class QueueCapFull(RuntimeError):
    pass


async def _after_in_flight(services: Services) -> None:
    """Return once every request submitted before now has committed or failed.

    The writer commits requests in order, so an empty request queued now is answered after all of them.
    """
    waited = 0.0
    while True:
        try:
            await services.writer.submit([])
            return
        except StoreUnavailable:
            return
        except Backpressure:
            if waited >= IN_FLIGHT_WAIT_SECONDS:
                log.warning("retired a queue without waiting for the events in flight (ingest queue full)")
                return
        await asyncio.sleep(IN_FLIGHT_POLL_SECONDS)
        waited += IN_FLIGHT_POLL_SECONDS


async def _retire_here(services: Services, key: QueueKey) -> None:
    """Refuse the queue's events from now on, wait for those admitted before, then drop it from the window."""
    services.queues.retire(key)
    await _after_in_flight(services)
    services.window.drop_queue(*key)


async def _restore_here(services: Services, key: QueueKey) -> None:
    services.queues.restore(key)
    try:
        # Its stored events come back into today's figures, as a restart would show them.
        await rebuild_window(live(services))
    except Exception as error:
        log.warning("restored %s/%s; its history shows after the next rebuild: %s", *key, error)


async def retire(services: Services, key: QueueKey) -> QueueRecord:
    async with services.admin_lock:
        registry = services.queues
        if key not in registry.admitted and key not in registry.retired:
            raise QueueNotFound(key)
        was_retired = key in registry.retired
        admitted_by = registry.admitted.get(key, registry.retired.get(key))
        # Refused from this moment, so no event of it is admitted while the row is written.
        registry.retire(key)
        try:
            record = await retire_queue(services.engine, key, admitted_by)
        except Exception:
            if not was_retired:
                registry.restore(key)
            raise
        await _after_in_flight(services)
        services.window.drop_queue(*key)
        return record


async def restore(services: Services, key: QueueKey) -> QueueRecord:
    async with services.admin_lock:
        registry = services.queues
        if key not in registry.admitted and key not in registry.retired:
            raise QueueNotFound(key)
        if key in registry.retired and registry.in_force() >= services.settings.max_queues:
            raise QueueCapFull(key)
        record = await restore_queue(services.engine, key)
        if record is None:
            raise QueueNotFound(key)
        if key in registry.retired:
            await _restore_here(services, key)
        return record


# ---- routes -------------------------------------------------------------------------------------


class QueueOut(BaseModel):
    channel: Channel
    queue: str
    state: Literal["admitted", "retired"]
    admitted_by: str | None = Field(description="the ingest token whose events admitted it; null if unknown")
    admitted_at: datetime
    retired_at: datetime | None


class QueuesOut(BaseModel):
    max_queues: int
    max_queues_per_source: int
    in_force: int = Field(description="queues counted against max_queues now (admitted and in flight)")
    queues: list[QueueOut]


def _out(record: QueueRecord) -> QueueOut:
    return QueueOut(
        channel=record.channel,
        queue=record.queue,
        state="admitted" if record.retired_at is None else "retired",
        admitted_by=record.admitted_by,
        admitted_at=record.admitted_at,
        retired_at=record.retired_at,
    )


ChannelPath = Annotated[Channel, Path()]
QueuePath = Annotated[str, Path(pattern=SLUG_PATTERN)]


@router.get(
    "/queues",
    dependencies=[RequireAdmin, RequireReady],
    response_model=QueuesOut,
    responses={401: {}, 403: {}, 503: {}},
)
async def get_queues(services: ServicesDep) -> QueuesOut:
    """Every queue committed events admitted, who admitted it, and which are retired."""
    await persist_admitted(services)
    records = await load_queues(services.engine)
    return QueuesOut(
        max_queues=services.settings.max_queues,
        max_queues_per_source=services.settings.max_queues_per_source,
        in_force=services.queues.in_force(),
        queues=[_out(record) for record in records],
    )


def _not_found(channel: Channel, queue: str) -> HTTPException:
    return HTTPException(404, f"no queue {channel.value}/{queue} is registered")


def _unavailable(error: Exception) -> HTTPException:
    return HTTPException(
        503, f"not changed: the database did not answer: {type(error).__name__}", headers={"Retry-After": "1"}
    )


@router.post(
    "/queues/{channel}/{queue}/retire",
    dependencies=[RequireAdmin, RequireReady],
    response_model=QueueOut,
    responses={401: {}, 403: {}, 404: {}, 503: {}},
)
async def post_retire(channel: ChannelPath, queue: QueuePath, services: ServicesDep) -> QueueOut:
    """Retire a queue: its later events get 422, it leaves the caps, screens, metrics and reports.

    Its stored events are kept, so a restore brings its history back. Retiring twice changes nothing.
    """
    try:
        return _out(await retire(services, (channel, queue)))
    except QueueNotFound:
        raise _not_found(channel, queue) from None
    except STORE_ERRORS as error:
        raise _unavailable(error) from None


@router.post(
    "/queues/{channel}/{queue}/restore",
    dependencies=[RequireAdmin, RequireReady],
    response_model=QueueOut,
    responses={401: {}, 403: {}, 404: {}, 409: {}, 503: {}},
)
async def post_restore(channel: ChannelPath, queue: QueuePath, services: ServicesDep) -> QueueOut:
    """Admit a retired queue's events again; 409 while QUEUEPULSE_MAX_QUEUES queues are in force."""
    try:
        return _out(await restore(services, (channel, queue)))
    except QueueNotFound:
        raise _not_found(channel, queue) from None
    except QueueCapFull:
        raise HTTPException(
            409, f"{services.settings.max_queues} queues are in force; retire one before restoring"
        ) from None
    except STORE_ERRORS as error:
        raise _unavailable(error) from None
