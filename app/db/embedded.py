"""The database URL: the configured one, or a PostgreSQL embedded with pgserver under the data directory."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import subprocess
import time
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.engine import make_url

from app.settings import Settings

T = TypeVar("T")

DATABASE_NAME = "queuepulse"
ASYNC_DRIVER = "postgresql+asyncpg"


def run_blocking(fn: Callable[[], T]) -> T:
    """Call fn, in a worker thread when this thread already runs an event loop (fn may use asyncio.run)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


def run_coroutine_blocking(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code, whether or not an event loop is running here."""
    return run_blocking(lambda: asyncio.run(factory()))


def normalise_url(url: str) -> str:
    """An SQLAlchemy URL for asyncpg: plain postgresql:// and postgres:// URLs get the driver added."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return ASYNC_DRIVER + "://" + url[len(prefix) :]
    return url


def asyncpg_dsn(url: str) -> str:
    """The DSN that asyncpg.connect() accepts for an SQLAlchemy URL (the driver suffix removed)."""
    return make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def database_url(settings: Settings) -> str:
    """The service's URL: settings.database_url if set, else the embedded server (started if needed)."""
    if settings.database_url:
        return normalise_url(settings.database_url)
    return start_embedded(settings.data_dir)


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the PostgreSQL kept in data_dir/pg, create the queuepulse database, return its URL.

    The server listens only on a unix socket and is left running on exit (cleanup_mode=None), so the data
    and the server outlive this process; the next start finds it running, or starts it on the same data.
    pgserver moves the socket to a short runtime directory itself when data_dir's path is too long
    for a unix socket (about 107 bytes).
    """
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (as under root or in containers).
        warnings.simplefilter("ignore")
        import pgserver

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _wait_until_reaped(data_dir / "pg")
    server = pgserver.get_server(data_dir / "pg", cleanup_mode=None)
    admin_url = str(server.get_uri())
    socket_dir = make_url(admin_url).query.get("host")
    if not isinstance(socket_dir, str):
        raise RuntimeError(f"embedded PostgreSQL gave no unix socket directory: {admin_url}")

    run_coroutine_blocking(lambda: create_database_if_missing(asyncpg_dsn(admin_url), DATABASE_NAME))
    return f"{ASYNC_DRIVER}://postgres@/{DATABASE_NAME}?host={socket_dir}"


def _wait_until_reaped(pgdata: Path, timeout: float = 15.0) -> None:
    """Wait while the postmaster that postmaster.pid names is a zombie.

    A killed postmaster stays a zombie until init reaps it, and until then both pgserver (which would
    reuse the "running" server) and postgres (which refuses to start beside it) take it for alive.
    """
    import psutil

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.1)


async def create_database_if_missing(admin_dsn: str, name: str) -> bool:
    """Create database `name` on the server of admin_dsn unless it exists; True if it was created."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        try:
            await conn.execute(f'CREATE DATABASE "{_identifier(name)}"')
        except asyncpg.DuplicateDatabaseError:
            return False  # another process created it between our check and our CREATE
        return True
    finally:
        await conn.close()


def _identifier(name: str) -> str:
    if not name or not all(c.isalnum() or c == "_" for c in name):
        raise ValueError(f"not a plain database name: {name!r}")
    return name


def pg_ctl(pgdata: Path, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run pgserver's own pg_ctl on pgdata, as the user pgserver runs the server as when we are root."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH

    return subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        user="pgserver" if os.geteuid() == 0 else None,
        check=False,
    )


@dataclass(frozen=True)
class EmbeddedStatus:
    pgdata: Path
    exists: bool
    running: bool
    pid: int | None


def embedded_status(data_dir: Path) -> EmbeddedStatus:
    """Whether data_dir holds an embedded server, and whether its postmaster is running."""
    pgdata = data_dir.expanduser().resolve() / "pg"
    if not (pgdata / "PG_VERSION").exists():
        return EmbeddedStatus(pgdata, exists=False, running=False, pid=None)
    _wait_until_reaped(pgdata)
    # pg_ctl status: 0 running, 3 not running (4: no accessible data directory).
    running = pg_ctl(pgdata, "status").returncode == 0
    pid = None
    if running:
        with contextlib.suppress(OSError, ValueError):
            pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    return EmbeddedStatus(pgdata, exists=True, running=running, pid=pid)


def stop_embedded(data_dir: Path) -> bool:
    """Stop the embedded server in data_dir if it runs (fast shutdown: sessions end, data is safe).

    Returns whether a server was stopped. `make run` leaves it running on purpose, for fast restarts.
    """
    status = embedded_status(data_dir)
    if not status.running:
        return False
    result = pg_ctl(status.pgdata, "-w", "-m", "fast", "stop")
    if result.returncode != 0:
        raise RuntimeError(f"pg_ctl stop failed: {result.stderr.strip() or result.stdout.strip()}")
    return True
