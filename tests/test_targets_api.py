"""Targets by API: stored, applied to today's figures at once (by a rebuild), and kept across restarts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.running import ADMIN_HEADERS, RunningApp, running_app


def _answered_call(contact: str, waited: float, queue: str = "borgerservice") -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "event_id": f"{contact}-offered",
            "type": "call.offered",
            "contact_id": contact,
            "queue": queue,
            "occurred_at": (now - timedelta(seconds=waited)).isoformat(),
        },
        {
            "event_id": f"{contact}-answered",
            "type": "call.answered",
            "contact_id": contact,
            "queue": queue,
            "occurred_at": now.isoformat(),
        },
    ]


async def _queue(api: RunningApp, queue: str = "borgerservice") -> dict[str, Any]:
    kpis = await api.kpis("today")
    result: dict[str, Any] = kpis["channels"]["phone"]["queues"][queue]  # type: ignore[index]
    return result


async def _put(api: RunningApp, path: str, body: dict[str, Any]) -> Any:
    return await api.client.put(f"/v1/targets/{path}", json=body, headers=ADMIN_HEADERS)


async def test_get_lists_channel_defaults(api: RunningApp) -> None:
    body = (await api.client.get("/v1/targets")).json()
    assert body["targets"] == [
        {
            "threshold_seconds": 60.0,
            "goal_pct": 90.0,
            "formula": "offered",
            "channel": "phone",
            "queue": None,
            "source": "default",
        },
        {
            "threshold_seconds": 300.0,
            "goal_pct": 70.0,
            "formula": "offered",
            "channel": "visit",
            "queue": None,
            "source": "default",
        },
    ]


async def test_change_recomputes_today_and_survives_restart(
    api: RunningApp, settings: Settings, clean_db: AsyncEngine
) -> None:
    assert (await api.post(_answered_call("c1", waited=30))).status_code == 200
    before = await _queue(api)
    assert (before["started"], before["started_within_target"]) == (1, 1)
    assert before["target"]["threshold_seconds"] == 60.0

    response = await _put(api, "phone/borgerservice", {"threshold_seconds": 20, "goal_pct": 95})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "threshold_seconds": 20.0,
        "goal_pct": 95.0,
        "formula": "offered",
        "channel": "phone",
        "queue": "borgerservice",
        "source": "queue",
    }
    after = await _queue(api)
    assert (after["started"], after["started_within_target"]) == (1, 0)
    assert after["target"] == {"threshold_seconds": 20.0, "goal_pct": 95.0, "formula": "offered"}
    assert after["service_level_pct"] == 0.0
    listed = (await api.client.get("/v1/targets")).json()["targets"]
    assert listed[-1]["queue"] == "borgerservice"
    async with clean_db.connect() as connection:
        row = (await connection.execute(text("SELECT threshold_seconds, formula FROM targets"))).one()
    assert tuple(row) == (20.0, "offered")

    async with running_app(settings) as restarted:
        again = await _queue(restarted)
        assert again == {**after, "longest_wait_now_seconds": again["longest_wait_now_seconds"]}
        assert (await restarted.client.get("/v1/targets")).json()["targets"] == listed


async def test_formula_change_applies(api: RunningApp) -> None:
    await api.post(_answered_call("c1", waited=90))
    abandoned = {
        "event_id": "c2-offered",
        "type": "call.offered",
        "contact_id": "c2",
        "queue": "borgerservice",
        "occurred_at": (datetime.now(UTC) - timedelta(seconds=40)).isoformat(),
    }
    left = {**abandoned, "event_id": "c2-left", "type": "call.abandoned"}
    left["occurred_at"] = datetime.now(UTC).isoformat()
    await api.post([abandoned, left])
    offered = await _queue(api)
    assert offered["service_level_pct"] == 0.0
    response = await _put(
        api, "phone/borgerservice", {"threshold_seconds": 120, "goal_pct": 80, "formula": "answered"}
    )
    assert response.status_code == 200
    answered = await _queue(api)
    # Within 120 s now, and the abandon does not count against the "answered" formula.
    assert answered["service_level_pct"] == 100.0
    assert answered["target"]["formula"] == "answered"


async def test_other_queues_keep_their_figures(api: RunningApp) -> None:
    await api.post(_answered_call("a", waited=30, queue="pas"))
    await api.post(_answered_call("b", waited=30, queue="skat"))
    await _put(api, "phone/pas", {"threshold_seconds": 10, "goal_pct": 90})
    assert (await _queue(api, "pas"))["started_within_target"] == 0
    assert (await _queue(api, "skat"))["started_within_target"] == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("phone/borgerservice", {"threshold_seconds": 0, "goal_pct": 90}),
        ("phone/borgerservice", {"threshold_seconds": 60, "goal_pct": 101}),
        ("phone/borgerservice", {"threshold_seconds": 60, "goal_pct": 90, "formula": "guess"}),
        ("phone/borgerservice", {"threshold_seconds": 60, "goal_pct": 90, "colour": "red"}),
        ("phone/borgerservice", {"goal_pct": 90}),
        ("fax/borgerservice", {"threshold_seconds": 60, "goal_pct": 90}),
        ("phone/Not A Slug", {"threshold_seconds": 60, "goal_pct": 90}),
    ],
)
async def test_bad_targets_are_refused(
    api: RunningApp, clean_db: AsyncEngine, path: str, body: dict[str, Any]
) -> None:
    response = await _put(api, path, body)
    assert response.status_code == 422
    async with clean_db.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM targets"))).scalar_one() == 0


async def test_change_during_ingest_loses_and_doubles_nothing(api: RunningApp, settings: Settings) -> None:
    for first, threshold in ((0, 5), (20, 25)):
        posts = [api.post(_answered_call(f"c{i}", waited=i)) for i in range(first, first + 20)]
        put = _put(api, "phone/borgerservice", {"threshold_seconds": threshold, "goal_pct": 90})
        answers = await asyncio.gather(*posts[:10], put, *posts[10:])
        assert [answer.status_code for answer in answers] == [200] * 21
    live = await _queue(api)
    assert (live["arrived"], live["started"]) == (40, 40)
    assert live["target"]["threshold_seconds"] == 25.0
    # Waits 0..39 s, so those of 25 s or less count within the target now in force.
    assert live["started_within_target"] == 26
    async with running_app(settings) as restarted:
        assert await _queue(restarted) == {**live, "longest_wait_now_seconds": None}
