"""The same event_id with another payload over HTTP (issue 12, defect 3): a retry with the same payload is
a harmless duplicate, anything else is a 409 naming the id, nothing of the request is stored, and it is
counted in queuepulse_events_total{result="conflict"}."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.running import INGEST_HEADERS, RunningApp

ASTERISK_ROUTE = "/v1/ingest/asterisk-queue-log"
# Fixed once, so that a retry in these tests carries exactly the payload of the first delivery.
OCCURRED_AT = datetime.fromtimestamp(time.time() - 120, UTC).isoformat()


def event(event_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "call.offered",
        "contact_id": f"c-{event_id}",
        "queue": "borgerservice",
        "occurred_at": OCCURRED_AT,
        **fields,
    }


async def stored(engine: AsyncEngine) -> list[tuple[str, str, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT event_id, type, queue FROM events ORDER BY id"))
        return [(row[0], row[1], row[2]) for row in rows]


def counted(api: RunningApp, result: str, event_type: str = "call.offered") -> float:
    value = api.services.metrics.registry.get_sample_value(
        "queuepulse_events_total", {"type": event_type, "result": result}
    )
    return value or 0.0


async def test_a_single_event_again_with_another_payload_is_a_409(
    api: RunningApp, clean_db: AsyncEngine
) -> None:
    assert (await api.post(event("e1"))).json() == {"accepted": 1, "duplicates": 0}
    assert (await api.post(event("e1"))).json() == {"accepted": 0, "duplicates": 1}

    response = await api.post(event("e1", queue="pas"))

    assert response.status_code == 409, response.text
    [issue] = response.json()["detail"]
    assert issue["index"] is None
    assert issue["field"] == "event_id"
    assert "'e1'" in issue["message"]
    assert "queue" in issue["message"]
    assert await stored(clean_db) == [("e1", "call.offered", "borgerservice")]
    assert counted(api, "conflict") == 1
    assert counted(api, "accepted") == 1
    assert counted(api, "duplicate") == 1
    # Nothing of the refused request reached the live figures either.
    kpis: Any = await api.kpis("15m")
    assert kpis["channels"]["phone"]["total"]["arrived"] == 1
    assert "pas" not in kpis["channels"]["phone"]["queues"]


async def test_a_batch_holding_a_conflict_is_a_409_naming_its_index(
    api: RunningApp, clean_db: AsyncEngine
) -> None:
    assert (await api.post([event("e1"), event("e2")])).status_code == 200

    response = await api.post([event("e3"), event("e2"), event("e1", type="call.abandoned")])

    assert response.status_code == 409, response.text
    [issue] = response.json()["detail"]
    assert (issue["index"], issue["field"]) == (2, "event_id")
    assert "'e1'" in issue["message"]
    assert "type" in issue["message"]
    assert [row[0] for row in await stored(clean_db)] == ["e1", "e2"]
    assert counted(api, "conflict", "call.abandoned") == 1
    assert counted(api, "accepted") == 2


async def test_one_event_id_twice_in_one_batch_with_two_payloads_is_a_409(
    api: RunningApp, clean_db: AsyncEngine
) -> None:
    response = await api.post([event("x"), event("y"), event("x", contact_id="someone-else")])

    assert response.status_code == 409, response.text
    [issue] = response.json()["detail"]
    assert (issue["index"], issue["field"]) == (2, "event_id")
    assert "'x'" in issue["message"]
    assert "item 0" in issue["message"]
    assert "contact_id" in issue["message"]
    assert await stored(clean_db) == []
    assert counted(api, "conflict") == 1
    # The same twice is still a harmless repeat.
    assert (await api.post([event("x"), event("x")])).json() == {"accepted": 1, "duplicates": 1}


async def post_log(api: RunningApp, body: str, time_zone: str) -> httpx.Response:
    headers = {**INGEST_HEADERS, "Content-Type": "text/plain"}
    return await api.client.post(
        ASTERISK_ROUTE, content=body, headers=headers, params={"time_zone": time_zone}
    )


async def test_a_queue_log_line_again_read_as_another_time_is_a_409(
    api: RunningApp, clean_db: AsyncEngine
) -> None:
    # A dated line carries no offset: its id is the line's, its time the one the time zone gives it.
    base = int(time.time()) - 3 * 3600
    stamp = datetime.fromtimestamp(base, ZoneInfo("Etc/GMT-2")).strftime("%Y-%m-%d %H:%M:%S")
    first = f"{stamp}|{base}.1|Borgerservice|NONE|ENTERQUEUE||004511111111|1\n"
    other = f"{stamp}|{base}.2|Borgerservice|NONE|ENTERQUEUE||004522222222|1\n"
    accepted = await post_log(api, first, "Etc/GMT-2")
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["accepted"], accepted.json()["duplicates"]) == (1, 0)
    again = await post_log(api, first, "Etc/GMT-2")
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 1)

    response = await post_log(api, other + first, "Etc/GMT-3")

    assert response.status_code == 409, response.text
    [issue] = response.json()["errors"]
    assert issue["line"] == 2
    assert "occurred_at" in issue["reason"]
    assert len(await stored(clean_db)) == 1
    assert counted(api, "conflict") == 1
