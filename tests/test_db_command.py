"""`queuepulse db status | stop` on a real embedded PostgreSQL started in a temporary data directory."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from app.cli import main
from app.db.embedded import start_embedded, stop_embedded


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Short and under /tmp: the server's unix socket lives below it.
    root = Path(tempfile.mkdtemp(prefix="qp-db-", dir="/tmp"))
    monkeypatch.setenv("QUEUEPULSE_DATA_DIR", str(root))
    monkeypatch.delenv("QUEUEPULSE_DATABASE_URL", raising=False)
    try:
        yield root
    finally:
        stop_embedded(root)
        shutil.rmtree(root, ignore_errors=True)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["db", *argv])
    return code, capsys.readouterr().out


def test_without_an_embedded_server_both_say_so_and_succeed(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pgdata = data_dir.resolve() / "pg"
    assert run(capsys, "status") == (0, f"no embedded PostgreSQL in {pgdata}\n")
    assert run(capsys, "stop") == (0, f"no embedded PostgreSQL in {pgdata}\n")
    assert not pgdata.exists()


def test_status_shows_the_running_server_and_stop_stops_it(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start_embedded(data_dir)
    pgdata = data_dir.resolve() / "pg"
    pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    assert psutil.pid_exists(pid)

    assert run(capsys, "status") == (0, f"embedded PostgreSQL in {pgdata}: running, pid {pid}\n")

    assert run(capsys, "stop") == (0, f"stopped the embedded PostgreSQL in {pgdata} (pid {pid})\n")
    assert not (pgdata / "postmaster.pid").exists()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    assert run(capsys, "status") == (0, f"embedded PostgreSQL in {pgdata}: not running\n")
    assert run(capsys, "stop") == (0, f"embedded PostgreSQL in {pgdata}: not running, nothing to stop\n")
    # The data stays: the next start uses it again.
    assert (pgdata / "PG_VERSION").exists()
