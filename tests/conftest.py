"""Test databases: a real PostgreSQL, migrated with Alembic, never the developer's own data.

QUEUEPULSE_TEST_DATABASE_URL names a server to use (a fresh database is created in it and dropped at the
end); without it an embedded pgserver is started in a temporary directory for the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.db.embedded import asyncpg_dsn, create_database_if_missing, normalise_url, run_coroutine_blocking
from app.db.migrate import run_migrations
from app.settings import Settings
from tests.running import RunningApp, running_app

TEST_DATABASE_URL_ENV = "QUEUEPULSE_TEST_DATABASE_URL"


@dataclass(frozen=True)
class PostgresServer:
    """A server the tests may create and drop databases on."""

    admin_url: str  # SQLAlchemy asyncpg URL of a database to connect to for CREATE/DROP DATABASE
    pgdata: Path | None = None  # the embedded server's data directory; None for an external server

    def url_for(self, database: str) -> str:
        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def create_database(self, prefix: str = "qp_test") -> str:
        """Create an empty, uniquely named database and return its SQLAlchemy URL."""
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        run_coroutine_blocking(lambda: create_database_if_missing(asyncpg_dsn(self.admin_url), name))
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        assert name is not None

        async def drop() -> None:
            conn = await asyncpg.connect(asyncpg_dsn(self.admin_url))
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        run_coroutine_blocking(drop)

    def stop(self, mode: str = "fast") -> None:
        """Stop the embedded server (mode "immediate" is a crash); tests of outages must start() it again."""
        self._pg_ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        socket_dir = make_url(self.admin_url).query["host"]
        assert self.pgdata is not None
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.pgdata / "log"), "start")

    def _pg_ctl(self, *args: str) -> None:
        if self.pgdata is None:
            pytest.skip("needs the embedded test server (QUEUEPULSE_TEST_DATABASE_URL is set)")
        from pgserver._commands import POSTGRES_BIN_PATH

        # pgserver runs the server as the user "pgserver" when we are root.
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), *args],
            check=True,
            # Not pipes: the started postmaster would inherit them and pg_ctl's output would never end.
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            user="pgserver" if os.geteuid() == 0 else None,
        )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server for this session: QUEUEPULSE_TEST_DATABASE_URL's, or an embedded one."""
    configured = os.environ.get(TEST_DATABASE_URL_ENV)
    if configured:
        yield PostgresServer(admin_url=normalise_url(configured))
        return

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
        import pgserver

    # Short and under /tmp: the unix socket lives in this directory and its path must fit in ~107 bytes.
    root = Path(tempfile.mkdtemp(prefix="qp-", dir="/tmp"))
    server: Any = pgserver.get_server(root / "pg", cleanup_mode="delete")
    running = PostgresServer(admin_url=normalise_url(str(server.get_uri())), pgdata=root / "pg")
    try:
        yield running
    finally:
        # A server restarted by an outage test is no longer pgserver's child, so cleanup() would leave
        # it running: stop it by its data directory first.
        with contextlib.suppress(subprocess.SubprocessError):
            running.stop("fast")
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL (postgresql+asyncpg://...) of a fresh database migrated to head, for the session."""
    url = postgres_server.create_database()
    run_migrations(url)
    yield url
    postgres_server.drop_database(url)


@pytest.fixture
def scratch_database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of an empty, unmigrated database of this test's own, dropped afterwards."""
    url = postgres_server.create_database(prefix="qp_scratch")
    yield url
    postgres_server.drop_database(url)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An AsyncEngine on the session's database, disposed after the test."""
    engine = create_async_engine(database_url, pool_size=2, max_overflow=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def clean_db(engine: AsyncEngine) -> AsyncEngine:
    """Empty every table (but alembic_version) before the test; gives the engine on that database."""
    async with engine.begin() as conn:
        names = (
            await conn.execute(
                text(
                    "SELECT quote_ident(tablename) FROM pg_tables "
                    "WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
                )
            )
        ).scalars()
        tables = ", ".join(names)
        if tables:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return engine


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings on the test database with fixed tokens and a temporary data directory."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        data_dir=tmp_path,
        ingest_token="test-ingest-token",
        admin_token="test-admin-token",
    )


@pytest.fixture
async def api(settings: Settings, clean_db: AsyncEngine) -> AsyncIterator[RunningApp]:
    """The whole service in-process on an emptied test database, ready to take requests."""
    async with running_app(settings) as running:
        yield running
