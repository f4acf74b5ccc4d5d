"""The service as a real process: `queuepulse run` (uvicorn) on a free port, for tests that need one."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
READY_POLLS = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def wait_ready(self) -> None:
        for _ in range(READY_POLLS):
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited during start-up:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz").status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError("server never became ready")


@contextlib.contextmanager
def server_process(database_url: str, data_dir: Path, **env: str) -> Iterator[ServerProcess]:
    """Start the server on database_url and stop it (killed if still running) on exit."""
    port = free_port()
    environment = {
        **os.environ,
        "QUEUEPULSE_DATABASE_URL": database_url,
        "QUEUEPULSE_DATA_DIR": str(data_dir),
        **env,
    }
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "run", "--port", str(port)],
            cwd=REPO,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
