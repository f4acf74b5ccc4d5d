from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, insert, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.db.migrate import downgrade_migrations, run_migrations
from app.db.tables import events, metadata
from tests.conftest import PostgresServer


def _schema(conn: Connection) -> dict[str, Any]:
    inspector = inspect(conn)
    tables = sorted(inspector.get_table_names())
    return {
        "tables": tables,
        "columns": {
            t: [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(t)] for t in tables
        },
        "unique": {t: inspector.get_unique_constraints(t) for t in tables},
        "indexes": {t: inspector.get_indexes(t) for t in tables},
        "pk": {t: inspector.get_pk_constraint(t) for t in tables},
    }


async def _schema_of(url: str) -> dict[str, Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_schema)
    finally:
        await engine.dispose()


async def test_events_table_has_unique_event_id(engine: AsyncEngine) -> None:
    schema = await _schema_of(engine.url.render_as_string(hide_password=False))
    assert "events" in schema["tables"]
    unique = schema["unique"]["events"]
    assert {"name": "uq_events_event_id", "column_names": ["event_id"]}.items() <= unique[0].items()
    index_names = {ix["name"] for ix in schema["indexes"]["events"]}
    assert "ix_events_occurred_at" in index_names
    assert schema["pk"]["events"]["name"] == "pk_events"


async def test_migrated_columns_match_tables_module(engine: AsyncEngine) -> None:
    schema = await _schema_of(engine.url.render_as_string(hide_password=False))
    migrated = {name for name, _type, _nullable in schema["columns"]["events"]}
    assert migrated == {c.name for c in metadata.tables["events"].columns}
    nullable = {name: n for name, _type, n in schema["columns"]["events"]}
    assert nullable == {c.name: c.nullable for c in events.columns}


async def test_migrations_match_tables_module_exactly(engine: AsyncEngine) -> None:
    def diff(conn: Connection) -> list[Any]:
        opts = {"compare_type": True, "compare_server_default": True}
        context = MigrationContext.configure(conn, opts=opts)
        return list(compare_metadata(context, metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_duplicate_event_id_is_rejected_and_received_at_defaults(clean_db: AsyncEngine) -> None:
    row = {
        "event_id": "e-1",
        "type": "call.offered",
        "channel": "phone",
        "contact_id": "c-1",
        "queue": "borgerservice",
        "occurred_at": dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC),
    }
    async with clean_db.begin() as conn:
        await conn.execute(insert(events), [row])
        stored = (await conn.execute(select(events.c.id, events.c.received_at))).one()
    assert stored.id == 1
    assert stored.received_at.tzinfo is not None
    with pytest.raises(IntegrityError):
        async with clean_db.begin() as conn:
            await conn.execute(insert(events), [row])


async def test_clean_db_empties_tables_and_restarts_ids(clean_db: AsyncEngine) -> None:
    async with clean_db.connect() as conn:
        assert (await conn.execute(select(events.c.id))).first() is None


async def test_downgrade_and_upgrade_roundtrip(scratch_database_url: str) -> None:
    run_migrations(scratch_database_url)
    upgraded = await _schema_of(scratch_database_url)
    assert "events" in upgraded["tables"]

    downgrade_migrations(scratch_database_url, "base")
    assert (await _schema_of(scratch_database_url))["tables"] == ["alembic_version"]

    run_migrations(scratch_database_url)
    assert await _schema_of(scratch_database_url) == upgraded


async def test_embedded_server_can_be_stopped_and_started(
    postgres_server: PostgresServer, scratch_database_url: str
) -> None:
    postgres_server.stop(mode="immediate")
    try:
        with pytest.raises((ConnectionRefusedError, FileNotFoundError)):
            await _schema_of(scratch_database_url)
    finally:
        postgres_server.start()
    assert (await _schema_of(scratch_database_url))["tables"] == []
