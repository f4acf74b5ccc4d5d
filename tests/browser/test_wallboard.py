"""The staff wallboard in Chromium against a live service: new numbers, the live tick, an outage."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

NO_VALUE = "\N{EN DASH}"  # what the screens show where there is nothing to divide


def polls(page: Page) -> int:
    return int(page.evaluate("Number(document.body.dataset.polls || 0)"))


def seconds(text: str) -> int:
    minutes, _, rest = text.partition(":")
    return int(minutes) * 60 + int(rest)


def field(page: Page, key: str, name: str) -> str:
    return f'section.tile[data-key="{key}"] [data-field="{name}"]'


def post_sample(server: LiveServer, queue: str) -> None:
    """Two answered calls (one within 60 s, one not, resolved on first contact) and one still waiting."""
    event = server.event
    server.post(
        event("call.offered", f"{queue}-1", queue),
        event("call.answered", f"{queue}-1", queue, agent="a1", wait_seconds=30),
        event("call.ended", f"{queue}-1", queue, resolved=True),
        event("call.offered", f"{queue}-2", queue),
        event("call.answered", f"{queue}-2", queue, agent="a2", wait_seconds=90),
        event("call.offered", f"{queue}-3", queue),
    )


def test_posted_events_show_within_two_polls(page: Page, live_server: LiveServer) -> None:
    queue = f"wb-{uuid.uuid4().hex[:6]}"
    key = f"phone/{queue}"
    page.goto(live_server.screen("wallboard", channel="phone", queue=queue))
    expect(page.locator("body")).to_have_attribute("data-connection", "live")
    expect(page.locator(f'section.tile[data-key="{key}"]')).to_have_attribute("data-status", "no_data")
    expect(page.locator(field(page, key, "level"))).to_have_text(NO_VALUE)
    expect(page.locator("#connection")).to_be_hidden()

    before = polls(page)
    post_sample(live_server, queue)
    # The poll that shows the numbers is counted: at most two after the post (one may be in flight).
    shown_at = page.wait_for_function(
        """([level, waiting, arrived]) => {
            const text = (selector) => document.querySelector(selector)?.textContent;
            return text(level) === "50 %" && text(waiting) === "1" && text(arrived) === "3"
                && Number(document.body.dataset.polls);
        }""",
        arg=[field(page, key, "level"), field(page, key, "waiting"), field(page, key, "arrived")],
    ).json_value()
    assert shown_at <= before + 2

    tile = page.locator(f'section.tile[data-key="{key}"]')
    expect(tile).to_have_attribute("data-status", "breach")
    expect(tile.locator(".headline .status-icon.status-breach")).to_be_visible()
    expect(tile.locator(".goal")).to_contain_text("Mål 90 %")
    expect(tile.locator(".goal")).to_contain_text("inden 60 s")
    expect(tile.locator(".status-text")).to_have_text("Under mål")
    expect(page.locator(field(page, key, "fcr"))).to_have_text("100 %")
    # Today's chart: the interval in progress is a bar at 50 %, under the dashed goal line at 90 %.
    expect(tile.locator("svg.chart rect.bar.current")).to_have_attribute("data-level", "50")
    expect(tile.locator("svg.chart .goal-label")).to_have_text("mål 90 %")


def test_longest_wait_ticks_between_polls(page: Page, live_server: LiveServer) -> None:
    queue = f"wb-{uuid.uuid4().hex[:6]}"
    key = f"phone/{queue}"
    live_server.post(live_server.event("call.offered", f"{queue}-1", queue))
    # One poll a minute: every change seen below happens between polls, in the page.
    page.goto(live_server.screen("wallboard", channel="phone", queue=queue, interval="60000"))
    longest = page.locator(field(page, key, "longest"))
    expect(longest).to_have_text(re.compile(r"^\d+:\d\d$"))
    first = seconds(longest.inner_text())
    page.wait_for_function(
        "([selector, first]) => { const [m, s] = document.querySelector(selector).textContent.split(':');"
        " return Number(m) * 60 + Number(s) >= first + 2; }",
        arg=[field(page, key, "longest"), first],
    )
    assert polls(page) == 1


def test_outage_is_shown_and_recovered_from(page: Page, live_server: LiveServer) -> None:
    queue = f"wb-{uuid.uuid4().hex[:6]}"
    key = f"phone/{queue}"
    post_sample(live_server, queue)
    page.goto(live_server.screen("wallboard", channel="phone", queue=queue))
    level = page.locator(field(page, key, "level"))
    expect(level).to_have_text("50 %")
    expect(page.locator("body")).to_have_attribute("data-connection", "live")
    assert page.evaluate("getComputedStyle(document.querySelector('.level')).textDecorationLine") == "none"

    live_server.stop()
    try:
        banner = page.locator("#connection")
        expect(page.locator("body")).to_have_attribute("data-connection", "lost")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Forbindelse afbrudt")
        # The time of the last good data, in the centre's clock (HH:MM:SS).
        expect(banner).to_contain_text(re.compile(r"kl\. \d\d:\d\d:\d\d"))
        # The last numbers stay readable but are struck through and greyed: never shown as live.
        expect(level).to_have_text("50 %")
        decoration = page.evaluate("getComputedStyle(document.querySelector('.level')).textDecorationLine")
        assert decoration == "line-through"
        expect(page.locator(f'section.tile[data-key="{key}"] .stale-badge')).to_be_visible()
        frozen = page.locator(field(page, key, "longest")).inner_text()
        page.wait_for_timeout(1500)
        assert page.locator(field(page, key, "longest")).inner_text() == frozen
    finally:
        live_server.start()

    expect(page.locator("body")).to_have_attribute("data-connection", "live")
    expect(page.locator("#connection")).to_be_hidden()
    # The restarted service replayed its database: the same figures, live again, then new ones.
    expect(level).to_have_text("50 %")
    assert page.evaluate("getComputedStyle(document.querySelector('.level')).textDecorationLine") == "none"
    live_server.post(live_server.event("call.answered", f"{queue}-3", queue, agent="a3", wait_seconds=10))
    expect(level).to_have_text("67 %")


def test_wrong_token_is_reported_not_shown_as_outage(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.screen("wallboard", token="not-the-token"))
    expect(page.locator("body")).to_have_attribute("data-connection", "denied")
    expect(page.locator("#connection")).to_have_text("Adgang nægtet: tjek token i adressen")


def test_english_labels(page: Page, live_server: LiveServer) -> None:
    queue = f"wb-{uuid.uuid4().hex[:6]}"
    post_sample(live_server, queue)
    page.goto(live_server.screen("wallboard", channel="phone", queue=queue, lang="en"))
    tile = page.locator(f'section.tile[data-key="phone/{queue}"]')
    expect(tile.locator(".status-text")).to_have_text("Below target")
    expect(tile.locator(".goal")).to_contain_text("Goal 90 %")
    expect(page.locator("#title")).to_have_text("Service levels today")
