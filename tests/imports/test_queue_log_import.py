"""`queuepulse import-queue-log`: rotated archives, gzip or plain, given in any order, come out as the
events the live Asterisk route stores for the same lines, visit numbers and restart clears included."""

from __future__ import annotations

import asyncio
import gzip
import random
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cli import main as cli_main
from app.settings import Settings
from tests.asterisk.logs import CALLER_ID, QueueLog
from tests.asterisk.test_ingest_route import post_log
from tests.running import running_app

QUEUE = "Borgerservice"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rotated(base: int) -> list[QueueLog]:
    """Three archives, oldest first: a caller timed out at the end of the first re-enters the queue in
    the second (visit 2), a caller still waiting at the end of the second is cut off by the restart that
    opens the third."""
    oldest, middle, newest = QueueLog(base), QueueLog(base), QueueLog(base)
    oldest.add(0, "NONE", "NONE", "NONE", "QUEUESTART", "")
    oldest.add(10, f"{base}.1", QUEUE, "NONE", "ENTERQUEUE", "", CALLER_ID, 1)
    oldest.add(30, f"{base}.1", QUEUE, "SIP/anna", "CONNECT", 20, f"{base}.501", 4)
    oldest.add(130, f"{base}.1", QUEUE, "SIP/anna", "COMPLETECALLER", 20, 100, 1)
    oldest.add(200, f"{base}.2", QUEUE, "NONE", "ENTERQUEUE", "", CALLER_ID, 1)
    oldest.add(260, f"{base}.2", QUEUE, "NONE", "EXITWITHTIMEOUT", 1, 1, 60)
    middle.add(261, f"{base}.2", QUEUE, "NONE", "ENTERQUEUE", "", CALLER_ID, 1)
    middle.add(300, f"{base}.2", QUEUE, "SIP/bo", "CONNECT", 39, f"{base}.502", 2)
    middle.add(500, f"{base}.2", QUEUE, "SIP/bo", "COMPLETEAGENT", 39, 200, 1)
    middle.add(600, f"{base}.3", QUEUE, "NONE", "ENTERQUEUE", "", CALLER_ID, 1)
    middle.add(601, "NONE", QUEUE, "SIP/anna", "RINGNOANSWER", 15000)
    newest.add(700, "NONE", "NONE", "NONE", "QUEUESTART", "")
    newest.add(800, f"{base}.4", "Pas og Kørekort", "NONE", "ENTERQUEUE", "", CALLER_ID, 1)
    newest.add(820, f"{base}.4", "Pas og Kørekort", "NONE", "ABANDON", 1, 1, 20)
    return [oldest, middle, newest]


STORED = (
    "SELECT event_id, type, contact_id, queue, occurred_at, agent, wait_seconds, resolved, source, reason "
    "FROM events ORDER BY event_id"
)


async def stored(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return [tuple(row) for row in await conn.execute(text(STORED))]


def write(tmp_path: Path, logs: list[QueueLog]) -> list[Path]:
    """As logrotate leaves them: queue_log.2.gz (oldest), queue_log.1.gz, queue_log."""
    paths = []
    for age, log in zip((2, 1, 0), logs, strict=True):
        if age:
            path = tmp_path / f"queue_log.{age}.gz"
            path.write_bytes(gzip.compress(log.text().encode()))
        else:
            path = tmp_path / "queue_log"
            path.write_text(log.text())
        paths.append(path)
    return paths


async def run_cli(argv: list[str]) -> int:
    return await asyncio.to_thread(cli_main, argv)


@pytest.fixture
def on_test_database(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUEPULSE_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("QUEUEPULSE_DATA_DIR", str(settings.data_dir))


@pytest.mark.usefixtures("on_test_database")
async def test_archives_in_any_order_give_the_events_of_the_live_route(
    settings: Settings, clean_db: AsyncEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = int(time.time()) - 7200
    logs = rotated(base)
    clock = Clock(base)
    async with running_app(settings, clock) as api:
        # As the follower sent them: each file in turn, once its last line was written.
        for log in logs:
            clock.now = base + log.entries[-1][0] + 1
            response = await post_log(api, log.text())
            assert response.status_code == 200, response.text
    live = await stored(clean_db)
    contacts = {row[2] for row in live}
    assert f"{base}.2@borgerservice" in contacts
    assert f"{base}.2@borgerservice#2" in contacts
    assert ("call.cleared", f"{base}.3@borgerservice") in {(row[1], row[2]) for row in live}

    paths = write(tmp_path, logs)
    for order, chunk_lines in (([2, 0, 1], "10000"), ([1, 2, 0], "2")):
        async with clean_db.begin() as conn:
            await conn.execute(text("TRUNCATE events, interval_rollup, queues RESTART IDENTITY"))
        files = [str(paths[index]) for index in order]
        capsys.readouterr()
        assert await run_cli(["import-queue-log", *files, "--chunk-lines", chunk_lines]) == 0
        out = capsys.readouterr()
        assert "reading oldest first: queue_log.2.gz, queue_log.1.gz, queue_log" in out.err
        assert f"{len(live)} events read, {len(live)} stored, 0 already stored, 0 bad lines" in out.out
        assert "RINGNOANSWER 1" in out.out
        assert await stored(clean_db) == live
    async with clean_db.connect() as conn:
        queues = (await conn.execute(text("SELECT queue, admitted_by FROM queues ORDER BY queue"))).all()
    assert [tuple(row) for row in queues] == [("borgerservice", "import"), ("pas-og-koerekort", "import")]

    shuffled = [str(path) for path in paths]
    random.Random(4).shuffle(shuffled)
    assert await run_cli(["import-queue-log", *shuffled]) == 0
    assert f"{len(live)} events read, 0 stored, {len(live)} already stored" in capsys.readouterr().out
    assert await stored(clean_db) == live


@pytest.mark.usefixtures("on_test_database")
async def test_a_bad_queue_log_line_stops_with_its_file_and_line(
    clean_db: AsyncEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = int(time.time()) - 7200
    logs = rotated(base)
    paths = write(tmp_path, logs)
    lines = logs[1].lines
    lines.insert(2, f"{base + 400}|{base}.9|{QUEUE}|SIP/bo|CONNECT|soon|x|1")
    paths[1].write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    capsys.readouterr()
    assert await run_cli(["import-queue-log", *map(str, paths)]) == 1
    err = capsys.readouterr().err
    assert f"{paths[1]}:3: CONNECT: hold time: not a number" in err
    assert (
        f"nothing of lines 1-6 of {paths[1]} (or after) was stored, everything through {paths[0]}:6 was"
        in err
    )
    async with clean_db.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM events"))).scalar_one()
    assert count == 5

    assert await run_cli(["import-queue-log", *map(str, paths), "--skip-bad"]) == 1
    out = capsys.readouterr()
    assert "1 bad lines" in out.out
    assert f"{paths[1]}:3: CONNECT: hold time: not a number" in out.err
