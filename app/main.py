"""create_app() and the lifespan that owns every resource."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from app.api import bench, events, health, kpis, pages, reports, screens, staff, staffing, waits
from app.api.asterisk import router as asterisk_router
from app.api.limits import BodySizeLimit
from app.api.metrics import router as metrics_router
from app.api.qmatic import router as qmatic_router
from app.api.queues import load_sources, open_sources, persist_admitted, refresh_sources_forever
from app.api.queues import router as queues_router
from app.api.targets import live, refresh_targets_forever
from app.api.targets import router as targets_router
from app.api.tokens import router as tokens_router
from app.core.events import EVENT_TYPES, Event
from app.core.waits import WaitLedger
from app.core.window import Window
from app.db.checkpoint import Checkpointer, load_checkpoint
from app.db.embedded import asyncpg_dsn, database_url
from app.db.rebuild import heal_after_failed_commits, rebuild_window
from app.db.replay import replay_covering, replay_since
from app.db.rollup import Leadership, RollupWriter
from app.db.tail import Presence, Tail
from app.db.targets import load_targets
from app.db.waits import WaitFeed
from app.db.writer import GroupCommitWriter
from app.metrics import IngestTimer, Metrics
from app.services import Services, Tokens
from app.settings import Settings, target_book, window_config
from app.tasks import cancel_and_wait

log = logging.getLogger("queuepulse")

REPLAY_RETRY_SECONDS = 2.0
GC_YOUNG_THRESHOLD = 50_000


async def _join_window(services: Services) -> Window:
    """Build the window from the checkpoint and the log after it, or else by a full replay; adopt it."""
    now = services.clock()
    config = services.window.config
    joined = None
    if services.tail is not None:
        joined = await load_checkpoint(
            services.engine,
            lambda: Window(config, services.targets),
            services.queues.retired,
            now,
            services.waits,
        )
    if joined is not None and services.tail is not None:
        fresh, covered = joined
        services.window.adopt(fresh)
        services.tail.reset(covered)
        services.replayed_events = await services.tail.catch_up()
        services.window.housekeep(services.clock())
        # As after a replay: the processes before this one counted these outcomes already.
        services.window.start_lifetime_counts()
        services.joined_from_checkpoint = True
        return fresh
    fresh = Window(config, services.targets)
    services.replayed_events, covered = await replay_covering(services.engine, fresh, now)
    # The process before this one counted the replayed outcomes already.
    fresh.start_lifetime_counts()
    services.window.adopt(fresh)
    if services.tail is not None:
        services.tail.reset(covered)
    services.joined_from_checkpoint = False
    return fresh


async def _replay_then_open(services: Services) -> None:
    """Rebuild the window from the database, then start accepting events; retries while it is down."""
    while True:
        started = time.perf_counter()
        try:
            # Stored targets first: they decide which starts were within threshold during replay.
            await load_targets(services.engine, services.targets)
            # The stored ingest tokens and queue registry (retired queues, which source admitted which).
            await load_sources(services)
            # Into a fresh window, so a replay cut short by the database is retried from nothing.
            fresh = await _join_window(services)
            if services.waits is not None and services.joined_from_checkpoint and services.waits.restored:
                # The checkpoint held the wait ledger too: only the visit rows after it are read.
                await services.waits.refresh()
            elif services.waits is not None:
                # The lobby's wait ledger reads the same stored events, from nothing on each attempt.
                services.waits.ledger = WaitLedger(services.settings.max_wait_seconds)
                await services.waits.catch_up(replay_since(fresh, services.clock()))
        except Exception as error:
            log.warning("replay failed, retrying: %s: %s", type(error).__name__, error)
            await asyncio.sleep(REPLAY_RETRY_SECONDS)
            continue
        services.replay_seconds = time.perf_counter() - started
        break
    await open_sources(services)
    if services.rollup is not None:
        services.rollup.open(services.clock())
        services.rollup.start()
    services.writer.start()
    if services.waits is not None:
        services.waits.start()
    if services.tail is not None:
        services.tail.start()
    services.ready = True
    log.info("ready: replayed %d events in %.2f s", services.replayed_events, services.replay_seconds)
    await asyncio.gather(
        heal_after_failed_commits(live(services)),
        refresh_sources_forever(services),
        refresh_targets_forever(services),
    )


def _admit_seen(services: Services, applied: Sequence[Event]) -> None:
    """Register the queues of events the tail applied (another instance admitted them)."""
    keys = {(EVENT_TYPES[event.type][0], event.queue) for event in applied if event.type in EVENT_TYPES}
    # Not marked unsaved: the admitting instance writes the registry row, with its source.
    for key in services.queues.admit_unregistered(key for key in keys if key not in services.queues.admitted):
        services.queues.unsaved.pop(key, None)


def create_app(settings: Settings | None = None, clock: Callable[[], float] = time.time) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The window keeps millions of long-lived objects; a young generation this size keeps the cyclic
        # collector from running (and walking them) every few hundred allocations under ingest load.
        gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)
        url = database_url(settings)
        engine = create_async_engine(url, pool_size=settings.database_pool_size, pool_pre_ping=True)
        targets = target_book(settings)
        window = Window(window_config(settings), targets)
        metrics = Metrics(settings)
        writer = GroupCommitWriter(
            engine,
            on_commit=window.apply_many,
            on_duplicates=window.note_duplicates,
            max_batch=settings.writer_max_batch,
            queue_limit=settings.writer_queue_limit,
            clock=clock,
            on_flush=metrics.flushed,
            on_request=metrics.committed,
        )
        services = Services(
            settings=settings,
            engine=engine,
            window=window,
            targets=targets,
            writer=writer,
            tokens=Tokens(
                ingest=settings.resolved_ingest_token(),
                read=settings.token("read"),
                admin=settings.token("admin"),
            ),
            clock=clock,
            metrics=metrics,
        )
        tail = Tail(engine, window, clock=clock, poll_seconds=settings.tail_poll_seconds)
        # Queues another instance's events admitted count here too (caps, registry).
        tail.on_applied = lambda applied: _admit_seen(services, applied)
        writer.log = tail
        services.tail = tail
        # Seen by the other instances from now on (and counting them), before the replay.
        presence = Presence(asyncpg_dsn(url), tail)
        presence.start()
        services.waits = WaitFeed(engine, WaitLedger(settings.max_wait_seconds))
        metrics.watch(services)
        services.rollup = RollupWriter(
            engine,
            window,
            lambda: Window(window_config(settings), targets),
            clock=clock,
            # One instance at a time writes the rollup, under a PostgreSQL advisory lock.
            leadership=Leadership(asyncpg_dsn(url)),
        )
        # The rollup writer also writes the window checkpoint a joining instance starts from.
        services.rollup.after_flush = Checkpointer(
            engine,
            window,
            tail,
            lambda: list(services.queues.retired),
            clock,
            rebuild=lambda: rebuild_window(live(services)),
            every=settings.checkpoint_seconds,
            waits=services.waits,
            fork=settings.checkpoint_fork,
        ).maybe_write
        app.state.services = services
        opening = asyncio.create_task(_replay_then_open(services), name="replay")
        try:
            yield
        finally:
            await cancel_and_wait(opening)
            if services.ready:
                # The writer first: its last commits wait for the tail to order them.
                await writer.close()
                await persist_admitted(services)
                if services.rollup is not None:
                    await services.rollup.close()
                if services.waits is not None:
                    await services.waits.close()
            await tail.close()
            await presence.close()
            await engine.dispose()

    app = FastAPI(
        title="queuepulse",
        summary="Live service levels for citizen-service phone queues and ticket lobbies.",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's own pages load Swagger UI and ReDoc from a CDN and run inline scripts; /docs is served
        # from installed files instead (app/api/pages.py), and ReDoc is not offered.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(IngestTimer)
    app.include_router(events.router)
    app.include_router(targets_router)
    app.include_router(kpis.router)
    app.include_router(health.router)
    app.include_router(asterisk_router)
    app.include_router(qmatic_router)
    app.include_router(reports.router)
    app.include_router(screens.router)
    app.include_router(pages.router)
    app.include_router(metrics_router)
    app.include_router(queues_router)
    app.include_router(tokens_router)
    app.include_router(staffing.router)
    app.include_router(staff.router)
    app.include_router(waits.router)
    if settings.bench_endpoints:
        app.include_router(bench.router)
    return app
