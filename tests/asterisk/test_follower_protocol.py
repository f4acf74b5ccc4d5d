"""The follower's side of the conversation, with the server's answers scripted: retries, backoff, and the
rule that the offset is saved only after the server acknowledged the lines. The end-to-end behaviour
against the real service is in test_follower.py."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.asterisk.follower import (
    BACKOFF_MAX_SECONDS,
    INGEST_PATH,
    Follower,
    FollowerError,
    load_state,
    retry_delay,
)

ENDPOINT = "http://queuepulse.test" + INGEST_PATH
OK = {"lines": 0, "events": 0, "accepted": 0, "duplicates": 0, "ignored": {}, "unknown": {}, "errors": []}


def lines(count: int, start: int = 0) -> bytes:
    return b"".join(
        f"{1_718_000_000 + n}|1718000000.{n}|q|NONE|ENTERQUEUE|||1\n".encode()
        for n in range(start, start + count)
    )


class Script:
    """Answers requests in turn and records what the follower had saved when each one arrived."""

    def __init__(self, state_file: Path, answers: list[Callable[[httpx.Request], httpx.Response]]) -> None:
        self.state_file = state_file
        self.answers = answers
        self.bodies: list[bytes] = []
        self.saved_offsets: list[int | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.content)
        files = load_state(self.state_file).files
        self.saved_offsets.append(files[0].offset if files else None)
        return self.answers.pop(0)(request)


def ok(_request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=OK)


def status(code: int, **headers: str) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _request: httpx.Response(code, headers=headers, text="no")


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def make_follower(
    tmp_path: Path,
    script: Script,
    waits: list[float],
    wait: Callable[[float], bool] | None = None,
    **options: Any,
) -> Follower:
    def record_wait(seconds: float) -> bool:
        waits.append(seconds)
        return False

    return Follower(
        path=tmp_path / "queue_log",
        endpoint=ENDPOINT,
        token="t0ken",
        state_file=script.state_file,
        client=httpx.Client(transport=httpx.MockTransport(script)),
        once=wait is None,
        wait=wait or record_wait,
        **options,
    )


def test_retries_honour_retry_after_and_the_offset_waits_for_the_acknowledgement(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_bytes(lines(3))
    state = tmp_path / "state.json"
    script = Script(state, [status(503, **{"Retry-After": "7"}), refused, status(502), ok])
    waits: list[float] = []

    assert make_follower(tmp_path, script, waits).run() == 0

    # Retry-After first; then the backoff doubles from 0.5 s with each further failure.
    assert waits == [7.0, 1.0, 2.0]
    assert script.bodies == [lines(3)] * 4
    # The file was taken up at offset 0 and stayed there through every failure.
    assert script.saved_offsets == [0, 0, 0, 0]
    assert load_state(state).files[0].offset == log.stat().st_size


def test_a_refused_token_stops_the_follower_without_moving_the_offset(tmp_path: Path) -> None:
    (tmp_path / "queue_log").write_bytes(lines(2))
    state = tmp_path / "state.json"
    script = Script(state, [status(403)])

    with pytest.raises(FollowerError, match="403"):
        make_follower(tmp_path, script, []).run()

    assert load_state(state).files[0].offset == 0


def test_a_batch_too_large_is_halved(tmp_path: Path) -> None:
    (tmp_path / "queue_log").write_bytes(lines(4))
    script = Script(tmp_path / "state.json", [status(413), ok, ok, ok])

    make_follower(tmp_path, script, [], batch_lines=4).run()

    assert script.bodies == [lines(4), lines(2), lines(2, 2)]
    assert len(script.answers) == 1


def test_batches_hold_at_most_the_given_lines_and_only_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_bytes(lines(5) + b"1718000099|1718000000.99|q|NONE|ENTERQ")
    script = Script(tmp_path / "state.json", [ok, ok, ok])

    make_follower(tmp_path, script, [], batch_lines=2).run()

    assert script.bodies == [lines(2), lines(2, 2), lines(1, 4)]
    assert load_state(tmp_path / "state.json").files[0].offset == len(lines(5))


def test_the_state_file_is_replaced_whole(tmp_path: Path) -> None:
    (tmp_path / "queue_log").write_bytes(lines(1))
    state = tmp_path / "state.json"
    make_follower(tmp_path, Script(state, [ok]), []).run()

    saved = json.loads(state.read_text())
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []
    assert saved["version"] == 1
    assert saved["files"][0]["inode"] == (tmp_path / "queue_log").stat().st_ino


def test_a_new_file_reusing_the_old_inode_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_bytes(lines(3))
    state = tmp_path / "state.json"
    make_follower(tmp_path, Script(state, [ok]), []).run()
    # Rewritten in place with other content at least as long: same inode, but not the same file.
    log.write_bytes(lines(4, 100))
    script = Script(state, [ok])

    make_follower(tmp_path, script, []).run()

    assert script.bodies == [lines(4, 100)]


def test_retry_after_and_backoff() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)

    assert retry_delay(httpx.Response(503, headers={"Retry-After": "3"}), 5) == 3.0
    assert 85 <= retry_delay(httpx.Response(503, headers={"Retry-After": later}), 0) <= 90
    assert retry_delay(httpx.Response(503, headers={"Retry-After": "86400"}), 0) == 300.0
    assert retry_delay(httpx.Response(503, headers={"Retry-After": "soon"}), 0) == 0.5
    assert [retry_delay(None, attempt) for attempt in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert retry_delay(None, 40) == BACKOFF_MAX_SECONDS


def test_a_file_truncated_in_place_while_followed_is_read_again_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_bytes(lines(2))
    inode = log.stat().st_ino
    # copytruncate, then Asterisk writes more than there was before the follower looks again.
    idle = [lambda: log.write_bytes(lines(3, 100))]

    def wait(_seconds: float) -> bool:
        if idle:
            idle.pop()()
            return False
        return True

    script = Script(tmp_path / "state.json", [ok, ok])
    make_follower(tmp_path, script, [], wait=wait).run()

    assert log.stat().st_ino == inode
    assert script.bodies == [lines(2), lines(3, 100)]


def test_lines_the_server_finds_conflicting_are_skipped_and_the_rest_sent(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_bytes(lines(3))
    state = tmp_path / "state.json"
    conflict = {
        "detail": "lines reuse an event_id for another payload; nothing of the request was stored",
        "errors": [{"line": 2, "reason": "event_id 'ast-x' was stored before with a different occurred_at"}],
    }
    script = Script(state, [lambda _request: httpx.Response(409, json=conflict), ok])
    follower = make_follower(tmp_path, script, [])

    assert follower.run() == 0

    first, _, third = lines(3).splitlines(keepends=True)
    assert script.bodies == [lines(3), first + b"\n" + third]
    assert follower.conflicting_lines == 1
    assert load_state(state).files[0].offset == log.stat().st_size


def test_a_conflict_naming_no_line_stops_the_follower(tmp_path: Path) -> None:
    (tmp_path / "queue_log").write_bytes(lines(2))
    state = tmp_path / "state.json"
    script = Script(state, [lambda _request: httpx.Response(409, json={"detail": "no lines"})])

    with pytest.raises(FollowerError, match="409"):
        make_follower(tmp_path, script, []).run()

    assert load_state(state).files[0].offset == 0
