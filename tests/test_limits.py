"""Limits with clear answers: 413 for big bodies, 422 for big batches, long fields and too many queues,
503 with Retry-After when the writer's queue is full; none of them stores anything."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.running import ADMIN_HEADERS, INGEST_HEADERS, RunningApp, running_app


def _event(index: int, queue: str = "borgerservice", **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"e{index}",
        "type": "call.offered",
        "contact_id": f"c{index}",
        "queue": queue,
        "occurred_at": datetime.now(UTC).isoformat(),
        **fields,
    }


async def _stored(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        count: int = (await connection.execute(text("SELECT count(*) FROM events"))).scalar_one()
    return count


@pytest.fixture
def small(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"max_body_bytes": 4096, "max_queues": 3, "max_batch": 10, "writer_queue_limit": 10}
    )


@pytest.fixture
async def limited(small: Settings, clean_db: AsyncEngine) -> AsyncIterator[RunningApp]:
    async with running_app(small) as running:
        yield running


async def test_body_over_the_limit_by_content_length(limited: RunningApp, clean_db: AsyncEngine) -> None:
    body = orjson.dumps([_event(i, source="x" * 60) for i in range(40)])
    assert len(body) > 4096
    response = await limited.client.post(
        "/v1/events", content=body, headers={**INGEST_HEADERS, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "4096" in response.json()["detail"]
    assert await _stored(clean_db) == 0


async def test_streamed_body_over_the_limit(limited: RunningApp, clean_db: AsyncEngine) -> None:
    chunk = orjson.dumps(_event(1)) + b" " * 1000

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield chunk

    response = await limited.client.post(
        "/v1/events", content=chunks(), headers={**INGEST_HEADERS, "Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert await _stored(clean_db) == 0


async def test_streamed_body_within_the_limit_is_taken(limited: RunningApp) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        body = orjson.dumps(_event(1))
        yield body[:10]
        yield body[10:]

    response = await limited.client.post(
        "/v1/events", content=chunks(), headers={**INGEST_HEADERS, "Content-Type": "application/json"}
    )
    assert response.json() == {"accepted": 1, "duplicates": 0}


async def test_target_body_is_limited_too(limited: RunningApp) -> None:
    body = b'{"threshold_seconds": 60, "goal_pct": 90' + b" " * 5000 + b"}"
    response = await limited.client.put(
        "/v1/targets/phone/pas", content=body, headers={**ADMIN_HEADERS, "Content-Type": "application/json"}
    )
    assert response.status_code == 413


async def test_batch_over_max_batch(limited: RunningApp, clean_db: AsyncEngine) -> None:
    response = await limited.post([_event(i) for i in range(11)])
    assert response.status_code == 422
    assert "at most 10 events" in response.json()["detail"][0]["message"]
    assert await _stored(clean_db) == 0
    assert (await limited.post([_event(i) for i in range(10)])).status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", "x" * 129),
        ("contact_id", "x" * 129),
        ("queue", "q" * 65),
        ("source", "s" * 65),
        ("agent", "a" * 129),
    ],
)
async def test_long_fields_are_refused_naming_the_field(
    api: RunningApp, clean_db: AsyncEngine, field: str, value: str
) -> None:
    response = await api.post([_event(1), {**_event(2), field: value}])
    assert response.status_code == 422
    issues = response.json()["detail"]
    assert [(issue["index"], issue["field"]) for issue in issues] == [(1, field)]
    assert await _stored(clean_db) == 0


async def test_queue_cap_is_all_or_nothing(
    limited: RunningApp, small: Settings, clean_db: AsyncEngine
) -> None:
    assert (await limited.post([_event(1, "a"), _event(2, "b"), _event(3, "c")])).status_code == 200
    refused = await limited.post([_event(4, "a"), _event(5, "d"), _event(6, "e")])
    assert refused.status_code == 422
    issues = refused.json()["detail"]
    assert [(issue["index"], issue["field"]) for issue in issues] == [(1, "queue"), (2, "queue")]
    assert "at most 3 distinct queues" in issues[0]["message"]
    assert await _stored(clean_db) == 3
    single = await limited.post(_event(7, "f"))
    assert single.status_code == 422
    assert single.json()["detail"][0]["field"] == "queue"
    # Known queues still take events, and the cap holds after a restart (replay rebuilds the queues).
    assert (await limited.post(_event(8, "b"))).status_code == 200
    kpis = await limited.kpis("today")
    assert sorted(kpis["channels"]["phone"]["queues"]) == ["a", "b", "c"]  # type: ignore[index]
    async with running_app(small) as restarted:
        assert (await restarted.post(_event(9, "g"))).status_code == 422
        assert (await restarted.post(_event(10, "c"))).status_code == 200
    assert await _stored(clean_db) == 5


async def test_queue_cap_counts_a_new_queue_once_per_batch(limited: RunningApp) -> None:
    batch = [_event(1, "a"), _event(2, "b"), _event(3, "c"), _event(4, "c"), _event(5, "a")]
    assert (await limited.post(batch)).json() == {"accepted": 5, "duplicates": 0}


async def test_full_writer_queue_answers_503_with_retry_after(
    limited: RunningApp, clean_db: AsyncEngine
) -> None:
    writer = limited.services.writer
    async with writer.paused():
        waiting = [asyncio.create_task(limited.post([_event(i + 5 * n) for i in range(5)])) for n in range(2)]
        for _ in range(1000):
            if writer.stats.pending_rows == 10:
                break
            await asyncio.sleep(0.01)
        assert writer.stats.pending_rows == 10
        refused = await limited.post(_event(99))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert not any(task.done() for task in waiting)
    answers = await asyncio.gather(*waiting)
    assert [answer.json() for answer in answers] == [{"accepted": 5, "duplicates": 0}] * 2
    assert await _stored(clean_db) == 10
    kpis = await limited.kpis("today")
    assert kpis["channels"]["phone"]["total"]["arrived"] == 10  # type: ignore[index]
