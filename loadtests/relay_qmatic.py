"""How fast `queuepulse relay-qmatic` takes Orchestra's events in: each one fsynced before its 204.

    .venv/bin/python -m loadtests.relay_qmatic [--visits 700]

The relay runs as its own process with nothing behind it (no Orchestra to register with, no service to
forward to: both are retried in the background), and the events of `--visits` visits (three each, shaped
as Orchestra posts them) are POSTed one at a time, as one Orchestra event thread would. The figure is the
receive rate: what the spool's fsync allows on this disk. Orchestra posts concurrently, but the spool
appends under one lock, so concurrent posts do not go faster.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.qmatic.bodies import Lobby
from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visits", type=int, default=700)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="qp-relay-bench-"))
    (directory / "token").write_text("bench\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    relay = subprocess.Popen(
        [
            *(sys.executable, "-m", "app.cli", "relay-qmatic"),
            *("--orchestra", f"http://127.0.0.1:{free_port()}/qpevents/hooks", "--public-url", url),
            *("--listen", f"127.0.0.1:{port}", "--url", f"http://127.0.0.1:{free_port()}"),
            *("--token-file", str(directory / "token"), "--spool-dir", str(directory / "spool")),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                httpx.get(url + "healthz")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        lobby = Lobby()
        bodies = [json.dumps(body).encode() for n in range(args.visits) for body in lobby.visit(n, n)]
        with httpx.Client() as client:
            started = time.perf_counter()
            for body in bodies:
                answer = client.post(url, content=body, headers={"Content-Type": "application/json"})
                assert answer.status_code == 204, answer.text
            elapsed = time.perf_counter() - started
        backlog = httpx.get(url + "status").json()["backlog"]
    finally:
        relay.terminate()
        relay.wait()
    print(
        f"{len(bodies)} events, one at a time: {elapsed:.2f} s, {len(bodies) / elapsed:.0f} events/s, "
        f"{1000 * elapsed / len(bodies):.2f} ms each; spooled {backlog}"
    )


if __name__ == "__main__":
    main()
