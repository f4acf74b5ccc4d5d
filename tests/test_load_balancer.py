"""HAProxy (deploy/haproxy/haproxy.cfg, Debian's package) in front of three instances on one database:
wall-screen polls and ingest go through it while one instance is SIGKILLed mid-load; every acknowledged
event is stored once and counted once by every instance, and the screens never stop getting answers."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loadtests.chaos import (
    SETTLE_SECONDS,
    Postgres,
    Server,
    Tally,
    client_loop,
    free_port,
    live_counts,
    stored_counts,
    window_mismatches,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
HAPROXY_PATH = Path("/usr/sbin/haproxy")
HAPROXY = shutil.which("haproxy") or str(HAPROXY_PATH)
LOAD_SECONDS = 8.0
POLL_SECONDS = 0.1


def haproxy_config(port: int, backends: list[int]) -> str:
    """The shipped configuration with its listening port and server lines set to this test's."""
    text = CONFIG.read_text()
    text = re.sub(r"bind 127\.0\.0\.1:\d+", f"bind 127.0.0.1:{port}", text)
    servers = "".join(f"    server qp{i} 127.0.0.1:{p} check\n" for i, p in enumerate(backends, start=1))
    text = re.sub(r"(    server qp\d+ .*\n)+", servers, text)
    assert text.count("server qp") == len(backends)
    return text


@pytest.fixture
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="qp-lb-", dir="/tmp"))
    try:
        yield root
    finally:
        Postgres(root).stop()
        shutil.rmtree(root, ignore_errors=True)


async def screen_polls(url: str, until: float, answers: dict[str, int]) -> None:
    """A wall screen polling the KPIs through the balancer."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        while time.monotonic() < until:
            try:
                status = str((await client.get(f"{url}/v1/kpis", params={"window": "15m"})).status_code)
            except httpx.HTTPError as error:
                status = type(error).__name__
            answers[status] = answers.get(status, 0) + 1
            await asyncio.sleep(POLL_SECONDS)


@pytest.mark.slow
async def test_haproxy_keeps_ingest_and_screens_going_when_an_instance_dies(workdir: Path) -> None:
    if shutil.which("haproxy") is None and not HAPROXY_PATH.exists():  # noqa: ASYNC240
        pytest.fail("haproxy is not installed: `make test` installs it (make lb-tools)")
    servers = [Server(workdir, free_port(), workdir / f"instance-{i}.log") for i in range(3)]
    balancer_port = free_port()
    config = workdir / "haproxy.cfg"
    config.write_text(haproxy_config(balancer_port, [server.port for server in servers]))
    balancer: subprocess.Popen[bytes] | None = None
    try:
        for server in servers:
            server.start()
            await server.wait_ready()
        with (workdir / "haproxy.log").open("wb") as log:
            balancer = subprocess.Popen(  # noqa: ASYNC220 (started once; it runs beside the test)
                [HAPROXY, "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        url = f"http://127.0.0.1:{balancer_port}"
        async with httpx.AsyncClient(timeout=5.0) as client:
            for _ in range(100):
                try:
                    if (await client.get(f"{url}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)

        run = f"lb-{int(time.time())}"
        tally = Tally()
        answers: dict[str, int] = {}
        started = time.monotonic()
        load_until = started + LOAD_SECONDS
        deadline = load_until + SETTLE_SECONDS
        workers = [
            asyncio.create_task(client_loop(url, w, run, 10, load_until, deadline, tally)) for w in range(4)
        ]
        screens = asyncio.create_task(screen_polls(url, load_until, answers))
        await asyncio.sleep(LOAD_SECONDS / 2)
        # SIGKILL mid-load; it stays down until the load is over.
        await asyncio.to_thread(servers[1].kill)
        await asyncio.gather(*workers, screens)
        servers[1].start()
        for server in servers:
            await server.wait_ready()

        stored_ids, stored_rows, stored = await stored_counts(Postgres(workdir).dsn())
        ours = {event_id for event_id in stored_ids if event_id.startswith(run)}
        assert tally.acknowledged, tally
        assert tally.unacknowledged == 0
        assert tally.acknowledged <= stored_ids, "acknowledged events lost"
        assert stored_rows == len(stored_ids)
        assert ours == tally.acknowledged, "an event was stored that no client had its 2xx for"
        # A batch committed by the instance killed before its answer went out is answered on retry as
        # duplicates: every event is credited once, as accepted or as a duplicate, never twice.
        assert tally.accepted <= len(ours), "an event was credited as accepted twice"
        assert tally.accepted + tally.duplicates == len(ours), tally
        # Screens kept getting answers through the balancer while an instance was dead.
        assert set(answers) == {"200"}, answers
        for server in servers:
            for _ in range(100):
                if await live_counts(server) == {
                    key: stored.get(key, 0) for key in await live_counts(server)
                }:
                    break
                await asyncio.sleep(0.1)
            live = await live_counts(server)
            assert live == {key: stored.get(key, 0) for key in live}, server.url
        for other in servers[1:]:
            assert await window_mismatches(servers[0], other) == []
    finally:
        if balancer is not None:
            balancer.terminate()
            balancer.wait(timeout=10)
        for server in servers:
            server.stop()
