"""Issue 12's whole list against one fresh instance: every input gets its clear 4xx (or is used as the
README says), the instance stays ready and keeps serving an honest client, and a restart of it on the
same database is ready again with the same figures."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.running import ADMIN_HEADERS, INGEST_HEADERS, RunningApp, running_app
from tests.traffic import Clock

ASTERISK_ROUTE = "/v1/ingest/asterisk-queue-log"
NOW = time.time()
RECENT = datetime.fromtimestamp(NOW - 600, UTC).isoformat()


def offered(event_id: str, queue: str = "borgerservice", **fields: Any) -> dict[str, Any]:
    body = {"event_id": event_id, "type": "call.offered", "contact_id": event_id, "queue": queue}
    return {**body, "occurred_at": RECENT, **fields}


def fields_named(response: httpx.Response) -> set[str | None]:
    return {issue["field"] for issue in response.json()["detail"]}


async def post_log(app: RunningApp, body: bytes, **params: str) -> httpx.Response:
    headers = {**INGEST_HEADERS, "Content-Type": "text/plain"}
    return await app.client.post(ASTERISK_ROUTE, content=body, headers=headers, params=params)


async def feed_every_poison_input(app: RunningApp) -> None:
    # The centre's own queue, before a source goes wrong.
    assert (await app.post(offered("c-1"))).status_code == 200
    for poison in (
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00:01Z",
        1.7e9,
        "1700000000",
    ):
        response = await app.post(offered("poison", occurred_at=poison))
        assert response.status_code == 422, (poison, response.text)
        assert fields_named(response) == {"occurred_at"}

    ancient = b"0001-01-01T00:00:00+00:00|a1|borgerservice|NONE|ENTERQUEUE||x|1\n"
    for params in ({}, {"time_zone": "Etc/GMT-14"}):
        response = await post_log(app, ancient, **params)
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 0
        assert [error["line"] for error in response.json()["errors"]] == [1]

    # One source takes what its own cap allows of 205 junk names, and no more.
    statuses = [(await app.post(offered(f"junk-{n}", queue=f"junk-{n}"))).status_code for n in range(205)]
    cap = app.services.settings.max_queues_per_source
    assert statuses == [200] * (cap - 1) + [422] * (205 - cap + 1)
    # Another source still gets a real queue in.
    created = await app.client.post("/v1/ingest-tokens", json={"name": "kiosk"}, headers=ADMIN_HEADERS)
    assert created.status_code == 201, created.text
    kiosk = {"Authorization": f"Bearer {created.json()['token']}"}
    ticket = {**offered("t-1", queue="pas"), "type": "ticket.issued"}
    assert (await app.client.post("/v1/events", json=ticket, headers=kiosk)).status_code == 200

    assert (await app.post(offered("c-1"))).json() == {"accepted": 0, "duplicates": 1}
    conflict = await app.post(offered("c-1", occurred_at=datetime.fromtimestamp(NOW - 60, UTC).isoformat()))
    assert conflict.status_code == 409
    assert fields_named(conflict) == {"event_id"}

    too_large = b"[" + b" " * (app.services.settings.max_body_bytes + 1) + b"]"
    unauthenticated = await app.client.post("/v1/events", content=too_large)
    assert unauthenticated.status_code == 401

    for raw in (
        b'{"threshold_seconds": NaN, "goal_pct": 90}',
        b'{"threshold_seconds": 1e309, "goal_pct": 90}',
    ):
        put = await app.client.put(
            "/v1/targets/phone/borgerservice",
            content=raw,
            headers={**ADMIN_HEADERS, "Content-Type": "application/json"},
        )
        assert put.status_code == 422, raw

    repeated_key = b'{"event_id": "k-1", "event_id": "k-2", "type": "call.offered", "contact_id": "k",'
    repeated_key += b' "queue": "borgerservice", "occurred_at": "' + RECENT.encode() + b'"}'
    response = await app.client.post(
        "/v1/events", content=repeated_key, headers={**INGEST_HEADERS, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    response = await app.client.post(
        "/v1/events", content=b"{}", headers={**INGEST_HEADERS, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415

    # A caller who re-enters the queue, Asterisk restarting with one still waiting, and a lone CR.
    base = int(NOW) - 1800
    lines = [
        f"{base}|u1|borgerservice|NONE|ENTERQUEUE||x|1",
        f"{base + 5}|u1|borgerservice|SIP/a|CONNECT|5|u1.1|2",
        f"{base + 60}|u1|borgerservice|SIP/a|BLINDTRANSFER|9999|default|5|55|1",
        f"{base + 70}|u1|borgerservice|NONE|ENTERQUEUE||x|1",
        f"{base + 80}|u1|borgerservice|SIP/a|CONNECT|10|u1.2|2",
        f"{base + 200}|u1|borgerservice|SIP/a|COMPLETECALLER|10|120|1",
        f"{base + 300}|u2|borgerservice|NONE|ENTERQUEUE||x|1",
        f"{base + 400}|NONE|NONE|NONE|QUEUESTART|",
    ]
    response = await post_log(app, "\r".join(lines).encode() + b"\n")
    assert response.status_code == 200, response.text
    assert response.json()["errors"] == []
    assert response.json()["accepted"] == 8


async def test_every_poison_input_leaves_the_instance_ready_and_a_restart_ready_again(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    async with running_app(settings, Clock(NOW)) as first:
        await feed_every_poison_input(first)
        assert (await first.client.get("/readyz")).status_code == 200
        assert (await first.post(offered("honest"))).status_code == 200
        # The junk source has taken all its own cap can hold: it cannot take one more queue.
        refused = await first.post(offered("more-junk", queue="pas-og-koerekort"))
        assert refused.status_code == 422
        assert fields_named(refused) == {"queue"}
        before = await first.kpis("today")
        phone = before["channels"]["phone"]["queues"]["borgerservice"]  # type: ignore[index]
        # c-1, two visits of u1 (both served) and u2, whose wait Asterisk's restart ended.
        assert phone["arrived"] == 5
        assert phone["started"] == 2
        assert before["data_quality"]["cleared"] == 1  # type: ignore[index]

    async with clean_db.connect() as connection:
        stored = await connection.scalar(text("SELECT count(*) FROM events WHERE occurred_at < '1970-01-02'"))
    assert stored == 0

    async with running_app(settings, Clock(NOW)) as second:
        assert (await second.client.get("/readyz")).status_code == 200
        after = await second.kpis("today")
        assert after["channels"] == before["channels"]
        assert (await second.post(offered("honest-2"))).status_code == 200
