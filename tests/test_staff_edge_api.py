"""GET /v1/staff's filters and GET /v1/lobby's desks_open, on the whole app and a real database."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from tests.running import RunningApp


def staff_event(event_type: str, queue: str, at: float, **subject: str) -> dict[str, Any]:
    name = subject.get("agent") or subject.get("desk")
    return {
        "event_id": f"{event_type}:{queue}:{name}:{at}",
        "type": event_type,
        "queue": queue,
        "occurred_at": datetime.fromtimestamp(at, UTC).isoformat(),
        **subject,
    }


async def test_lobby_counts_open_desks_per_category_and_each_desk_once(api: RunningApp) -> None:
    now = time.time()
    body = [
        staff_event("desk.opened", "pas", now - 60, desk="1", agent="s-17"),
        staff_event("desk.opened", "pas", now - 60, desk="2"),
        staff_event("desk.opened", "borgerservice", now - 60, desk="2"),
        staff_event("desk.opened", "koerekort", now - 60, desk="3"),
        staff_event("desk.closed", "koerekort", now - 10, desk="3"),
        {
            "event_id": "t1",
            "type": "ticket.issued",
            "contact_id": "t1",
            "queue": "pas",
            "occurred_at": datetime.fromtimestamp(now - 30, UTC).isoformat(),
            "ticket_number": "P001",
        },
    ]
    assert (await api.post(body)).status_code == 200

    everything = (await api.client.get("/v1/lobby")).json()
    narrowed = (await api.client.get("/v1/lobby", params={"queue": "pas,borgerservice"})).json()
    one = (await api.client.get("/v1/lobby", params={"queue": "borgerservice"})).json()

    waiting = {item["queue"]: (item["waiting_now"], item["desks_open"]) for item in everything["waiting"]}
    # Borgerservice has a desk open and no ticket yet: listed, nobody waiting there.
    assert waiting == {"pas": (1, 2), "borgerservice": (0, 1)}
    # Desk 2 serves two categories: once in the total; desk 3 closed again.
    assert everything["desks_open"] == 2
    assert narrowed["desks_open"] == 2
    assert one["desks_open"] == 1
    assert [item["queue"] for item in one["waiting"]] == ["borgerservice"]


async def test_staff_route_narrows_to_a_channel_and_a_queue(api: RunningApp) -> None:
    now = time.time()
    body = [
        staff_event("agent.logged_in", "borgerservice", now - 120, agent="a1"),
        staff_event("agent.logged_in", "pension", now - 120, agent="a1"),
        staff_event("desk.opened", "pas", now - 120, desk="4"),
    ]
    assert (await api.post(body)).status_code == 200

    both = (await api.client.get("/v1/staff")).json()
    phone = (await api.client.get("/v1/staff", params={"channel": "phone", "queue": "pension"})).json()
    bad = await api.client.get("/v1/staff", params={"queue": "Not A Slug"})

    assert set(both["channels"]) == {"phone", "visit"}
    assert both["window"] == "15m"
    assert set(both["channels"]["phone"]["queues"]) == {"borgerservice", "pension"}
    assert both["channels"]["visit"]["total"]["staffed"] == 1
    assert set(phone["channels"]) == {"phone"}
    assert list(phone["channels"]["phone"]["queues"]) == ["pension"]
    # The agent in two queues: whole in each queue's count, once in the total, seconds shared.
    queues = both["channels"]["phone"]["queues"]
    assert queues["borgerservice"]["staffed"] == queues["pension"]["staffed"] == 1
    assert both["channels"]["phone"]["total"]["staffed"] == 1
    shared = queues["borgerservice"]["staffed_seconds"] + queues["pension"]["staffed_seconds"]
    assert abs(shared - both["channels"]["phone"]["total"]["staffed_seconds"]) <= 0.2
    assert bad.status_code == 422
    assert "members" not in both
