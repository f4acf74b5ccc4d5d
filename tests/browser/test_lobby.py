"""The lobby screen in Chromium against a live service: the called ticket, its desk, an outage."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser


def polls(page: Page) -> int:
    return int(page.evaluate("Number(document.body.dataset.polls || 0)"))


def issue(server: LiveServer, queue: str, *numbers: str) -> None:
    server.post(*(server.event("ticket.issued", number, queue, ticket_number=number) for number in numbers))


def call(server: LiveServer, queue: str, number: str, desk: str) -> None:
    server.post(server.event("ticket.called", number, queue, ticket_number=number, desk=desk))


def test_called_ticket_is_announced_within_two_polls(page: Page, live_server: LiveServer) -> None:
    queue = f"lobby-{uuid.uuid4().hex[:6]}"
    page.goto(live_server.screen("lobby", queue=queue))
    expect(page.locator("body")).to_have_attribute("data-connection", "live")
    expect(page.locator("#now-sentence")).to_have_text("Ingen numre er kaldt endnu")
    waiting = page.locator(f'#waiting li[data-queue="{queue}"] strong')
    expect(waiting).to_have_text("0")

    issue(live_server, queue, "A023", "A024", "A025")
    expect(waiting).to_have_text("3")

    before = polls(page)
    call(live_server, queue, "A023", "4")
    shown_at = page.wait_for_function(
        """(expected) => document.querySelector("#now-sentence").textContent.startsWith(expected)
            && Number(document.body.dataset.polls)""",
        arg="Nummer A023 - gå til skranke 4",
    ).json_value()
    assert shown_at <= before + 2
    sentence = page.locator("#now-sentence")
    expect(sentence).to_contain_text("Number A023 - please go to desk 4")
    expect(page.locator("#now-number")).to_have_text("A023")
    expect(page.locator("#now-calling")).to_have_class(re.compile(r"\bfresh\b"))
    expect(waiting).to_have_text("2")

    call(live_server, queue, "A024", "2")
    expect(page.locator("#now-number")).to_have_text("A024")
    expect(sentence).to_contain_text("Nummer A024 - gå til skranke 2")
    recent = page.locator("#recent li")
    expect(recent).to_have_count(1)
    expect(recent.first).to_contain_text("A023")
    expect(recent.first).to_contain_text("Skranke 4")
    expect(waiting).to_have_text("1")
    # The highlight is for a few seconds; then the newest call stays large but calm.
    expect(page.locator("#now-calling")).not_to_have_class(re.compile(r"\bfresh\b"), timeout=20_000)
    expect(page.locator("#now-number")).to_have_text("A024")


def test_english_by_query_parameter(page: Page, live_server: LiveServer) -> None:
    queue = f"lobby-{uuid.uuid4().hex[:6]}"
    issue(live_server, queue, "P007")
    call(live_server, queue, "P007", "3")
    page.goto(live_server.screen("lobby", queue=queue, lang="en"))
    expect(page.locator("#now-sentence")).to_have_text("Number P007 - please go to desk 3")
    expect(page.locator("#now-heading")).to_have_text("Now calling")
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_other_categories_are_left_out(page: Page, live_server: LiveServer) -> None:
    mine, other = f"lobby-{uuid.uuid4().hex[:6]}", f"lobby-{uuid.uuid4().hex[:6]}"
    issue(live_server, mine, "B001")
    issue(live_server, other, "C001")
    call(live_server, mine, "B001", "1")
    call(live_server, other, "C001", "5")
    page.goto(live_server.screen("lobby", queue=mine))
    expect(page.locator("#now-number")).to_have_text("B001")
    expect(page.locator(f'#waiting li[data-queue="{other}"]')).to_have_count(0)


def test_outage_is_shown_and_recovered_from(page: Page, live_server: LiveServer) -> None:
    queue = f"lobby-{uuid.uuid4().hex[:6]}"
    issue(live_server, queue, "K011", "K012")
    call(live_server, queue, "K011", "6")
    page.goto(live_server.screen("lobby", queue=queue))
    expect(page.locator("#now-number")).to_have_text("K011")

    live_server.stop()
    try:
        banner = page.locator("#connection")
        expect(page.locator("body")).to_have_attribute("data-connection", "lost")
        expect(banner).to_contain_text(
            re.compile("Forbindelse afbrudt \N{EN DASH} sidst opdateret kl\\. \\d\\d:\\d\\d:\\d\\d")
        )
        expect(page.locator("#stale-badge")).to_be_visible()
        decoration = page.evaluate(
            "getComputedStyle(document.querySelector('#now-number')).textDecorationLine"
        )
        assert decoration == "line-through"
    finally:
        live_server.start()

    expect(page.locator("body")).to_have_attribute("data-connection", "live")
    expect(banner).to_be_hidden()
    expect(page.locator("#now-number")).to_have_text("K011")
    call(live_server, queue, "K012", "1")
    expect(page.locator("#now-sentence")).to_contain_text("Nummer K012 - gå til skranke 1")
