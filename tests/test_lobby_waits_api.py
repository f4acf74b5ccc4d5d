"""GET /v1/lobby/waits and its accuracy record through the real app and database.

A simulated lobby day (loadtests/lobby_waits.py) posted through /v1/events is scored by the service as
the pure ledger scores it; the score is stored, and a restart rebuilds the same one from the events.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.events import Event
from app.settings import Settings
from loadtests.lobby_waits import QUEUE, score_day, simulate_day
from tests.running import RunningApp, running_app

TZ = ZoneInfo("Europe/Copenhagen")


def as_json(event: Event) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": event.event_id,
        "type": event.type,
        "queue": event.queue,
        "occurred_at": datetime.fromtimestamp(event.at, UTC).isoformat(),
    }
    if event.type.startswith("desk."):
        body["desk"] = event.desk
    else:
        body["contact_id"] = event.contact_id
        for name in ("desk", "ticket_number", "resolved", "wait_seconds"):
            value = getattr(event, name)
            if value is not None:
                body[name] = value
    return body


async def post_all(api: RunningApp, events: list[Event]) -> None:
    for first in range(0, len(events), 500):
        response = await api.post([as_json(event) for event in events[first : first + 500]])
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(events[first : first + 500])


def yesterday_midnight() -> float:
    day = datetime.now(TZ).date() - timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp()


async def stored_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT count(*) FROM wait_estimates"))).scalar_one())


async def test_a_simulated_day_is_scored_as_the_ledger_scores_it_and_survives_a_restart(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    midnight = yesterday_midnight()
    # Closed at 17:00: every ticket of the day has been called or has left.
    now = midnight + 17 * 3600
    events = simulate_day(5, start=midnight)
    expected = score_day(events)
    assert expected.scored > 150
    day = datetime.fromtimestamp(midnight, TZ).date().isoformat()
    async with running_app(settings, clock=lambda: now) as api:
        await post_all(api, events)
        body = (await api.client.get("/v1/lobby/waits", params={"queue": QUEUE})).json()
        [found] = body["queues"]
        assert found["queue"] == QUEUE
        assert found["accuracy_today"] == expected.as_dict()
        history = (await api.client.get("/v1/lobby/waits/accuracy", params={"from": day, "to": day})).json()
        assert history["days"] == [
            {
                "date": day,
                "queue": QUEUE,
                "scored": expected.scored,
                "inside_range": expected.inside,
                "inside_range_pct": expected.as_dict()["inside_range_pct"],
                "mean_abs_error_minutes": expected.as_dict()["mean_abs_error_minutes"],
            }
        ]
    assert await stored_count(clean_db) == expected.scored
    # A restart rebuilds the same estimates from the stored events, and rewrites the same rows.
    async with running_app(settings, clock=lambda: now) as api:
        body = (await api.client.get("/v1/lobby/waits", params={"queue": QUEUE})).json()
        assert body["queues"][0]["accuracy_today"] == expected.as_dict()
        again = (await api.client.get("/v1/lobby/waits/accuracy", params={"from": day, "to": day})).json()
        assert again == history
    assert await stored_count(clean_db) == expected.scored


@pytest.fixture
async def midday(settings: Settings, clean_db: AsyncEngine) -> Any:
    now = yesterday_midnight() + 11 * 3600

    def at(seconds_ago: float) -> str:
        return datetime.fromtimestamp(now - seconds_ago, UTC).isoformat()

    def ticket(type_: str, number: str, seconds_ago: float, **fields: Any) -> dict[str, Any]:
        return {
            "event_id": f"{type_}-{number}",
            "type": type_,
            "contact_id": number,
            "queue": QUEUE,
            "occurred_at": at(seconds_ago),
            **fields,
        }

    events = [
        {
            "event_id": f"open-{desk}",
            "type": "desk.opened",
            "desk": desk,
            "queue": QUEUE,
            "occurred_at": at(3000),
        }
        for desk in ("1", "2")
    ]
    # Five services of 300 s at desk 1 in the last hour; then both desks busy and three waiting.
    for n in range(5):
        start = 2800 - n * 300
        events += [
            ticket("ticket.issued", f"s{n}", start, ticket_number=f"S{n}"),
            ticket("ticket.called", f"s{n}", start, ticket_number=f"S{n}", desk="1"),
            ticket("ticket.completed", f"s{n}", start - 300, resolved=True),
        ]
    events += [
        ticket("ticket.issued", "b1", 200, ticket_number="B1"),
        ticket("ticket.called", "b1", 200, ticket_number="B1", desk="1"),
        ticket("ticket.issued", "b2", 190, ticket_number="B2"),
        ticket("ticket.called", "b2", 190, ticket_number="B2", desk="2"),
        *(ticket("ticket.issued", f"w{n}", 100 - n, ticket_number=f"W{n}") for n in range(3)),
    ]
    async with running_app(settings, clock=lambda: now) as api:
        for item in events:
            response = await api.post([item])
            assert response.status_code == 200, response.text
        yield api, now


async def test_the_queue_length_estimate_from_people_ahead_and_desks(midday: Any) -> None:
    api, now = midday
    body = (await api.client.get("/v1/lobby/waits")).json()
    assert datetime.fromisoformat(body["as_of"]).timestamp() == now
    assert [row["range"] for row in body["ranges"]] == ["under_5", "5_10", "10_20", "over_20"]
    [found] = body["queues"]
    estimate = found["expected_wait"]
    # A ticket now has three ahead, both desks busy: (3 + 1) x 300 s / 2 = 600 s, the 10-20 range.
    assert estimate == {
        "range": "10_20",
        "minutes": 10.0,
        "basis": "queue_length",
        "reason": None,
        "people_ahead": 3,
        "desks_open": 2,
        "serving": 2,
        "mean_service_seconds": 300.0,
        "called_last_hour": 7,
    }
    # The desks the estimate divides by are those the staff readers count open.
    window = api.services.window
    assert window.staff("15m", now).channels["visit"].queues[QUEUE].staffed == 2
    lobby = (await api.client.get("/v1/lobby")).json()
    assert lobby["waiting"][0]["waiting_now"] == estimate["people_ahead"]


async def test_hidden_with_too_little_data_and_the_reason(settings: Settings, clean_db: AsyncEngine) -> None:
    now = yesterday_midnight() + 9 * 3600
    async with running_app(settings, clock=lambda: now) as api:
        response = await api.post(
            [
                {
                    "event_id": "first",
                    "type": "ticket.issued",
                    "contact_id": "first",
                    "queue": "pas",
                    "occurred_at": datetime.fromtimestamp(now - 60, UTC).isoformat(),
                }
            ]
        )
        assert response.status_code == 200
        [found] = (await api.client.get("/v1/lobby/waits", params={"queue": "pas"})).json()["queues"]
        assert found["expected_wait"]["range"] is None
        assert found["expected_wait"]["reason"].startswith(
            "0 tickets called and 0 completed in the last hour"
        )
        assert found["accuracy_today"]["hidden"] == 1


async def test_the_waits_need_the_read_token_as_the_lobby_does(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    async with running_app(settings.model_copy(update={"read_token": "reader"})) as api:
        for path in ("/v1/lobby", "/v1/lobby/waits", "/v1/lobby/waits/accuracy"):
            assert (await api.client.get(path)).status_code == 401
            ok = await api.client.get(path, headers={"Authorization": "Bearer reader"})
            assert ok.status_code == 200, (path, ok.text)
