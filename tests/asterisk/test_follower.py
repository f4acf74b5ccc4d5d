"""`queuepulse follow-queue-log` as a real process against the real service on a loopback port: lines
appended, the file rotated while it runs and while it is stopped, and every line counted exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import create_app
from app.settings import Settings
from tests.asterisk.logs import QueueLog

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_SECONDS = 60.0
FOLLOWER_TIMEOUT_SECONDS = 120.0
CALL_SPACING_SECONDS = 20


def loopback_socket() -> socket.socket:
    """Bound but not yet listening: connections are refused until the server starts on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serving(settings: Settings, sock: socket.socket) -> AsyncIterator[str]:
    """The whole service under uvicorn in a thread of its own, until the block ends."""
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on", loop="asyncio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = "http://{}:{}".format(*sock.getsockname())
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            deadline = time.monotonic() + READY_TIMEOUT_SECONDS
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                raise TimeoutError("the service never became ready")
        yield url
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 30)
        sock.close()


class Calls:
    """Calls 20 s apart: every third hangs up after 8 s, the others are answered after 5 s and talk 10 s."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.events = 0
        self.arrived = 0
        self.answered = 0
        self.abandoned = 0

    def lines(self, first: int, last: int) -> str:
        log = QueueLog(self.base)
        for n in range(first, last + 1):
            t, uid = n * CALL_SPACING_SECONDS, f"{self.base}.{n}"
            log.add(t, uid, "Borgerservice", "NONE", "ENTERQUEUE", "", f"0045{n:08d}", 1)
            if n % 3 == 0:
                log.add(t + 8, uid, "Borgerservice", "NONE", "ABANDON", 1, 1, 8)
                self.abandoned += 1
                self.events += 2
            else:
                log.add(t + 2, uid, "Borgerservice", "SIP/bo", "RINGNOANSWER", 2000)
                log.add(t + 5, uid, "Borgerservice", "SIP/anna", "CONNECT", 5, f"{self.base}.9{n}", 2)
                log.add(t + 15, uid, "Borgerservice", "SIP/anna", "COMPLETECALLER", 5, 10, 1)
                self.answered += 1
                self.events += 3
            self.arrived += 1
        return log.text()


def append(path: Path, data: str) -> None:
    with path.open("a") as out:
        out.write(data)


def rotate(path: Path) -> None:
    """What logrotate does with `rotate 2` and `create`: shift the old files, rename, start a new one."""
    first, second = path.with_name(path.name + ".1"), path.with_name(path.name + ".2")
    if first.exists():
        first.rename(second)
    path.rename(first)
    path.touch()


class Follower:
    def __init__(self, tmp_path: Path, url: str, log: Path) -> None:
        token = tmp_path / "ingest_token"
        token.write_text("test-ingest-token\n")
        self.state = tmp_path / "follower-state.json"
        self.args = [
            *("-m", "app.cli", "follow-queue-log", str(log)),
            *("--url", url, "--token-file", str(token), "--state-file", str(self.state)),
            *("--poll-seconds", "0.1"),
        ]
        self.env = {**os.environ, "QUEUEPULSE_DATA_DIR": str(tmp_path / "data")}

    async def start(self, *extra: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            *self.args,
            *extra,
            cwd=ROOT,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def once(self) -> str:
        process = await self.start("--once")
        return await finished(process)


async def finished(process: asyncio.subprocess.Process) -> str:
    _, stderr = await asyncio.wait_for(process.communicate(), FOLLOWER_TIMEOUT_SECONDS)
    assert process.returncode == 0, stderr.decode()
    return stderr.decode()


async def until_logged(process: asyncio.subprocess.Process, words: str) -> None:
    assert process.stderr is not None
    seen: list[str] = []
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), FOLLOWER_TIMEOUT_SECONDS)).decode()
        assert line, "".join(seen)
        seen.append(line)
        if words in line:
            return


async def stored(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as connection:
        row = (await connection.execute(text("SELECT count(*), count(DISTINCT event_id) FROM events"))).one()
    return int(row[0]), int(row[1])


async def until_stored(engine: AsyncEngine, count: int) -> None:
    deadline = time.monotonic() + FOLLOWER_TIMEOUT_SECONDS
    while (await stored(engine))[0] < count:
        assert time.monotonic() < deadline, f"{await stored(engine)} events stored, waiting for {count}"
        await asyncio.sleep(0.1)


async def phone_kpis(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/v1/kpis", params={"window": "1h"})
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.slow
async def test_every_line_is_counted_once_across_rotations_and_restarts(
    settings: Settings, clean_db: AsyncEngine, tmp_path: Path
) -> None:
    calls = Calls(int(time.time()) - 1800)
    log = tmp_path / "asterisk" / "queue_log"
    log.parent.mkdir()
    log.write_text(calls.lines(0, 9))
    sock = loopback_socket()
    follower = Follower(tmp_path, "http://{}:{}".format(*sock.getsockname()), log)

    # Started before the service listens: it retries until the service is up, then sends the file.
    first = await follower.start("--once")
    await until_logged(first, "retrying")
    async with serving(settings, sock) as url:
        await finished(first)
        assert await stored(clean_db) == (calls.events, calls.events)

        # Running on: lines appended, the file renamed away and a new one started behind its back.
        running = await follower.start()
        append(log, calls.lines(10, 14))
        rotate(log)
        append(log, calls.lines(15, 19))
        await until_stored(clean_db, calls.events)
        append(log, calls.lines(20, 24))
        await until_stored(clean_db, calls.events)
        running.send_signal(signal.SIGTERM)
        await finished(running)

        # Stopped: more lines, and two rotations' worth of renaming, before it comes back.
        append(log, calls.lines(25, 27))
        rotate(log)
        append(log, calls.lines(28, 29))
        rotate(log)
        append(log, calls.lines(30, 31))
        # Asterisk is halfway through writing a line: it is not sent until it is whole.
        whole = calls.lines(32, 32)
        append(log, whole[:25])
        await follower.once()
        assert await stored(clean_db) == (calls.events - 3, calls.events - 3)
        append(log, whole[25:])
        await follower.once()

        # Every call line exactly once: 33 calls, 11 abandoned (n = 0, 3, ..., 30), 22 answered.
        assert (calls.arrived, calls.abandoned, calls.answered) == (33, 11, 22)
        assert await stored(clean_db) == (calls.events, calls.events)
        assert calls.events == 11 * 2 + 22 * 3
        kpis = await phone_kpis(url)
        total = kpis["channels"]["phone"]["total"]
        assert (total["arrived"], total["started"], total["left"], total["finished"]) == (33, 22, 11, 22)
        assert kpis["data_quality"]["duplicates"] == 0

    # Only the current file is still tracked, read to its end.
    state = json.loads(follower.state.read_text())
    assert [(entry["inode"], entry["offset"]) for entry in state["files"]] == [
        (log.stat().st_ino, log.stat().st_size)
    ]
