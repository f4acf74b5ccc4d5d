"""The edge of the real server (`queuepulse run`: uvicorn with httptools) against clients that are not
allowed to send, send too much, too slowly, or leave midway.

Raw sockets against a server process, so every byte is the test's: a body too large for a client without
a token is its 401, not a rejected event; a client leaving mid-body is a 499, not a server error; an
endless header block is cut off at the header limit without the server's memory growing; a request, or
its body, trickled in too slowly is closed at its deadline.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.metrics.helpers import Samples, parse
from tests.serving import ServerProcess, server_process

pytestmark = pytest.mark.slow

TOKEN = "edge-ingest-token"
MAX_HEADER_BYTES = 8192
HEADER_TIMEOUT_SECONDS = 2.0
BODY_TIMEOUT_SECONDS = 3.0
MAX_BODY_BYTES = 1_048_576
# Four clients each sending this much of a header block that never ends.
ENDLESS_HEADER_BYTES = 16 * 1024 * 1024
# What the server may grow by while refusing them (today's code grew by 63 MB).
RSS_GROWTH_ALLOWED = 5 * 1024 * 1024
CHUNK = 64 * 1024
# How long a test waits for something the server does within a second or two.
PATIENCE_SECONDS = 12.0


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir: Path = tmp_path_factory.mktemp("edge")
    with server_process(
        database_url,
        data_dir,
        QUEUEPULSE_INGEST_TOKEN=TOKEN,
        QUEUEPULSE_MAX_HEADER_BYTES=str(MAX_HEADER_BYTES),
        QUEUEPULSE_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT_SECONDS),
        QUEUEPULSE_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT_SECONDS),
        QUEUEPULSE_MAX_BODY_BYTES=str(MAX_BODY_BYTES),
    ) as running:
        running.wait_ready()
        yield running


def port_of(server: ServerProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


@contextlib.contextmanager
def connection(server: ServerProcess) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=PATIENCE_SECONDS)
    try:
        yield sock
    finally:
        sock.close()


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or resets it)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(CHUNK):
            received += chunk
    return received


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def post_head(content_length: int, token: str | None = None) -> bytes:
    lines = [
        b"POST /v1/events HTTP/1.1",
        b"Host: queuepulse",
        b"Content-Type: application/json",
        b"Content-Length: %d" % content_length,
    ]
    if token is not None:
        lines.append(b"Authorization: Bearer " + token.encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


def scrape(server: ServerProcess) -> Samples:
    response = httpx.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200
    return parse(response.text)


def rejected_events(samples: Samples) -> float:
    return sum(
        count
        for (name, labels), count in samples.items()
        if name == "queuepulse_events_total" and ("result", "rejected") in labels
    )


def ingest_answers(samples: Samples) -> dict[str, float]:
    """How many ingest requests were timed, by the status they were timed under."""
    return {
        dict(labels)["status"]: count
        for (name, labels), count in samples.items()
        if name == "queuepulse_ingest_request_duration_seconds_count"
    }


def wait_for_answers(server: ServerProcess, status: str, at_least: float) -> dict[str, float]:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        answers = ingest_answers(scrape(server))
        if answers.get(status, 0) >= at_least or time.monotonic() > deadline:
            return answers
        time.sleep(0.2)


def closed_by_server(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing, once it closes within `within` seconds; None if it did not."""
    deadline = time.monotonic() + within
    received = b""
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            continue
        try:
            chunk = sock.recv(CHUNK)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    return None


def test_an_oversized_post_without_a_token_gets_its_401_and_counts_as_nothing(server: ServerProcess) -> None:
    before = scrape(server)
    answers = {}
    for token in (None, "not-the-token"):
        with connection(server) as sock:
            sock.sendall(post_head(2 * MAX_BODY_BYTES, token))
            answers[token] = read_answer(sock)
    assert [status_of(answers[token]) for token in (None, "not-the-token")] == [401, 403]
    # Refused before its body was read: the connection is closed rather than the body read and dropped.
    assert all(b"connection: close" in answer.lower() for answer in answers.values())
    after = scrape(server)
    assert rejected_events(after) == rejected_events(before)
    assert not any(status.startswith("5") for status in ingest_answers(after))


def test_an_oversized_post_with_the_token_gets_413_at_once_and_counts_as_rejected(
    server: ServerProcess,
) -> None:
    before = rejected_events(scrape(server))
    with connection(server) as sock:
        # Not a byte of the body is sent: the answer comes from the declared length alone.
        sock.sendall(post_head(2 * MAX_BODY_BYTES, TOKEN))
        answer = read_answer(sock)
    assert status_of(answer) == 413
    assert b"connection: close" in answer.lower()
    assert rejected_events(scrape(server)) == before + 1


def test_a_client_leaving_mid_body_is_timed_as_499_not_as_a_server_error(server: ServerProcess) -> None:
    before = ingest_answers(scrape(server))
    with connection(server) as sock:
        sock.sendall(post_head(1000, TOKEN) + b'[{"event_id": "half')
        time.sleep(0.3)
    answers = wait_for_answers(server, "499", before.get("499", 0) + 1)
    assert answers.get("499", 0) == before.get("499", 0) + 1
    assert not any(status.startswith("5") for status in answers)
    assert "Exception in ASGI application" not in server.log.read_text()


def test_endless_header_blocks_are_cut_off_without_the_server_growing(server: ServerProcess) -> None:
    process = psutil.Process(server.process.pid)
    rss_before = process.memory_info().rss
    pad = b"a" * CHUNK
    with contextlib.ExitStack() as stack:
        sent = []
        for _ in range(4):
            sock = stack.enter_context(connection(server))
            total = 0
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: queuepulse\r\nX-Pad: ")
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
                while total < ENDLESS_HEADER_BYTES:
                    sock.sendall(pad)
                    total += len(pad)
            sent.append(total)
        # Measured with every connection still open on the client's side: what the server holds now.
        grown = process.memory_info().rss - rss_before
    assert all(total < ENDLESS_HEADER_BYTES for total in sent), sent
    assert grown < RSS_GROWTH_ALLOWED, f"the server grew by {grown} bytes"
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


def test_a_header_block_over_the_limit_gets_431(server: ServerProcess) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: queuepulse\r\nX-Pad: " + b"a" * MAX_HEADER_BYTES
    with connection(server) as sock:
        sock.sendall(head)
        assert status_of(read_answer(sock)) == 431


def test_requests_within_the_header_limit_are_served_keep_alive(server: ServerProcess) -> None:
    # Headers just under the limit, a body far larger than it, and a request after them on one
    # connection: the header count covers each request's headers only.
    pad = "a" * (MAX_HEADER_BYTES - 1024)
    big_body = b'{"event_id": "e", "type": "nope"}' + b" " * (MAX_BODY_BYTES // 2)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/healthz", headers={"X-Pad": pad}).status_code == 200
        refused = client.post(
            "/v1/events",
            content=big_body,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", "X-Pad": pad},
        )
        assert refused.status_code == 422
        assert client.get("/healthz").status_code == 200
    with connection(server) as sock:
        # Pipelined in one write: the second request's headers, near the limit themselves, come with
        # the first's, so together they pass it.
        request = b"GET /healthz HTTP/1.1\r\nHost: q\r\n"
        padded = request + b"X-Pad: " + b"a" * (MAX_HEADER_BYTES - 200) + b"\r\n\r\n"
        sock.sendall(request + b"\r\n" + padded + request)
        sock.sendall(b"Connection: close\r\n\r\n")
        assert read_answer(sock).count(b"HTTP/1.1 200 OK") == 3


def test_a_trickled_header_is_closed_at_the_header_timeout(server: ServerProcess) -> None:
    with connection(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: queuepulse\r\nX-Slow: ")
        started = time.monotonic()
        answer = None
        while answer is None and time.monotonic() - started < PATIENCE_SECONDS:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b"a")
            answer = closed_by_server(sock, 1.0)
        elapsed = time.monotonic() - started
    assert answer is not None, "the trickling client was never disconnected"
    assert HEADER_TIMEOUT_SECONDS - 0.5 < elapsed < HEADER_TIMEOUT_SECONDS + 3.0
    assert answer == b"" or status_of(answer) == 408


def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(server: ServerProcess) -> None:
    with connection(server) as sock:
        started = time.monotonic()
        answer = closed_by_server(sock, PATIENCE_SECONDS)
        elapsed = time.monotonic() - started
    assert answer == b""
    assert elapsed < HEADER_TIMEOUT_SECONDS + 3.0


def test_a_trickled_body_is_closed_at_the_body_timeout_and_timed_as_499(server: ServerProcess) -> None:
    before = ingest_answers(scrape(server))
    with connection(server) as sock:
        sock.sendall(post_head(1000, TOKEN))
        started = time.monotonic()
        closed = None
        while closed is None and time.monotonic() - started < PATIENCE_SECONDS:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b" ")
            closed = closed_by_server(sock, 1.0)
        elapsed = time.monotonic() - started
    assert closed is not None, "the trickling body was never cut off"
    assert BODY_TIMEOUT_SECONDS - 0.5 < elapsed < BODY_TIMEOUT_SECONDS + 3.0
    answers = wait_for_answers(server, "499", before.get("499", 0) + 1)
    assert answers.get("499", 0) == before.get("499", 0) + 1
    assert not any(status.startswith("5") for status in answers)
