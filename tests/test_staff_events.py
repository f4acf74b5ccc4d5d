"""Agents and desks through the real service: the staff events' rules, their rows, a restart that keeps
agents logged in since before midnight, and the rollup and report columns (issue 15)."""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.clock import day_bounds, local_date
from app.core.staff import member_json, staff_json
from app.core.window import Window
from app.db.replay import replay
from app.settings import Settings, target_book, window_config
from tests.running import RunningApp, running_app
from tests.traffic import Clock, stamp

WINDOWS = ("15m", "1h", "today")


def body(event_id: str, type_: str, at: float, queue: str = "borgerservice", **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "queue": queue, "occurred_at": stamp(at), **fields}


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"type": "agent.logged_in", "agent": "a1", "contact_id": "a1"}, "contact_id", "not allowed"),
        ({"type": "agent.logged_in"}, "agent", "required"),
        ({"type": "agent.paused", "desk": "d1", "agent": "a1"}, "desk", "not allowed"),
        ({"type": "desk.opened", "agent": "a1"}, "desk", "required"),
        ({"type": "desk.closed", "desk": "d1", "agent": "a1"}, "agent", "not allowed"),
        ({"type": "agent.logged_in", "agent": "a1", "reason": "lunch"}, "reason", "only allowed"),
        ({"type": "agent.ready", "agent": "a1", "wait_seconds": 3}, "wait_seconds", "not allowed"),
        ({"type": "agent.ready", "agent": "a1", "resolved": True}, "resolved", "not allowed"),
        ({"type": "call.offered"}, "contact_id", "required"),
    ],
)
async def test_a_staff_event_breaking_a_rule_is_refused_naming_the_field(
    api: RunningApp, fields: dict[str, Any], field: str, words: str
) -> None:
    sent = {"event_id": "s-1", "queue": "borgerservice", "occurred_at": stamp(time.time() - 5), **fields}
    response = await api.post(sent)
    assert response.status_code == 422, response.text
    issues = response.json()["detail"]
    assert any(issue["field"] == field and words in issue["message"] for issue in issues), issues
    async with api.services.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM events"))).scalar_one() == 0


async def test_a_staff_event_is_stored_with_its_subject_as_contact_id(api: RunningApp) -> None:
    at = time.time() - 5
    batch = [
        body("s-1", "agent.logged_in", at - 60, agent="a-17"),
        body("s-2", "agent.paused", at - 30, agent="a-17", reason="lunch"),
        body("s-3", "desk.opened", at - 20, queue="pas", desk="3", agent="staff-4"),
    ]
    response = await api.post(batch)
    assert response.status_code == 200, response.text
    again = await api.post(batch)
    assert again.json() == {"accepted": 0, "duplicates": 3}
    query = "SELECT type, channel, contact_id, agent, desk, reason FROM events ORDER BY id"
    async with api.services.engine.connect() as conn:
        rows = (await conn.execute(text(query))).all()
    assert [tuple(row) for row in rows] == [
        ("agent.logged_in", "phone", "a-17", "a-17", None, None),
        ("agent.paused", "phone", "a-17", "a-17", None, "lunch"),
        ("desk.opened", "visit", "3", "staff-4", "3", None),
    ]
    members = {m.subject: m for m in api.services.window.staff_members(time.time())}
    assert (members["a-17"].state, members["a-17"].reason) == ("paused", "lunch")
    assert members["3"].state == "available"


def _staff_day(read_at: float, day_start: float) -> list[tuple[float, dict[str, Any]]]:
    """(received, body): agent a1 logged in at 18:00 the evening before and still working, agent a2 since two
    hours, a desk since yesterday too; calls, a pause asked for during a call, a ringing, a late delivery."""
    evening = day_start - 6 * 3600
    lunch = {"agent": "a1", "reason": "lunch"}
    events = [
        (evening, body("a1-in-1", "agent.logged_in", evening, agent="a1")),
        (evening + 1, body("a1-in-2", "agent.logged_in", evening + 1, queue="pas", agent="a1")),
        (evening + 60, body("d1-open", "desk.opened", evening + 60, queue="lobby", desk="d1", agent="p7")),
        (read_at - 7200, body("a2-in", "agent.logged_in", read_at - 7200, agent="a2")),
        (read_at - 1900, body("c1-off", "call.offered", read_at - 1900, contact_id="c1")),
        (read_at - 1800, body("c1-ans", "call.answered", read_at - 1800, contact_id="c1", agent="a1")),
        (read_at - 1700, body("a1-pause", "agent.paused", read_at - 1700, **lunch)),
        (read_at - 1700, body("a1-pause-2", "agent.paused", read_at - 1700, queue="pas", **lunch)),
        (read_at - 1000, body("c1-end", "call.ended", read_at - 1200, contact_id="c1")),  # late
        (read_at - 900, body("a2-ring", "agent.ringing", read_at - 900, agent="a2")),
        (read_at - 890, body("c2-off", "call.offered", read_at - 950, contact_id="c2")),
        (read_at - 880, body("c2-ans", "call.answered", read_at - 880, contact_id="c2", agent="a2")),
        (read_at - 600, body("t1-iss", "ticket.issued", read_at - 700, queue="lobby", contact_id="t1")),
        (
            read_at - 590,
            body("t1-call", "ticket.called", read_at - 590, queue="lobby", contact_id="t1", desk="d1"),
        ),
        (read_at - 100, body("t1-done", "ticket.completed", read_at - 100, queue="lobby", contact_id="t1")),
        (read_at - 60, body("a1-back", "agent.resumed", read_at - 60, agent="a1")),
        (read_at - 60, body("a1-back-2", "agent.resumed", read_at - 60, queue="pas", agent="a1")),
    ]
    return sorted(events, key=lambda item: item[0])


def _staff_view(app: RunningApp | Window, now: float) -> dict[str, Any]:
    window = app if isinstance(app, Window) else app.services.window
    return {
        **{name: staff_json(window.staff(name, now)) for name in WINDOWS},  # type: ignore[arg-type]
        "members": [member_json(member) for member in window.staff_members(now)],
    }


async def test_a_restart_keeps_agents_logged_in_since_before_midnight(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    tz = ZoneInfo(settings.time_zone)
    read_at = float(int(time.time())) - 5
    day_start = day_bounds(local_date(read_at, tz), tz)[0]
    deliveries = _staff_day(read_at, day_start)
    clock = Clock(deliveries[0][0])
    async with running_app(settings, clock) as first:
        for received, sent in deliveries:
            clock.now = received
            response = await first.post([sent])
            assert response.status_code == 200, response.text
        # A retry of a stored event is refused by the store, not counted twice.
        assert (await first.post([deliveries[-1][1]])).json()["duplicates"] == 1
        clock.now = read_at
        before = _staff_view(first, read_at)

    async with running_app(settings, Clock(read_at)) as second:
        after = _staff_view(second, read_at)
    # And by a full replay from the events table, whether the restart above took a checkpoint or not: the
    # evening's logins are older than today's replay reaches for contacts.
    replayed = Window(window_config(settings), target_book(settings))
    await replay(clean_db, replayed, read_at)

    assert after == before
    assert _staff_view(replayed, read_at) == before
    members = {member["subject"]: member for member in after["members"]}
    assert members["a1"]["state"] == "available"
    assert members["a1"]["queues"] == ["borgerservice", "pas"]
    assert members["a1"]["since"] == read_at - 60  # paused from the end of c1 until then
    assert members["a2"]["state"] == "on_contact"
    assert members["d1"]["state"] == "available"
    # a1's pause began when c1 ended (read_at - 1200) and ended at read_at - 60.
    assert after["1h"]["channels"]["phone"]["total"]["paused_seconds"] == pytest.approx(1140, abs=0.1)
    today = after["today"]["channels"]["phone"]["total"]
    # a1 all day (logged in before midnight), a2 for two hours: to the tenth of a second.
    elapsed = read_at - day_start
    assert today["staffed_seconds"] == pytest.approx(elapsed + min(7200, elapsed), abs=0.1)
    assert today["contacts_handled"] == (1 if read_at - 1200 >= day_start else 0)
    assert after["today"]["channels"]["visit"]["total"]["staffed"] == 1


async def test_the_rollup_and_the_day_report_carry_staff_hours_as_live(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    tz = ZoneInfo(settings.time_zone)
    day = date(2026, 11, 24)
    start, _ = day_bounds(day, tz)
    opening = start + 8 * 3600
    brk = {"agent": "a2", "reason": "break"}
    events = [
        body("a1-in", "agent.logged_in", opening, agent="a1"),
        body("a2-in-1", "agent.logged_in", opening + 600, agent="a2"),
        body("a2-in-2", "agent.logged_in", opening + 600, queue="pas", agent="a2"),
        body("c1-off", "call.offered", opening + 900, contact_id="c1"),
        body("c1-ans", "call.answered", opening + 930, contact_id="c1", agent="a1"),
        body("c1-end", "call.ended", opening + 1530, contact_id="c1", agent="a1"),
        body("a2-pause", "agent.paused", opening + 1800, **brk),
        body("a2-pause-2", "agent.paused", opening + 1800, queue="pas", **brk),
        body("a2-back", "agent.resumed", opening + 2700, agent="a2"),
        body("a2-back-2", "agent.resumed", opening + 2700, queue="pas", agent="a2"),
        body("a1-out", "agent.logged_out", opening + 3 * 3600, agent="a1"),
    ]
    read_at = opening + 4 * 3600 + 123
    params = {"granularity": "day", "from": day.isoformat(), "to": day.isoformat()}
    clock = Clock(opening)
    async with running_app(settings, clock) as app:
        for sent in events:
            clock.now = datetime.fromisoformat(sent["occurred_at"]).timestamp()
            assert (await app.post([sent])).status_code == 200
        clock.now = read_at
        rollup = app.services.rollup
        assert rollup is not None
        await rollup.flush()
        live = app.services.window.staff("today", read_at).channels["phone"]
        response = await app.client.get("/v1/reports", params=params)
        assert response.status_code == 200, response.text
        rows = {(row["channel"], row["queue"]): row for row in response.json()["rows"]}
        csv_text = (await app.client.get("/v1/reports", params={**params, "format": "csv"})).text
    query = (
        "SELECT queue, sum(staffed_seconds), sum(handling_seconds), sum(paused_seconds) "
        "FROM interval_rollup WHERE channel = 'phone' GROUP BY queue ORDER BY queue"
    )
    async with clean_db.connect() as conn:
        summed = (await conn.execute(text(query))).all()
    by_queue = {queue: (staffed, handling, paused) for queue, staffed, handling, paused in summed}
    # a1: 3 h in borgerservice; a2: 4 h 2 min 3 s less 10 min, shared by two queues, 15 minutes' pause.
    a2 = 4 * 3600 + 123 - 600
    assert by_queue["borgerservice"][0] == pytest.approx(3 * 3600 + a2 / 2, abs=1e-6)
    assert by_queue["pas"][0] == pytest.approx(a2 / 2, abs=1e-6)
    assert by_queue["borgerservice"][1] == pytest.approx(600, abs=1e-6)
    assert by_queue["pas"][2] == pytest.approx(450, abs=1e-6)
    for queue in ("borgerservice", "pas"):
        row, figures = rows[("phone", queue)], live.queues[queue]
        assert row["staffed_hours"] == round(figures.staffed_seconds / 3600, 3)
        assert row["handled_hours"] == round(figures.handling_seconds / 3600, 3)
        assert figures.occupancy is not None
        assert row["occupancy"] == round(figures.occupancy, 4)
    total = rows[("phone", None)]
    assert live.total.staffed_seconds == pytest.approx(3 * 3600 + a2, abs=1e-6)
    assert total["staffed_hours"] == round(live.total.staffed_seconds / 3600, 3)
    header = csv_text.splitlines()[0].split(",")
    assert header[-3:] == ["staffed_hours", "handled_hours", "occupancy"]
