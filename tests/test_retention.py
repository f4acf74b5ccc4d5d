"""Retention: `queuepulse prune` deletes events older than N days, in batches; nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.schemas import EventIn, single_event
from app.cli import main
from app.db.prune import prune_events
from app.db.tables import events


async def _insert(engine: AsyncEngine, days_ago: list[float]) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "event_id": f"e{index}",
            "type": "call.offered",
            "channel": "phone",
            "contact_id": f"c{index}",
            "queue": "borgerservice",
            "occurred_at": now - timedelta(days=days),
            "received_at": now - timedelta(days=days),
        }
        for index, days in enumerate(days_ago)
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(events), rows)


async def _left(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT event_id FROM events ORDER BY event_id"))
        return list(result.scalars())


async def test_prune_deletes_only_older_events_in_batches(clean_db: AsyncEngine) -> None:
    await _insert(clean_db, [40, 35, 31, 31, 30.5, 29, 1, 0])
    cutoff = datetime.now(UTC) - timedelta(days=30)
    assert await prune_events(clean_db, cutoff, batch=2) == 5
    assert await _left(clean_db) == ["e5", "e6", "e7"]
    assert await prune_events(clean_db, cutoff, batch=2) == 0


async def test_prune_command(
    clean_db: AsyncEngine,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("QUEUEPULSE_DATABASE_URL", database_url)
    monkeypatch.delenv("QUEUEPULSE_RETENTION_DAYS", raising=False)
    await _insert(clean_db, [100, 20, 5])
    # Without a number of days and without the setting, nothing is deleted: the default is to keep.
    assert main(["prune"]) == 2
    assert await _left(clean_db) == ["e0", "e1", "e2"]
    assert main(["prune", "--older-than-days", "30"]) == 0
    assert "deleted 1 events" in capsys.readouterr().out
    monkeypatch.setenv("QUEUEPULSE_RETENTION_DAYS", "10")
    assert main(["prune"]) == 0
    assert await _left(clean_db) == ["e2"]
    assert main(["prune", "--older-than-days", "0"]) == 2
    assert await _left(clean_db) == ["e2"]


@pytest.mark.parametrize("field", ["caller_number", "caller_name", "phone_number", "name", "cpr"])
def test_event_schema_has_no_field_for_personal_data(field: str) -> None:
    assert field not in EventIn.__annotations__
    assert field not in events.c
    body = {
        "event_id": "e1",
        "type": "call.offered",
        "contact_id": "c1",
        "queue": "borgerservice",
        "occurred_at": "2026-01-01T10:00:00+01:00",
        field: "+45 12 34 56 78",
    }
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        single_event.validate_python(body)
