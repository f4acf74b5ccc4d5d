"""The JSON the wall screens poll, and the pages and assets they load, through the real app."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.clock import interval_start
from app.settings import Settings
from tests.running import RunningApp, running_app


def event(type_: str, contact: str, queue: str, at: float, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"{type_}-{contact}-{at}",
        "type": type_,
        "contact_id": contact,
        "queue": queue,
        "occurred_at": datetime.fromtimestamp(at, UTC).isoformat(),
        **fields,
    }


def fixed_now() -> float:
    """A past moment 30 s into a quarter-hour, so events just before it fall in the same interval."""
    return interval_start(time.time() - 30) + 30.0


@pytest.fixture
async def frozen(settings: Settings, clean_db: AsyncEngine) -> AsyncIterator[tuple[RunningApp, float]]:
    now = fixed_now()
    async with running_app(settings, clock=lambda: now) as app:
        yield app, now


async def test_intervals_give_the_service_level_per_quarter_hour(frozen: tuple[RunningApp, float]) -> None:
    api, now = frozen
    response = await api.post(
        [
            event("call.offered", "c1", "borgerservice", now - 2),
            event("call.answered", "c1", "borgerservice", now - 1, wait_seconds=20),
            event("call.ended", "c1", "borgerservice", now - 1, resolved=True),
            event("call.offered", "c2", "borgerservice", now - 2),
            event("call.answered", "c2", "borgerservice", now - 1, wait_seconds=61),
            event("call.offered", "c3", "pension", now - 2),
            event("call.abandoned", "c3", "pension", now - 1, wait_seconds=40),
        ]
    )
    assert response.status_code == 200, response.text
    tz = ZoneInfo("Europe/Copenhagen")

    body = (
        await api.client.get("/v1/kpis/intervals", params={"channel": "phone", "queue": "borgerservice"})
    ).json()
    assert body["channel"] == "phone"
    assert body["queue"] == "borgerservice"
    assert body["date"] == datetime.fromtimestamp(now, tz).date().isoformat()
    assert body["target"] == {"threshold_seconds": 60.0, "goal_pct": 90.0, "formula": "offered"}
    intervals = body["intervals"]
    # From local midnight up to the interval in progress, which is the last one.
    assert intervals[0]["start"].endswith(("T00:00:00+01:00", "T00:00:00+02:00"))
    current = intervals[-1]
    assert current["current"] is True
    assert current["start"] == datetime.fromtimestamp(interval_start(now - 1), tz).isoformat()
    assert current["service_level_pct"] == 50.0
    assert current["status"] == "breach"
    assert current["arrived"] == 2
    assert current["started_within_target"] == 1
    assert current["first_contact_resolution_pct"] == 100.0
    assert all(item["service_level_pct"] is None for item in intervals[:-1])

    total = (await api.client.get("/v1/kpis/intervals", params={"channel": "phone"})).json()
    # The channel total: 1 within of 2 answered plus 1 abandoned after the short-abandon limit.
    assert total["queue"] is None
    assert total["intervals"][-1]["service_level_pct"] == pytest.approx(100 / 3, abs=0.01)


async def test_interval_in_progress_counts_who_waits_past_the_threshold(
    frozen: tuple[RunningApp, float],
) -> None:
    api, now = frozen
    await api.post(
        [
            event("call.offered", "w1", "borgerservice", now - 1),
            event("call.answered", "w1", "borgerservice", now - 1, wait_seconds=5),
            event("call.offered", "w2", "borgerservice", now - 120),
        ]
    )
    body = (
        await api.client.get("/v1/kpis/intervals", params={"channel": "phone", "queue": "borgerservice"})
    ).json()
    current = body["intervals"][-1]
    assert current["waiting_past_target"] == 1
    assert current["service_level_pct"] == 50.0


async def test_intervals_hold_today_and_yesterday_only(api: RunningApp) -> None:
    today = datetime.now(ZoneInfo("Europe/Copenhagen")).date()
    yesterday = (
        await api.client.get(
            "/v1/kpis/intervals", params={"channel": "visit", "date": str(today - timedelta(days=1))}
        )
    ).json()
    assert len(yesterday["intervals"]) in (92, 96, 100)
    assert not any(item["current"] for item in yesterday["intervals"])
    older = await api.client.get(
        "/v1/kpis/intervals", params={"channel": "visit", "date": str(today - timedelta(days=2))}
    )
    assert older.status_code == 422
    assert "date" in older.json()["detail"]
    assert (await api.client.get("/v1/kpis/intervals", params={"channel": "fax"})).status_code == 422
    assert (await api.client.get("/v1/kpis/intervals")).status_code == 422


async def test_lobby_lists_recent_calls_newest_first_and_waiting_per_category(api: RunningApp) -> None:
    now = time.time()
    await api.post(
        [
            event("ticket.issued", "t1", "pas", now - 30, ticket_number="P001"),
            event("ticket.issued", "t2", "pas", now - 20, ticket_number="P002"),
            event("ticket.issued", "t3", "borgerservice", now - 10, ticket_number="A001"),
            event("ticket.issued", "t4", "borgerservice", now - 9, ticket_number="A002"),
            event("ticket.called", "t1", "pas", now - 3, desk="2"),
            event("ticket.called", "t3", "borgerservice", now - 2, desk="4"),
        ]
    )
    body = (await api.client.get("/v1/lobby")).json()
    assert [(c["ticket_number"], c["desk"], c["queue"]) for c in body["recent_calls"]] == [
        ("A001", "4", "borgerservice"),
        ("P001", "2", "pas"),
    ]
    assert {w["queue"]: w["waiting_now"] for w in body["waiting"]} == {"borgerservice": 1, "pas": 1}

    only_pas = (await api.client.get("/v1/lobby", params={"queue": "pas", "limit": 5})).json()
    assert [c["ticket_number"] for c in only_pas["recent_calls"]] == ["P001"]
    assert [w["queue"] for w in only_pas["waiting"]] == ["pas"]
    one = (await api.client.get("/v1/lobby", params={"limit": 1})).json()
    assert [c["ticket_number"] for c in one["recent_calls"]] == ["A001"]
    assert (await api.client.get("/v1/lobby", params={"limit": 0})).status_code == 422


async def test_pages_and_assets_are_served(api: RunningApp) -> None:
    for page in ("wallboard", "lobby"):
        response = await api.client.get(f"/screens/{page}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert f"/screens/assets/{page}.js" in response.text
    script = await api.client.get("/screens/assets/screens.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await api.client.get("/screens/assets/screens.css")).status_code == 200
    assert (await api.client.get("/screens/assets/..%2Fapi%2Fscreens.py")).status_code == 404
    assert (await api.client.get("/screens/assets/wallboard.html")).status_code == 404


async def test_screen_data_needs_the_read_token_when_one_is_set(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    guarded = settings.model_copy(update={"read_token": "test-read-token"})
    async with running_app(guarded) as app:
        for path in ("/v1/lobby", "/v1/kpis/intervals?channel=phone"):
            assert (await app.client.get(path)).status_code == 401
            wrong = await app.client.get(path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 403
            right = await app.client.get(path, headers={"Authorization": "Bearer test-read-token"})
            assert right.status_code == 200
        # The pages themselves are open: they carry no data, and take the token from their own URL.
        assert (await app.client.get("/screens/lobby")).status_code == 200
