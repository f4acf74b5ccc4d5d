"""\\r\\n, \\n and a lone \\r each end a queue_log line, in the route and in the follower, whose acknowledged
offset stays exact whatever ends the lines."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from app.asterisk.follower import Follower, load_state
from tests.asterisk.logs import QueueLog
from tests.asterisk.test_follower_protocol import ENDPOINT, Script, ok
from tests.asterisk.test_ingest_route import post_log
from tests.running import RunningApp


def calls(base: int) -> list[str]:
    log = QueueLog(base)
    log.add(0, f"{base}.1", "Borgerservice", "NONE", "ENTERQUEUE", "", "004511111111", 1)
    log.add(5, f"{base}.2", "Borgerservice", "NONE", "ENTERQUEUE", "", "004522222222", 2)
    log.add(20, f"{base}.1", "Borgerservice", "SIP/anna", "CONNECT", 20, f"{base}.9", 3)
    log.add(30, f"{base}.2", "Borgerservice", "NONE", "ABANDON", 1, 2, 25)
    return log.lines


async def test_the_route_ends_a_line_at_a_lone_cr(api: RunningApp) -> None:
    first, second, third, fourth = calls(int(time.time()) - 100)
    # A lone \r between the first two lines, \r\n after the second, \n after the third, none after the last;
    # line 4 is blank (\r\r), so the bad one after it is line 5.
    body = f"{first}\r{second}\r\n{third}\r\rnot a queue_log line\n{fourth}".encode()

    response = await post_log(api, body)

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["lines"], result["events"], result["accepted"]) == (5, 4, 4)
    assert [issue["line"] for issue in result["errors"]] == [5]
    queue: Any = (await api.kpis("15m"))["channels"]["phone"]["queues"]["borgerservice"]  # type: ignore[index]
    assert (queue["arrived"], queue["started"], queue["left"]) == (2, 1, 1)
    assert queue["avg_wait_seconds"] == 20.0


def follower(tmp_path: Path, script: Script) -> Follower:
    return Follower(
        path=tmp_path / "queue_log",
        endpoint=ENDPOINT,
        token="t0ken",
        state_file=script.state_file,
        client=httpx.Client(transport=httpx.MockTransport(script)),
        once=True,
    )


def test_the_follower_ends_a_line_at_a_lone_cr_and_keeps_an_exact_offset(tmp_path: Path) -> None:
    first, second, third, fourth = calls(1_718_000_000)
    log = tmp_path / "queue_log"
    log.write_bytes(f"{first}\r{second}\r\n{third}\n{fourth}\r".encode())
    script = Script(tmp_path / "state.json", [ok, ok])

    assert follower(tmp_path, script).run() == 0

    # The last line's \r may be the first half of a \r\n still being written: it waits for what follows.
    assert script.bodies == [f"{first}\n{second}\n{third}\n".encode()]
    offset = load_state(script.state_file).files[0].offset
    assert offset == len(f"{first}\r{second}\r\n{third}\n".encode())

    with log.open("ab") as out:
        out.write(b"\n" + f"{first}\r".encode() + b"\n")
    assert follower(tmp_path, script).run() == 0

    # The \n completed the fourth line's \r\n: sent once, then the next line, nothing merged or doubled.
    assert script.bodies[1:] == [f"{fourth}\n{first}\n".encode()]
    assert load_state(script.state_file).files[0].offset == log.stat().st_size
