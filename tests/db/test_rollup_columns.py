"""The counted fields are declared once, by Tally (app/core/kpis.py COUNTED); the rollup's columns, the
interval_rollup table and the migrated database all hold exactly those, with the right kind."""

from __future__ import annotations

from dataclasses import fields

from sqlalchemy import Float, Integer, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.kpis import COUNTED, Tally
from app.db.rollup import COUNT_COLUMNS, ROLLUP_COLUMNS, ROLLUP_FIELDS, SUM_COLUMNS
from app.db.tables import interval_rollup

KEY_COLUMNS = {"channel", "queue", "interval_start"}
DECLARED = {counted.column: counted.kind for counted in COUNTED}


def test_every_tally_field_but_the_histogram_is_declared_counted() -> None:
    assert [counted.field for counted in COUNTED] == [
        spec.name for spec in fields(Tally) if spec.name != "wait_bins"
    ]
    assert {counted.field for counted in COUNTED if counted.kind == "sum"} >= {
        "wait_sum",
        "handle_sum",
        # agent and desk seconds (app/core/staff.py), rolled up as the live staff figures count them
        "staffed_seconds",
        "available_seconds",
        "handling_seconds",
        "paused_seconds",
    }


def test_tally_add_carries_every_counted_field() -> None:
    one = Tally()
    for counted in COUNTED:
        setattr(one, counted.field, 1)
    total = Tally()
    total.add(one)
    total.add(one)
    assert all(getattr(total, counted.field) == 2 for counted in COUNTED)
    total.add(one, -1)
    assert all(getattr(total, counted.field) == 1 for counted in COUNTED)


def test_the_rollup_writes_the_declared_columns_from_their_fields() -> None:
    assert set(ROLLUP_COLUMNS) == set(DECLARED)
    assert all(DECLARED[column] == "count" for column in COUNT_COLUMNS)
    assert all(DECLARED[column] == "sum" for column in SUM_COLUMNS)
    by_column = {counted.column: counted.field for counted in COUNTED}
    assert list(ROLLUP_FIELDS) == [by_column[column] for column in ROLLUP_COLUMNS]


def test_the_table_has_the_declared_columns_and_kinds() -> None:
    counted = {column.name: column for column in interval_rollup.columns if column.name not in KEY_COLUMNS}
    assert set(counted) == set(DECLARED)
    for name, column in counted.items():
        assert isinstance(column.type, Integer if DECLARED[name] == "count" else Float), name
        assert not column.nullable


async def test_the_migrated_database_has_the_declared_columns_and_kinds(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        columns = await conn.run_sync(lambda sync: inspect(sync).get_columns("interval_rollup"))
    counted = {column["name"]: column for column in columns if column["name"] not in KEY_COLUMNS}
    assert set(counted) == set(DECLARED)
    for name, column in counted.items():
        kind = Integer if DECLARED[name] == "count" else Float
        assert isinstance(column["type"], kind), (name, column["type"])
        assert not column["nullable"]
