"""The smaller input rules of issue 12, defect 8: non-finite target numbers, duplicate JSON keys, the
Content-Type of /v1/events, the HTML pages' security headers, and /docs without a CDN."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from playwright.sync_api import ConsoleMessage, Request, sync_playwright
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.schemas import duplicate_key_issues, event_batch
from app.main import create_app
from app.settings import Settings
from tests.browser.chromium import launch
from tests.running import ADMIN_HEADERS, INGEST_HEADERS, RunningApp

TARGET = "/v1/targets/phone/borgerservice"
PAGES = ["/screens/wallboard", "/screens/lobby", "/reports", "/staffing", "/docs"]
JSON = {"Content-Type": "application/json"}


def stamp(seconds_ago: float = 60.0) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


def event_json(event_id: str, **extra: str) -> str:
    fields = {
        "event_id": event_id,
        "type": "call.offered",
        "contact_id": event_id,
        "queue": "borgerservice",
        "occurred_at": stamp(),
    } | extra
    return "{" + ", ".join(f'"{key}": "{value}"' for key, value in fields.items()) + "}"


async def stored_ids(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return list((await connection.execute(text("SELECT event_id FROM events ORDER BY id"))).scalars())


async def put_raw(api: RunningApp, body: str) -> httpx.Response:
    headers = {**ADMIN_HEADERS, "Content-Type": "application/json"}
    return await api.client.put(TARGET, content=body, headers=headers)


async def post_raw(api: RunningApp, body: str | bytes, content_type: str | None) -> httpx.Response:
    headers = dict(INGEST_HEADERS)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await api.client.post("/v1/events", content=body, headers=headers)


async def borgerservice_target(api: RunningApp) -> list[dict[str, Any]]:
    targets = (await api.client.get("/v1/targets")).json()["targets"]
    return [target for target in targets if target["queue"] == "borgerservice"]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e309", "-1e309"])
@pytest.mark.parametrize("field", ["threshold_seconds", "goal_pct"])
async def test_a_target_that_is_no_finite_number_is_refused_naming_the_field(
    api: RunningApp, field: str, number: str
) -> None:
    values = {"threshold_seconds": "30", "goal_pct": "80"} | {field: number}
    body = "{" + ", ".join(f'"{key}": {value}' for key, value in values.items()) + "}"
    response = await put_raw(api, body)
    assert response.status_code == 422, response.text
    (issue,) = response.json()["detail"]
    assert issue["loc"] == ["body", field]
    assert issue["msg"] == "must be a finite number"
    assert await borgerservice_target(api) == []


async def test_a_target_nested_non_finite_number_is_refused_too(api: RunningApp) -> None:
    response = await put_raw(api, '{"threshold_seconds": [NaN], "goal_pct": 80}')
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "threshold_seconds", 0]
    huge_integer = "1" + "0" * 400
    response = await put_raw(api, f'{{"threshold_seconds": {huge_integer}, "goal_pct": 80}}')
    assert response.status_code == 422, response.text


async def test_a_target_key_given_twice_is_refused_naming_it(api: RunningApp) -> None:
    response = await put_raw(api, '{"threshold_seconds": 300, "goal_pct": 80, "threshold_seconds": 20}')
    assert response.status_code == 422, response.text
    (issue,) = response.json()["detail"]
    assert issue["loc"] == ["body", "threshold_seconds"]
    assert "more than once" in issue["msg"]
    assert await borgerservice_target(api) == []
    accepted = await put_raw(api, '{"threshold_seconds": 20, "goal_pct": 80}')
    assert accepted.status_code == 200, accepted.text


async def test_an_event_key_given_twice_is_refused_naming_it(api: RunningApp, engine: AsyncEngine) -> None:
    # The queue given first would be overwritten by the second, silently, by any last-wins parser.
    single = event_json("twice").replace(
        '"queue": "borgerservice"', '"queue": "other", "queue": "borgerservice"'
    )
    response = await post_raw(api, single, "application/json")
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {"index": None, "field": "queue", "message": "given more than once in one object"}
    ]
    spaced = event_json("spaced").replace(
        '"type": "call.offered"', '"type" : "call.offered" ,\n"type":"call.offered"'
    )
    batch = f"[{event_json('fine-1')}, {event_json('fine-2')}, {spaced}]"
    response = await post_raw(api, batch, "application/json")
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {"index": 2, "field": "type", "message": "given more than once in one object"}
    ]
    assert await stored_ids(engine) == []


async def test_keys_given_once_pass_however_the_body_is_written(api: RunningApp, engine: AsyncEngine) -> None:
    # Nulls and a colon inside a text make the cheap count inexact: the exact parse must then pass them.
    nulls = event_json("nulls").replace("}", ', "agent": null, "source": null}')
    colon = event_json("colon", source='pbx \\":1')
    spaced = event_json("spaced").replace('": "', '" :  "')
    response = await post_raw(api, f"[{nulls}, {colon}, {spaced}]", "application/json")
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 3, "duplicates": 0}
    assert await stored_ids(engine) == ["nulls", "colon", "spaced"]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/json", ""],
)
async def test_events_with_another_content_type_get_415(
    api: RunningApp, engine: AsyncEngine, content_type: str
) -> None:
    response = await post_raw(api, event_json("typed"), content_type)
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["detail"]
    assert await stored_ids(engine) == []


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/ld+json",
        None,
    ],
)
async def test_events_as_json_or_without_a_content_type_are_taken(
    api: RunningApp, engine: AsyncEngine, content_type: str | None
) -> None:
    response = await post_raw(api, event_json("typed"), content_type)
    assert response.status_code == 200, response.text
    assert await stored_ids(engine) == ["typed"]


async def test_a_wrong_content_type_without_a_token_is_still_401(api: RunningApp) -> None:
    response = await api.client.post(
        "/v1/events", content=event_json("x"), headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize("path", PAGES)
async def test_html_pages_carry_the_security_headers(api: RunningApp, path: str) -> None:
    response = await api.client.get(path, params={"token": "a-read-token"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = [part.strip() for part in response.headers["content-security-policy"].split(";")]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy
    assert not any("unsafe" in part or "http" in part for part in policy)
    assert response.headers["x-content-type-options"] == "nosniff"
    # The read token is in the page's URL: no request the page makes may carry that URL on.
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_docs_need_nothing_from_outside_the_service(api: RunningApp) -> None:
    page = (await api.client.get("/docs")).text
    assert "<script>" not in page  # the policy runs no inline script
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(urls) >= 3
    for url in urls:
        assert url.startswith("/"), url
        asset = await api.client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["x-content-type-options"] == "nosniff"
    bundle = await api.client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in bundle.text
    init = (await api.client.get("/docs/assets/docs.js")).text
    assert '"/openapi.json"' in init
    assert "validatorUrl: null" in init
    assert (await api.client.get("/openapi.json")).status_code == 200
    # FastAPI's CDN-loaded pages are gone, not left beside the local one.
    assert (await api.client.get("/redoc")).status_code == 404
    assert (await api.client.get("/docs/oauth2-redirect")).status_code == 404
    assert (await api.client.get("/docs/assets/..%2Fdocs.js")).status_code == 404


OPTIONAL_VALUES: dict[str, Any] = {
    "agent": 'Søren "S" Ærø',
    "source": "pbx:1",
    "reason": "ABANDON",
    "wait_seconds": 12.5,
    "resolved": True,
}
# The optional fields each type allows (app/api/schemas.py _to_event).
OPTIONAL_BY_TYPE = {
    "call.offered": ["agent", "source"],
    "call.abandoned": ["agent", "source", "wait_seconds", "reason"],
    "call.ended": ["agent", "source", "resolved"],
}


@st.composite
def event_pairs(draw: st.DrawFn) -> list[tuple[str, Any]]:
    event_type = draw(st.sampled_from(sorted(OPTIONAL_BY_TYPE)))
    allowed = OPTIONAL_BY_TYPE[event_type]
    given_fields = draw(st.lists(st.sampled_from(allowed), unique=True))
    nulls = draw(st.lists(st.sampled_from(["agent", "desk", "source"]), unique=True, max_size=2))
    return [
        ("event_id", "e-1"),
        ("type", event_type),
        ("contact_id", "c:1"),
        ("queue", "borgerservice"),
        ("occurred_at", stamp()),
        *[(name, OPTIONAL_VALUES[name]) for name in given_fields],
        *[(name, None) for name in nulls if name not in given_fields],
    ]


@given(
    pairs=event_pairs(),
    repeat=st.one_of(st.none(), st.integers(min_value=0, max_value=30)),
    separators=st.sampled_from([(",", ":"), (", ", ": "), (" , ", " : "), (",\n", "\t:\r")]),
    ascii_only=st.booleans(),
    count=st.integers(min_value=1, max_value=3),
)
@settings(max_examples=300, deadline=None)
def test_duplicate_keys_are_found_exactly_however_the_json_is_written(
    pairs: list[tuple[str, Any]],
    repeat: int | None,
    separators: tuple[str, str],
    ascii_only: bool,
    count: int,
) -> None:
    """The cheap check never misses a repeated key and never invents one, for any spacing or escaping."""
    if repeat is not None:
        pairs = [*pairs, pairs[repeat % len(pairs)]]
    item_separator, key_separator = separators

    def encode(value: Any) -> str:
        return json.dumps(value, ensure_ascii=ascii_only)

    obj = "{" + item_separator.join(f"{encode(k)}{key_separator}{encode(v)}" for k, v in pairs) + "}"
    body = ("[" + item_separator.join([obj] * count) + "]").encode()
    events = event_batch.validate_json(body)
    issues = duplicate_key_issues(body, events, True)
    if repeat is None:
        assert issues == []
    else:
        assert [(issue.index, issue.field) for issue in issues] == [
            (index, pairs[-1][0]) for index in range(count)
        ]


def test_a_plain_batch_is_not_parsed_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact second parse costs as much as the validation itself; what programs send skips it."""
    import app.api.schemas as schemas

    def reparse(body: bytes) -> list[schemas.JsonProblem]:
        raise AssertionError("parsed a second time")

    monkeypatch.setattr(schemas, "strict_json_problems", reparse)
    body = json.dumps([json.loads(event_json(f"e-{n}")) | {"agent": "Søren"} for n in range(50)]).encode()
    assert b"\\u00f8" in body  # ensure_ascii's escapes alone do not force the second parse
    assert duplicate_key_issues(body, event_batch.validate_json(body), True) == []


READ_TOKEN = "page-read-token"
# What each page shows once it has run its scripts and fetched its data.
PAGE_READY = {
    "/screens/wallboard": "section.tile",
    "/screens/lobby": "body[data-connection=live]",
    "/reports": "body[data-state=ready]",
    "/docs": "#swagger-ui .opblock",
}


@pytest.fixture
def live_url(settings: Settings, clean_db: AsyncEngine) -> Iterator[str]:
    """The whole app under uvicorn on a free local port, in a thread of its own, with a read token."""
    app = create_app(settings.model_copy(update={"read_token": READ_TOKEN}))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if server.started and httpx.get(f"{url}/readyz").status_code == 200:
                break
            threading.Event().wait(0.05)
        else:
            raise TimeoutError("the app did not become ready")
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.mark.browser
def test_the_pages_work_in_a_browser_under_their_policy_and_send_no_referer(live_url: str) -> None:
    posted = httpx.post(
        f"{live_url}/v1/events", content=f"[{event_json('shown')}]", headers={**INGEST_HEADERS, **JSON}
    )
    assert posted.status_code == 200, posted.text
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            for path, ready in PAGE_READY.items():
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                violations: list[str] = []
                referers: list[str] = []
                outside: list[str] = []

                def console(message: ConsoleMessage, found: list[str] = violations) -> None:
                    if "Content Security Policy" in message.text:
                        found.append(message.text)

                page.on("console", console)

                def record(
                    request: Request, referers: list[str] = referers, outside: list[str] = outside
                ) -> None:
                    if not request.url.startswith(live_url):
                        outside.append(request.url)
                    referer = request.headers.get("referer")
                    if referer:  # Playwright lists an absent Referer as ""
                        referers.append(f"{request.url} <- {referer}")

                page.on("request", record)
                page.goto(f"{live_url}{path}?token={READ_TOKEN}")
                page.locator(ready).first.wait_for(timeout=20_000)
                page.wait_for_timeout(500)
                assert violations == [], (path, violations)
                assert outside == [], (path, outside)
                # The token is in the page's URL: no request may carry it on in a Referer.
                assert referers == [], (path, referers)
                page.context.close()
        finally:
            browser.close()
