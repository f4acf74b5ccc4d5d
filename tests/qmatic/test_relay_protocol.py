"""The relay in-process, with Orchestra and the service scripted: what it answers Orchestra, what it sends
on, and that it keeps receiving whatever the service says. End to end with the real service and a fake
Orchestra: test_relay.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.qmatic.relay import INGEST_PATH, Relay, Spool
from tests.qmatic.bodies import Lobby
from tests.serving import free_port

SERVICE = "http://queuepulse.test"
HOOKS = "http://orchestra.test/qpevents/hooks"


class Script:
    """Orchestra's registry and the service's answers to the relay, in turn."""

    def __init__(self, answers: list[Callable[[httpx.Request], httpx.Response]]) -> None:
        self.answers = answers
        self.registered: list[str] = []
        self.bodies: list[Any] = []
        self.answered: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            if request.url.path == "/qpevents/hooks/register":
                self.registered.append(request.url.params["url"])
                return httpx.Response(204)
            assert request.url.path == INGEST_PATH
            assert request.headers["Authorization"] == "Bearer t0ken"
            self.bodies.append(json.loads(request.content))
            answer = (self.answers.pop(0) if len(self.answers) > 1 else self.answers[0])(request)
            self.answered.append(answer.status_code)
            return answer


def ok(request: httpx.Request) -> httpx.Response:
    items = json.loads(request.content)
    return httpx.Response(
        200,
        json={
            "received": len(items),
            "events": 0,
            "accepted": 0,
            "duplicates": 0,
            "ignored": {},
            "errors": [],
        },
    )


def until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.fixture
def relay(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Relay, Script, str]]:
    script = Script(request.param)
    port = free_port()
    running = Relay(
        spool=Spool(tmp_path / "spool"),
        endpoint=SERVICE + INGEST_PATH,
        token="t0ken",
        hooks_url=HOOKS,
        public_url=f"http://127.0.0.1:{port}/",
        listen=("127.0.0.1", port),
        client=httpx.Client(transport=httpx.MockTransport(script)),
        register_seconds=0.05,
        status_seconds=0.2,
        backoff_max=0.05,
    )
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    until(lambda: bool(script.registered))
    try:
        yield running, script, url
    finally:
        running.stopping.set()
        thread.join(30)


def conflict_on_calls(request: httpx.Request) -> httpx.Response:
    """409 naming each VISIT_CALL item (as if its event id were stored with another payload), else 200."""
    items = json.loads(request.content)
    calls = [
        index for index, item in enumerate(items) if item is not None and item["eventName"] == "VISIT_CALL"
    ]
    if not calls:
        return ok(request)
    errors = [{"index": index, "reason": "stored before with a different queue"} for index in calls]
    return httpx.Response(409, json={"detail": "items reuse an event_id", "errors": errors})


@pytest.mark.parametrize("relay", [[conflict_on_calls]], indirect=True)
def test_events_are_spooled_answered_and_forwarded_in_order(relay: tuple[Relay, Script, str]) -> None:
    running, script, url = relay
    lobby = Lobby()
    bodies = lobby.visit(1, 0)
    for body in bodies:
        answer = httpx.post(url + "/", content=json.dumps(body), headers={"Content-Type": "application/json"})
        assert answer.status_code == 204
    until(lambda: running.spool.backlog()[0] == 0 and running.spool.forwarded == 3)

    # In order, in one batch or several; the call the 409 named is left out as null, the rest sent again.
    acknowledged = [
        body for body, answered in zip(script.bodies, script.answered, strict=True) if answered == 200
    ]
    sent = [item for body in acknowledged for item in body]
    assert [item for item in sent if item is not None] == [bodies[0], bodies[2]]
    assert sent.count(None) == 1
    assert script.registered[0] == url + "/"
    status = httpx.get(url + "/status").json()
    assert (status["backlog"], status["received"], status["forwarded"], status["registered"]) == (
        0,
        3,
        3,
        True,
    )
    assert "queuepulse_relay_backlog_events 0" in httpx.get(url + "/metrics").text


@pytest.mark.parametrize("relay", [[ok]], indirect=True)
def test_what_is_no_event_is_refused_with_an_answer(relay: tuple[Relay, Script, str]) -> None:
    running, _script, url = relay
    assert httpx.post(url + "/", content=b"{not json").status_code == 400
    assert httpx.post(url + "/", content=b"x" * (300 * 1024)).status_code == 413
    assert running.spool.received == 0


@pytest.mark.parametrize("relay", [[lambda _request: httpx.Response(403, text="wrong token")]], indirect=True)
def test_a_refused_token_never_stops_the_receiving(relay: tuple[Relay, Script, str]) -> None:
    running, script, url = relay
    lobby = Lobby()
    for n in range(3):
        assert httpx.post(url + "/", json=lobby.create(n, n)).status_code == 204
    until(lambda: len(script.bodies) >= 2)

    status = httpx.get(url + "/status").json()
    assert status["backlog"] == 3
    assert "403" in status["forward_problem"]
    assert running.spool.forwarded == 0
