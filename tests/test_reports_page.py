"""The managers' report page in a real headless Chromium, against the real app over HTTP."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterator
from datetime import date
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.clock import day_bounds
from app.core.events import Channel
from app.core.kpis import Tally
from app.db.embedded import run_coroutine_blocking
from app.db.rollup import upsert_rollup
from app.main import create_app
from app.settings import Settings
from tests.browser.chromium import launch

pytestmark = pytest.mark.browser

TZ = ZoneInfo("Europe/Copenhagen")
YEAR = 2026
# Phone service level per month of the seeded year, in per cent; goal 90 %.
LEVELS = [93, 91, 88, 95, 90, 84, 97, 89, 92, 94, 80, 91]


def _seed_year(url: str) -> None:
    """One busy quarter-hour per month and queue, with the month's service level exactly as LEVELS says."""
    items = []
    for month, level in enumerate(LEVELS, start=1):
        start = int(day_bounds(date(YEAR, month, 10), TZ)[0]) + 10 * 3600
        for offset, queue in enumerate(("borgerservice", "pas")):
            tally = Tally(
                arrived=100, started=100, started_within=level, wait_sum=3000.0, finished=100, served=100
            )
            tally.resolved_first_contact = 85
            items.append((Channel.PHONE, queue, start + offset * 900, tally))
        visit = Tally(arrived=40, started=40, started_within=30, wait_sum=9000.0)
        items.append((Channel.VISIT, "pas", start, visit))

    async def seed() -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(url)
        try:
            await upsert_rollup(engine, items)
        finally:
            await engine.dispose()

    run_coroutine_blocking(seed)


@pytest.fixture
def server(settings: Settings, clean_db: AsyncEngine) -> Iterator[str]:
    """The whole app served by uvicorn on a free local port, in a thread of its own."""
    assert settings.database_url is not None
    _seed_year(settings.database_url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(uv.serve()), daemon=True)
    thread.start()
    for _ in range(600):
        if uv.started:
            break
        threading.Event().wait(0.05)
    else:
        raise TimeoutError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def page(server: str) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(server) else outside.append(r.url))
        yield page
        browser.close()
        assert outside == [], f"the page fetched from outside: {outside}"


def test_report_page_shows_months_against_goal_and_prints_on_one_a4_page(server: str, page: Page) -> None:
    page.goto(f"{server}/reports?from={YEAR}-01-01&to={YEAR}-12-31")
    page.wait_for_selector("body[data-state=ready]")

    bars = page.locator("#chart svg rect.bar")
    assert bars.count() == 12
    missed = [i for i, level in enumerate(LEVELS) if level < 90]
    classes = [bars.nth(i).get_attribute("class") or "" for i in range(12)]
    assert [i for i, c in enumerate(classes) if "missed" in c] == missed
    assert page.locator("#chart svg line.goal").count() == 1
    assert page.locator("#chart svg path.queue-line").count() == 2

    rows = page.locator("#table tbody tr")
    assert rows.count() == 12 * 3
    first_total = rows.nth(0).locator("td")
    assert first_total.nth(0).inner_text() == f"{YEAR}-01"
    assert first_total.nth(5).inner_text() == "93.0 %"
    assert first_total.nth(7).inner_text() == "yes"
    assert rows.nth(5 * 3).locator("td").nth(7).inner_text() == "no"

    href = page.locator("#csv").get_attribute("href") or ""
    assert "format=csv" in href
    csv_response = page.request.get(server + href)
    assert csv_response.ok
    assert csv_response.headers["content-type"].startswith("text/csv")
    assert csv_response.text().count("\n") == 1 + 12 * 3

    # Narrow to one queue: the table and the chart follow, the totals stay.
    page.locator("#queues input[value=pas]").uncheck()
    page.locator("#controls button[type=submit]").click()
    # Locator waits, not wait_for_function: that evaluates its text with eval, which the page's
    # Content-Security-Policy (rightly) forbids.
    expect(page.locator("#table tbody tr")).to_have_count(24)
    assert page.locator("#chart svg path.queue-line").count() == 1
    assert "queue=borgerservice" in page.url

    page.locator("#controls select[name=channel]").select_option("visit")
    expect(page.locator("#chart-title")).to_contain_text("visit")
    page.wait_for_selector("body[data-state=ready]")
    assert page.locator("#chart svg rect.bar.missed").count() == 0  # 75 % against a 70 % goal

    page.locator("#controls select[name=channel]").select_option("phone")
    expect(page.locator("#table tbody tr")).to_have_count(36)
    page.emulate_media(media="print")
    assert not page.locator("#controls").is_visible()
    pdf = page.pdf(format="A4", print_background=True)
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 1


def test_report_page_says_when_the_token_is_wrong(settings: Settings, clean_db: AsyncEngine) -> None:
    guarded = settings.model_copy(update={"read_token": "page-read-token"})
    assert guarded.database_url is not None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(create_app(guarded), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(uv.serve()), daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if uv.started:
                break
            threading.Event().wait(0.05)
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/reports?token=wrong")
            page.wait_for_selector("body[data-state=error]")
            assert "403" in page.locator("#error").inner_text()
            page.goto(f"http://127.0.0.1:{port}/reports?token=page-read-token")
            page.wait_for_selector("body[data-state=ready]")
            browser.close()
    finally:
        uv.should_exit = True
        thread.join(timeout=30)


def test_with_a_token_in_the_url_the_csv_link_downloads_the_file(server: str, page: Page) -> None:
    """A link cannot send the bearer token: the page fetches the file with it and hands it over."""
    page.goto(f"{server}/reports?from={YEAR}-01-01&to={YEAR}-12-31&token=read-token")
    page.wait_for_selector("body[data-state=ready]")
    sent: list[str | None] = []
    page.on("request", lambda r: sent.append(r.headers.get("authorization")) if "csv" in r.url else None)
    with page.expect_download() as download:
        page.locator("#csv").click()
    assert sent == ["Bearer read-token"]
    assert download.value.suggested_filename == "queuepulse-report.csv"
    path = download.value.path()
    assert path.read_text().count("\n") == 1 + 12 * 3
