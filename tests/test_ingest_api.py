"""POST /v1/events end to end on a real database: validation, all-or-nothing batches, auth, idempotency."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.running import INGEST_HEADERS, RunningApp

JSON_HEADERS = {**INGEST_HEADERS, "Content-Type": "application/json"}


def stamp(seconds_ago: float = 0.0) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


def event(
    event_id: str, type_: str = "call.offered", contact: str | None = None, **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": event_id,
        "type": type_,
        "contact_id": contact or f"c-{event_id}",
        "queue": "borgerservice",
        "occurred_at": stamp(1),
    }
    body.update(fields)
    return body


async def stored(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT event_id FROM events ORDER BY id"))
        return [row[0] for row in rows]


async def post_raw(api: RunningApp, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return await api.client.post("/v1/events", content=body, headers=headers or JSON_HEADERS)


def naive_now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat()


BAD_ITEMS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown field", {"colour": "red"}, "colour"),
    ("naive timestamp", {"occurred_at": "NAIVE"}, "occurred_at"),
    ("far future", {"occurred_at": "FUTURE"}, "occurred_at"),
    ("queue slug", {"queue": "Borger Service"}, "queue"),
    ("queue too long", {"queue": "q" * 65}, "queue"),
    ("desk missing", {"type": "ticket.called"}, "desk"),
    ("nul byte", {"type": "call.answered", "agent": "ag\x00ent"}, "agent"),
    ("negative wait", {"type": "call.answered", "wait_seconds": -1}, "wait_seconds"),
    ("resolved on arrival", {"resolved": True}, "resolved"),
    ("unknown type", {"type": "call.exploded"}, "type"),
    ("empty event_id", {"event_id": ""}, "event_id"),
    ("missing contact", {"contact_id": None}, "contact_id"),
]


def bad_item(overrides: dict[str, Any]) -> dict[str, Any]:
    item = event("bad")
    for key, value in overrides.items():
        if value == "NAIVE":
            value = naive_now()
        elif value == "FUTURE":
            value = (datetime.now(UTC) + timedelta(seconds=301)).isoformat()
        if value is None:
            item.pop(key)
        else:
            item[key] = value
    return item


@pytest.mark.parametrize(("case", "overrides", "field"), BAD_ITEMS, ids=[case[0] for case in BAD_ITEMS])
async def test_a_bad_item_rejects_the_whole_batch_naming_index_and_field(
    api: RunningApp, clean_db: AsyncEngine, case: str, overrides: dict[str, Any], field: str
) -> None:
    batch = [event("ok-0"), event("ok-1"), bad_item(overrides), event("ok-3")]
    response = await api.post(batch)
    assert response.status_code == 422, response.text
    issues = response.json()["detail"]
    assert {"index": 2, "field": field} in [{"index": i["index"], "field": i["field"]} for i in issues], (
        issues
    )
    assert all(issue["message"] for issue in issues)
    assert await stored(clean_db) == []
    kpis = await api.kpis("15m")
    assert kpis["channels"]["phone"]["total"]["arrived"] == 0  # type: ignore[index]


@pytest.mark.parametrize(("case", "overrides", "field"), BAD_ITEMS, ids=[case[0] for case in BAD_ITEMS])
async def test_a_bad_single_event_names_its_field(
    api: RunningApp, clean_db: AsyncEngine, case: str, overrides: dict[str, Any], field: str
) -> None:
    response = await api.post(bad_item(overrides))
    assert response.status_code == 422, response.text
    assert field in [issue["field"] for issue in response.json()["detail"]]
    assert await stored(clean_db) == []


async def test_lone_surrogate_is_rejected_naming_index_and_field(
    api: RunningApp, clean_db: AsyncEngine
) -> None:
    good = json.dumps(event("ok-0"))
    bad = json.dumps(event("bad", "call.answered")).replace(
        '"call.answered"', '"call.answered", "agent": "x\\ud800y"'
    )
    response = await post_raw(api, f"[{good}, {bad}]".encode())
    assert response.status_code == 422, response.text
    issues = response.json()["detail"]
    assert [(issue["index"], issue["field"]) for issue in issues] == [(1, "agent")]
    assert await stored(clean_db) == []


async def test_several_bad_items_are_all_named(api: RunningApp, clean_db: AsyncEngine) -> None:
    batch = [event("a", queue="BAD"), event("b"), event("c", "ticket.called")]
    response = await api.post(batch)
    assert response.status_code == 422
    named = {(issue["index"], issue["field"]) for issue in response.json()["detail"]}
    assert named == {(0, "queue"), (2, "desk")}
    assert await stored(clean_db) == []


async def test_a_little_in_the_future_is_accepted(api: RunningApp, clean_db: AsyncEngine) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=240)).isoformat()
    response = await api.post(event("soon", occurred_at=soon))
    assert response.status_code == 200, response.text
    assert await stored(clean_db) == ["soon"]


async def test_timestamps_with_any_offset_are_accepted(api: RunningApp, clean_db: AsyncEngine) -> None:
    copenhagen = datetime.now(UTC).astimezone(datetime.now().astimezone().tzinfo).isoformat()
    with_offset = (datetime.now(UTC) + timedelta(hours=2)).replace(tzinfo=None).isoformat() + "+02:00"
    response = await api.post(
        [
            event("z", occurred_at=stamp(1).replace("+00:00", "Z")),
            event("o", occurred_at=with_offset),
            event("l", occurred_at=copenhagen),
        ]
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 3, "duplicates": 0}


async def test_empty_batch_is_rejected(api: RunningApp, clean_db: AsyncEngine) -> None:
    response = await api.post([])
    assert response.status_code == 422
    assert response.json()["detail"][0]["message"]


async def test_batch_over_1000_is_rejected_and_nothing_stored(api: RunningApp, clean_db: AsyncEngine) -> None:
    response = await api.post([event(f"e{i}") for i in range(1001)])
    assert response.status_code == 422, response.text
    assert "1000" in json.dumps(response.json()["detail"])
    assert await stored(clean_db) == []
    response = await api.post([event(f"e{i}") for i in range(1000)])
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1000, "duplicates": 0}
    assert len(await stored(clean_db)) == 1000


@pytest.mark.parametrize(
    "body",
    [b"{bad", b'{"event_id": "x",', b"", b"[1, 2", b"\xff\xfe\x00", b"42", b'"text"', b"null", b"[null]"],
    ids=[
        "bad-key",
        "truncated",
        "empty",
        "open-array",
        "not-utf8",
        "number",
        "string",
        "null",
        "array-of-null",
    ],
)
async def test_malformed_bodies_get_a_clear_422(api: RunningApp, clean_db: AsyncEngine, body: bytes) -> None:
    response = await post_raw(api, body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail
    assert all(isinstance(issue["message"], str) and issue["message"] for issue in detail)
    assert all(issue["field"] is None for issue in detail)  # the body as a whole, not a named field
    assert await stored(clean_db) == []


async def test_ingest_needs_the_ingest_token(api: RunningApp, clean_db: AsyncEngine) -> None:
    body = json.dumps(event("auth")).encode()
    missing = await post_raw(api, body, {"Content-Type": "application/json"})
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = await post_raw(api, body, {"Content-Type": "application/json", "Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    not_bearer = await post_raw(
        api, body, {"Content-Type": "application/json", "Authorization": "Basic dGVzdDp0ZXN0"}
    )
    assert not_bearer.status_code == 401
    # An invalid body without a token is refused for the token first: nothing about the body leaks.
    assert (await post_raw(api, b"{bad", {"Content-Type": "application/json"})).status_code == 401
    assert await stored(clean_db) == []
    assert (await post_raw(api, body)).status_code == 200
    assert await stored(clean_db) == ["auth"]


async def test_same_event_id_twice_is_stored_and_counted_once(api: RunningApp, clean_db: AsyncEngine) -> None:
    # A retry sends the same payload; another payload is a conflict (tests/test_event_conflicts.py).
    once = event("once")
    first = await api.post(once)
    again = await api.post(once)
    assert first.json() == {"accepted": 1, "duplicates": 0}
    assert again.json() == {"accepted": 0, "duplicates": 1}
    assert await stored(clean_db) == ["once"]
    kpis: Any = await api.kpis("15m")
    assert kpis["channels"]["phone"]["total"]["arrived"] == 1
    assert kpis["data_quality"]["duplicates"] == 1


async def test_duplicates_inside_one_batch_count_once(api: RunningApp, clean_db: AsyncEngine) -> None:
    twin = event("twin")
    response = await api.post([twin, event("other"), twin, twin])
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2, "duplicates": 2}
    assert await stored(clean_db) == ["twin", "other"]
    kpis: Any = await api.kpis("15m")
    assert kpis["channels"]["phone"]["total"]["arrived"] == 2
    assert kpis["data_quality"]["duplicates"] == 2


async def test_a_batch_mixing_new_and_stored_events(api: RunningApp, clean_db: AsyncEngine) -> None:
    a, b = event("a"), event("b")
    await api.post([a, b])
    response = await api.post([b, event("c"), a])
    assert response.json() == {"accepted": 1, "duplicates": 2}
    assert await stored(clean_db) == ["a", "b", "c"]
