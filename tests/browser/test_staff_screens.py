"""Who is there to answer, on the wall screens in Chromium: the wallboard tile's staffed, available,
talking and paused beside the service level (large enough to read across the room), and the lobby's open
desks."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

NO_VALUE = "\N{EN DASH}"
CREW = ("staffed", "available", "on_contact", "paused")


def staff_event(server: LiveServer, event_type: str, queue: str, **fields: Any) -> dict[str, Any]:
    server.sequence += 1
    return {
        "event_id": f"browser-staff-{server.sequence}-{time.time_ns()}",
        "type": event_type,
        "queue": queue,
        "occurred_at": datetime.now(UTC).isoformat(),
        **fields,
    }


def crew(page: Page, key: str) -> dict[str, str]:
    tile = page.locator(f'section.tile[data-key="{key}"]')
    return {name: tile.locator(f'.crew [data-field="{name}"]').inner_text() for name in CREW}


def test_the_tile_shows_who_is_there_beside_the_service_level(page: Page, live_server: LiveServer) -> None:
    queue = f"crew-{uuid.uuid4().hex[:6]}"
    key = f"phone/{queue}"
    live_server.post(live_server.event("call.offered", f"{queue}-0", queue))
    page.goto(live_server.screen("wallboard", channel="phone", queue=queue))
    tile = page.locator(f'section.tile[data-key="{key}"]')
    expect(tile.locator('.crew [data-field="staffed"]')).to_have_text(NO_VALUE)

    def agent(event_type: str, name: str, **extra: Any) -> dict[str, Any]:
        return staff_event(live_server, event_type, queue, agent=name, **extra)

    live_server.post(
        agent("agent.logged_in", "a1"),
        agent("agent.logged_in", "a2"),
        agent("agent.logged_in", "a3"),
        agent("agent.logged_in", "a4"),
        agent("agent.paused", "a4", reason="frokost"),
        live_server.event("call.answered", f"{queue}-0", queue, agent="a1", wait_seconds=12),
    )
    expect(tile.locator('.crew [data-field="on_contact"]')).to_have_text("1")
    assert crew(page, key) == {"staffed": "4", "available": "2", "on_contact": "1", "paused": "1"}
    labels = tile.locator(".crew .label").all_inner_texts()
    assert labels == ["Logget ind", "Ledige", "I samtale", "Pause"]

    # Next to the service level: the figures sit right under the headline, above the other stats.
    headline = tile.locator(".headline").bounding_box()
    figures = tile.locator(".crew").bounding_box()
    stats = tile.locator(".stats").bounding_box()
    assert headline
    assert figures
    assert stats
    assert headline["y"] + headline["height"] <= figures["y"] + 1
    assert figures["y"] + figures["height"] <= stats["y"] + 1
    # Readable across the room: at 1920x1080 a figure is at least as large as the other stats' figures
    # and well over 40 px (about 2 cm on a 55" screen, legible from 6-8 m).
    font_size = "e => parseFloat(getComputedStyle(e).fontSize)"
    size = float(tile.locator('.crew [data-field="staffed"]').evaluate(font_size))
    stat = float(tile.locator('.stats [data-field="waiting"]').evaluate(font_size))
    assert size >= stat
    assert size > 40
    # The slot for the staffing advice ("needed N-M") is beside the staffed count, empty and taking no room.
    needed = tile.locator('.crew-staffed .needed[data-field="needed"]')
    expect(needed).to_have_count(1)
    expect(needed).to_be_hidden()

    # The pause ends, an agent leaves: the tile follows within a poll or two.
    live_server.post(agent("agent.resumed", "a4"), agent("agent.logged_out", "a3"))
    expect(tile.locator('.crew [data-field="paused"]')).to_have_text("0")
    assert crew(page, key) == {"staffed": "3", "available": "2", "on_contact": "1", "paused": "0"}


def test_english_labels_and_desks_on_visit_tiles(page: Page, live_server: LiveServer) -> None:
    queue = f"desk-{uuid.uuid4().hex[:6]}"
    live_server.post(
        staff_event(live_server, "desk.opened", queue, desk="7", agent="s1"),
        staff_event(live_server, "desk.opened", queue, desk="8"),
    )
    page.goto(live_server.screen("wallboard", channel="visit", queue=queue, lang="en"))
    tile = page.locator(f'section.tile[data-key="visit/{queue}"]')
    expect(tile.locator('.crew [data-field="staffed"]')).to_have_text("2")
    assert tile.locator(".crew .label").all_inner_texts() == ["Desks open", "Available", "Serving", "Paused"]


def test_the_lobby_shows_how_many_desks_are_open(page: Page, live_server: LiveServer) -> None:
    first, second = f"lob-{uuid.uuid4().hex[:6]}", f"lob-{uuid.uuid4().hex[:6]}"
    live_server.post(
        live_server.event("ticket.issued", f"{first}-1", first, ticket_number="A001"),
        staff_event(live_server, "desk.opened", first, desk="1"),
        staff_event(live_server, "desk.opened", first, desk="2"),
        # Desk 3 serves both categories: once in the total.
        staff_event(live_server, "desk.opened", first, desk="3"),
        staff_event(live_server, "desk.opened", second, desk="3"),
    )
    page.goto(live_server.screen("lobby", queue=f"{first},{second}"))
    expect(page.locator("#desks-open-count")).to_have_text("3")
    expect(page.locator("#desks-open")).to_be_visible()
    expect(page.locator("#desks-open-label")).to_contain_text("Åbne skranker")
    expect(page.locator(f'#waiting li[data-queue="{first}"] .desks')).to_have_text("· 3 skranker")
    expect(page.locator(f'#waiting li[data-queue="{second}"] .desks')).to_have_text("· 1 skranke")

    live_server.post(staff_event(live_server, "desk.closed", first, desk="1"))
    expect(page.locator("#desks-open-count")).to_have_text("2")

    page.goto(live_server.screen("lobby", queue=first, desks="0"))
    expect(page.locator("body")).to_have_attribute("data-connection", "live")
    expect(page.locator("#desks-open")).to_be_hidden()
    expect(page.locator("#waiting .desks")).to_have_count(0)
