"""POST /v1/qmatic/events against the real service and PostgreSQL, with bodies shaped as Orchestra posts
them (tests/qmatic/bodies.py): the mapping's rules, redeliveries, recalls, transfers and bad items."""

from __future__ import annotations

from typing import Any, cast
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.qmatic.bodies import Lobby
from tests.running import INGEST_HEADERS, RunningApp

ROUTE = "/v1/qmatic/events"


async def post(api: RunningApp, body: Any) -> httpx.Response:
    return await api.client.post(ROUTE, json=body, headers=INGEST_HEADERS)


async def visit_total(api: RunningApp) -> dict[str, Any]:
    kpis = await api.kpis("today")
    channels: dict[str, Any] = kpis["channels"]  # type: ignore[assignment]
    total: dict[str, Any] = channels["visit"]["total"]
    return total


Row = tuple[str, str, str, str, str | None, float | None]


async def rows(engine: AsyncEngine) -> list[Row]:
    async with engine.connect() as connection:
        result = await connection.execute(
            text("SELECT event_id, type, contact_id, queue, desk, wait_seconds FROM events ORDER BY event_id")
        )
        return [cast(Row, tuple(row)) for row in result]


async def test_a_visit_is_issued_called_and_completed_in_its_queue(
    api: RunningApp, clean_db: AsyncEngine
) -> None:
    lobby = Lobby()
    response = await post(api, lobby.visit(4711, 0, wait=312, service=240))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "received": 3,
        "events": 3,
        "accepted": 3,
        "duplicates": 0,
        "ignored": {},
        "errors": [],
    }
    assert await rows(clean_db) == [
        ("qmatic:b1:v4711:called", "ticket.called", "qmatic-b1-v4711", "b1-q3", "b1-sp7", 312.0),
        ("qmatic:b1:v4711:issued", "ticket.issued", "qmatic-b1-v4711", "b1-q3", None, None),
        ("qmatic:b1:v4711:outcome", "ticket.completed", "qmatic-b1-v4711", "b1-q3", "b1-sp7", None),
    ]
    total = await visit_total(api)
    assert (total["arrived"], total["started"], total["finished"]) == (1, 1, 1)
    assert total["avg_wait_seconds"] == 312


async def test_one_event_alone_and_redeliveries_are_harmless(api: RunningApp, clean_db: AsyncEngine) -> None:
    lobby = Lobby()
    bodies = lobby.visit(1, 0)
    for body in bodies:
        assert (await post(api, body)).json()["accepted"] == 1
    # Orchestra never retries, but a relay re-sends the batch that was in flight when it stopped.
    again = (await post(api, [*bodies, bodies[1]])).json()
    assert (again["accepted"], again["duplicates"], again["errors"]) == (0, 4, [])
    assert len(await rows(clean_db)) == 3
    total = await visit_total(api)
    assert (total["arrived"], total["started"], total["finished"]) == (1, 1, 1)
    assert (await api.kpis("today"))["data_quality"]["duplicates"] == 0  # type: ignore[index]


async def test_recalls_transfers_and_recycles_count_the_visit_once(
    api: RunningApp, clean_db: AsyncEngine
) -> None:
    lobby = Lobby()
    body = [
        lobby.create(5, 0),
        lobby.call(5, 100, 0),
        # The clerk recalls the ticket, then recycles it: the visitor did not come.
        lobby.call(5, 160, 0),
        lobby.move("VISIT_RECYCLE", 5, 200, queue=3),
        lobby.call(5, 500, 0, desk=8),
        # Served, then sent on to another queue and served there.
        lobby.move("VISIT_TRANSFER_TO_QUEUE", 5, 800, queue=4),
        lobby.call(5, 900, 0, desk=9, queue=4),
        lobby.end(5, 1000, 0, desk=9),
    ]
    result = (await post(api, body)).json()

    assert (result["received"], result["accepted"], result["errors"]) == (8, 3, [])
    assert result["ignored"] == {
        "VISIT_CALL (visit called before: a recall, or a call after a transfer or recycle)": 3,
        "VISIT_RECYCLE": 1,
        "VISIT_TRANSFER_TO_QUEUE": 1,
    }
    stored = await rows(clean_db)
    # One arrival, one call (the first: its wait, its desk) and one outcome, all in the queue of arrival.
    assert [(row[1], row[3], row[4], row[5]) for row in stored] == [
        ("ticket.called", "b1-q3", "b1-sp7", 100.0),
        ("ticket.issued", "b1-q3", None, None),
        ("ticket.completed", "b1-q3", "b1-sp9", None),
    ]
    total = await visit_total(api)
    assert (total["arrived"], total["started"], total["finished"]) == (1, 1, 1)


async def test_no_shows_and_removals(api: RunningApp, clean_db: AsyncEngine) -> None:
    lobby = Lobby()
    body = [
        *lobby.visit(1, 0),
        lobby.create(2, 10),
        lobby.call(2, 70, 10),
        lobby.end(2, 130, 10, name="VISIT_NOSHOW"),
        # Removed while waiting: the visitor gave up.
        lobby.create(3, 20),
        lobby.remove(3, 400),
        # Removed after being called: not served, and not an abandonment on top of the answered wait.
        lobby.create(4, 30),
        lobby.call(4, 90, 30),
        lobby.remove(4, 150),
        # A second outcome for a visit that ended is ignored.
        lobby.end(1, 2000, 0),
    ]
    result = (await post(api, body)).json()

    assert result["errors"] == []
    assert result["ignored"] == {"VISIT_END (visit ended before)": 1}
    outcomes = {row[2]: row[1] for row in await rows(clean_db) if row[0].endswith(":outcome")}
    assert outcomes == {
        "qmatic-b1-v1": "ticket.completed",
        "qmatic-b1-v2": "ticket.no_show",
        "qmatic-b1-v3": "ticket.cancelled",
        "qmatic-b1-v4": "ticket.no_show",
    }
    total = await visit_total(api)
    assert (total["arrived"], total["started"], total["left"], total["finished"]) == (4, 3, 1, 3)


async def test_the_queue_of_an_end_comes_from_the_stored_arrival(
    api: RunningApp, clean_db: AsyncEngine
) -> None:
    lobby = Lobby()
    # Orchestra posts each event on its own, concurrently: an end may overtake its visit's creation in
    # one batch (resolved), but an end of a visit never seen names no queue and is refused.
    first = (await post(api, [lobby.end(1, 400, 0), lobby.call(1, 100, 0), lobby.create(1, 0)])).json()
    assert (first["accepted"], first["errors"]) == (3, [])
    assert (await post(api, lobby.create(2, 0, queue=5))).json()["accepted"] == 1
    later = (await post(api, [lobby.end(2, 600, 0), lobby.end(99, 600, 0)])).json()

    assert later["accepted"] == 1
    assert later["errors"] == [
        {"index": 1, "reason": "parameters.queueId: missing, and the visit's VISIT_CREATE is not stored"}
    ]
    queues = {row[0]: row[3] for row in await rows(clean_db)}
    assert queues["qmatic:b1:v2:outcome"] == "b1-q5"


async def test_bad_items_are_listed_by_index_and_the_rest_stored(
    api: RunningApp, clean_db: AsyncEngine
) -> None:
    lobby = Lobby()
    no_branch = lobby.create(3, 0)
    del no_branch["parameters"]["branchId"]
    bad_time = lobby.create(4, 0)
    bad_time["eventTime"] = "yesterday"
    bad_wait = lobby.call(5, 60, 0)
    bad_wait["parameters"]["waitingTime"] = -4
    no_desk = lobby.call(6, 60, 0)
    no_desk["unitId"] = None
    body = [lobby.create(1, 0), "text", no_branch, bad_time, bad_wait, no_desk, None, lobby.create(2, 0)]
    response = await post(api, body)

    assert response.status_code == 200
    result = response.json()
    assert (result["received"], result["accepted"]) == (7, 2)
    assert [issue["index"] for issue in result["errors"]] == [1, 2, 3, 4, 5]
    assert "branchId" in result["errors"][1]["reason"]
    assert "eventTime" in result["errors"][2]["reason"]
    assert "waitingTime" in result["errors"][3]["reason"]
    assert "service point" in result["errors"][4]["reason"]
    broken = await api.client.post(ROUTE, content=b"{", headers=INGEST_HEADERS)
    assert broken.status_code == 422
    assert (await api.client.post(ROUTE, json=lobby.create(7, 0))).status_code == 401


async def test_events_of_other_kinds_are_ignored_by_name(api: RunningApp, clean_db: AsyncEngine) -> None:
    lobby = Lobby()
    body = [
        lobby.service_point("USER_SESSION_START", 0),
        lobby.service_point("USER_SERVICE_POINT_WORK_PROFILE_SET", 1),
    ]
    result = (await post(api, body)).json()
    assert result["ignored"] == {"USER_SERVICE_POINT_WORK_PROFILE_SET": 1, "USER_SESSION_START": 1}
    assert await rows(clean_db) == []


async def test_service_points_open_and_close_desks(api: RunningApp, clean_db: AsyncEngine) -> None:
    lobby = Lobby()
    body = [
        lobby.service_point("SERVICE_POINT_OPEN", 0, user=None),
        lobby.service_point("USER_SERVICE_POINT_SESSION_START", 1),
        lobby.service_point("USER_SERVICE_POINT_SESSION_END", 500, user=None),
        lobby.service_point("SERVICE_POINT_CLOSE", 501, user=None),
    ]
    result = (await post(api, body)).json()
    assert (result["accepted"], result["errors"]) == (4, [])
    # The desk is the subject (contact_id) and counts in the branch's desk queue.
    assert sorted((row[1], row[2], row[3], row[4]) for row in await rows(clean_db)) == [
        ("desk.closed", "b1-sp7", "b1", "b1-sp7"),
        ("desk.closed", "b1-sp7", "b1", "b1-sp7"),
        ("desk.opened", "b1-sp7", "b1", "b1-sp7"),
        ("desk.opened", "b1-sp7", "b1", "b1-sp7"),
    ]
    async with clean_db.connect() as connection:
        agents = (
            await connection.execute(text("SELECT event_id, agent FROM events WHERE agent IS NOT NULL"))
        ).all()
    assert [(event_id.split(":")[2], agent) for event_id, agent in agents] == [
        ("USER_SERVICE_POINT_SESSION_START", "qmatic-u21")
    ]
    assert (await post(api, body)).json()["duplicates"] == 4


async def test_times_without_an_offset_are_read_in_the_named_time_zone(
    api: RunningApp, clean_db: AsyncEngine
) -> None:
    lobby = Lobby()
    body = lobby.create(1, 0)
    local = lobby.at(0).astimezone(ZoneInfo("America/New_York"))
    body["eventTime"] = local.replace(tzinfo=None).isoformat(timespec="milliseconds")
    response = await api.client.post(
        ROUTE, json=body, params={"time_zone": "America/New_York"}, headers=INGEST_HEADERS
    )

    assert response.json()["accepted"] == 1
    async with clean_db.connect() as connection:
        stored = (
            await connection.execute(text("SELECT extract(epoch from occurred_at) FROM events"))
        ).scalar_one()
    assert abs(float(stored) - lobby.at(0).timestamp()) < 0.001
    unknown = await api.client.post(
        ROUTE, json=body, params={"time_zone": "Mars/Olympus"}, headers=INGEST_HEADERS
    )
    assert unknown.status_code == 422


async def test_a_call_at_an_open_service_point_puts_its_desk_on_contact(
    api: RunningApp, clean_db: AsyncEngine
) -> None:
    lobby = Lobby()
    # The desk's id is the same on the service-point event and on the visit's call: b1-sp7.
    body = [
        lobby.service_point("SERVICE_POINT_OPEN", 0, user=None),
        lobby.create(1, 10),
        lobby.call(1, 300, 10),
    ]
    assert (await post(api, body)).json()["accepted"] == 3

    staff = (await api.client.get("/v1/staff", params={"window": "1h", "channel": "visit"})).json()
    total = staff["channels"]["visit"]["total"]
    assert (total["staffed"], total["on_contact"], total["available"]) == (1, 1, 0)
    assert list(staff["channels"]["visit"]["queues"]) == ["b1"]
