"""The /staffing page and the lobby's expected wait in Chromium against a live service.

The page: the heat map of the week's pattern from rollup rows written here, the plan against the staff
usually there (and "unknown" with none), printable, under the pages' CSP. The lobby: the expected wait
of a queue with desks open and services behind it, and none for a queue with too little data.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, Response, expect

from app.core.clock import day_intervals
from app.db.embedded import asyncpg_dsn, run_coroutine_blocking
from tests.browser.conftest import READ_TOKEN, LiveServer

pytestmark = pytest.mark.browser

TZ = ZoneInfo("Europe/Copenhagen")


def rollup_rows(queue: str, day: date, staffed: float) -> list[tuple[Any, ...]]:
    """A baseline day: 12 arrivals in each quarter-hour from 10:00 to 12:00, 3-minute handle times."""
    rows = []
    for start in day_intervals(day, TZ):
        at = datetime.fromtimestamp(start, UTC)
        if 10 <= at.astimezone(TZ).hour < 12:
            rows.append(("phone", queue, at, 12, 12, 12 * 10.0, 12, 12 * 180.0, staffed))
    return rows


def write_history(server: LiveServer, queue: str, staffed: float) -> None:
    today = datetime.now(TZ).date()
    rows = [row for week in range(1, 9) for row in rollup_rows(queue, today - timedelta(weeks=week), staffed)]

    async def insert() -> None:
        connection = await asyncpg.connect(asyncpg_dsn(server.env["QUEUEPULSE_DATABASE_URL"]))
        try:
            await connection.executemany(
                "INSERT INTO interval_rollup (channel, queue, interval_start, arrived, started, wait_sum, "
                "finished, handle_sum, handled, served, staffed_seconds) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $7, $9)",
                rows,
            )
        finally:
            await connection.close()

    run_coroutine_blocking(insert)


def policy_errors(page: Page) -> list[str]:
    """CSP refusals in the console, and any of the page's own requests that failed (the browser's own
    favicon request is no part of the page)."""
    found: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            found.append(message.text)

    def answered(response: Response) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            found.append(f"{response.status} {response.url}")

    page.on("console", seen)
    page.on("response", answered)
    return found


def test_the_staffing_page_shows_the_pattern_and_the_plan_and_prints(
    page: Page, live_server: LiveServer
) -> None:
    queue = f"plan-{uuid.uuid4().hex[:6]}"
    write_history(live_server, queue, staffed=2 * 900.0)
    errors = policy_errors(page)
    today = datetime.now(TZ).date()
    response = page.goto(
        f"{live_server.url}/staffing?token={READ_TOKEN}&channel=phone&queue={queue}&date={today}"
    )
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    weekday = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][today.weekday()]
    # The heat map: this weekday has its 12 contacts a quarter-hour at 10:00, the other days none.
    cell = page.locator(f'#heatmap rect.cell[data-weekday="{weekday}"][data-time="10:00"]')
    expect(cell).to_have_attribute("data-arrivals", "12")
    other = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][(today.weekday() + 1) % 7]
    expect(page.locator(f'#heatmap rect.cell[data-weekday="{other}"][data-time="10:00"]')).to_have_attribute(
        "data-arrivals", "0"
    )
    # The plan against those staffed: a need at 10:00, the staff the weekday usually had (2.0), and
    # today's own staffing not known (no staff events sent).
    row = page.locator('#plan-table tr[data-time="10:00"] td')
    expect(row.nth(1)).to_have_text("12.00")
    needed = int(row.nth(3).inner_text())
    assert needed >= 1
    expect(row.nth(6)).to_have_text("2.0")
    expect(page.locator("body")).to_have_attribute("data-staffed", "usual")
    expect(page.locator("#plan-chart svg rect.range").first).to_be_visible()
    expect(page.locator("#accuracy-table tbody tr")).to_have_count(1)
    # Printable: the controls go, the figures stay.
    page.emulate_media(media="print")
    expect(page.locator("#controls")).to_be_hidden()
    expect(page.locator("#heatmap svg")).to_be_visible()
    expect(page.locator("#plan-table")).to_be_visible()
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF")
    assert errors == []


def test_with_no_staff_history_the_page_says_staffed_is_unknown(page: Page, live_server: LiveServer) -> None:
    queue = f"plan-{uuid.uuid4().hex[:6]}"
    write_history(live_server, queue, staffed=0.0)
    page.goto(f"{live_server.url}/staffing?token={READ_TOKEN}&channel=phone&queue={queue}")
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.locator("body")).to_have_attribute("data-staffed", "unknown")
    expect(page.locator("#staffed-note")).to_contain_text("Staffed is unknown")
    expect(page.locator('#plan-table tr[data-time="10:30"] td').nth(5)).to_have_text("unknown")


def lobby_day(server: LiveServer, queue: str) -> None:
    """Two desks open, five 300 s services in the last hour, both desks busy, three tickets waiting."""
    now = datetime.now(UTC)

    def at(seconds_ago: float) -> str:
        return (now - timedelta(seconds=seconds_ago)).isoformat()

    def ticket(type_: str, number: str, seconds_ago: float, **fields: Any) -> dict[str, Any]:
        return {
            "event_id": f"{queue}-{type_}-{number}",
            "type": type_,
            "contact_id": f"{queue}-{number}",
            "queue": queue,
            "occurred_at": at(seconds_ago),
            "ticket_number": number,
            **fields,
        }

    events: list[dict[str, Any]] = [
        {
            "event_id": f"{queue}-open-{d}",
            "type": "desk.opened",
            "desk": d,
            "queue": queue,
            "occurred_at": at(3000),
        }
        for d in ("1", "2")
    ]
    for n in range(5):
        start = 2800 - n * 300
        events += [
            ticket("ticket.issued", f"S{n}", start),
            ticket("ticket.called", f"S{n}", start, desk="1"),
            ticket("ticket.completed", f"S{n}", start - 300, resolved=True),
        ]
    events += [
        ticket("ticket.issued", "B1", 200),
        ticket("ticket.called", "B1", 200, desk="1"),
        ticket("ticket.issued", "B2", 190),
        ticket("ticket.called", "B2", 190, desk="2"),
        *(ticket("ticket.issued", f"W{n}", 100 - n) for n in range(3)),
    ]
    for item in events:
        server.post(item)


def test_the_lobby_shows_the_expected_wait_and_none_without_data(page: Page, live_server: LiveServer) -> None:
    served, thin = f"lobby-{uuid.uuid4().hex[:6]}", f"lobby-{uuid.uuid4().hex[:6]}"
    lobby_day(live_server, served)
    live_server.post(live_server.event("ticket.issued", f"{thin}-1", thin, ticket_number="T1"))
    page.goto(live_server.screen("lobby", queue=f"{served},{thin}"))
    expect(page.locator("body")).to_have_attribute("data-connection", "live")
    item = page.locator(f'#waiting li[data-queue="{served}"]')
    # (3 ahead + 1) x 300 s / 2 desks = 10 minutes: the 10-20 range.
    expect(item).to_have_attribute("data-expected", "10_20")
    expect(item.locator(".expected-wait")).to_contain_text("Forventet ventetid: 10-20 min")
    expect(item.locator(".expected-wait")).to_contain_text("Expected wait")
    expect(item.locator("strong").first).to_have_text("3")
    # Too little data: no estimate at all, rather than a guess.
    quiet = page.locator(f'#waiting li[data-queue="{thin}"]')
    expect(quiet).to_have_attribute("data-expected", "hidden")
    expect(quiet.locator(".expected-wait")).to_have_count(0)
    page.goto(live_server.screen("lobby", queue=served, lang="en"))
    expect(page.locator(f'#waiting li[data-queue="{served}"] .expected-wait')).to_have_text(
        "Expected wait: 10-20 min"
    )


def test_the_wallboard_tile_shows_the_agents_needed(page: Page, live_server: LiveServer) -> None:
    queue = f"wall-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    events: list[dict[str, Any]] = []
    # Thirty calls over the last 50 minutes, answered at once and three minutes long: advice from the hour.
    for n in range(30):
        offered = now - timedelta(seconds=3000 - n * 100)
        for type_, offset, fields in (
            ("call.offered", 0, {}),
            ("call.answered", 5, {"agent": "a1"}),
            ("call.ended", 185, {"resolved": True}),
        ):
            events.append(
                {
                    "event_id": f"{queue}-{type_}-{n}",
                    "type": type_,
                    "contact_id": f"{queue}-{n}",
                    "queue": queue,
                    "occurred_at": (offered + timedelta(seconds=offset)).isoformat(),
                    **fields,
                }
            )
    live_server.post(*[item for item in events if item["occurred_at"] <= now.isoformat()])
    advice = httpx.get(
        f"{live_server.url}/v1/staffing", headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=10
    ).json()["queues"]["phone"][queue]["needed"]
    page.goto(live_server.screen("wallboard", channel="phone", queue=queue, total="0"))
    needed = page.locator(".tile .needed")
    expected = f"{advice['low']}-{advice['high']}" if advice["low"] != advice["high"] else str(advice["low"])
    expect(needed).to_have_text(f"behov {expected}")
    page.goto(live_server.screen("wallboard", channel="phone", queue=queue, total="0", lang="en"))
    expect(page.locator(".tile .needed")).to_have_text(f"needed {expected}")
