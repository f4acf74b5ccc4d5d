"""`queuepulse import`: JSON lines and CSV into the store, on the real PostgreSQL through the command."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cli import main as cli_main
from app.cli.progress import Progress
from app.core.clock import day_bounds
from app.core.window import Window
from app.db.rollup import day_tallies
from app.settings import Settings, target_book, window_config
from tests.imports.history import write_jsonl
from tests.running import running_app

TZ = ZoneInfo("Europe/Copenhagen")
DAY = datetime(2026, 3, 10, tzinfo=TZ).date()
ROOT = Path(__file__).resolve().parents[2]


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def calls(count: int, start: float, prefix: str = "c", queue: str = "borgerservice") -> list[dict[str, Any]]:
    """`count` calls two minutes apart: offered, answered after 30 s (the source's wait given), ended."""
    events: list[dict[str, Any]] = []
    for n in range(count):
        at = start + n * 120
        base = {"contact_id": f"{prefix}{n}", "queue": queue}
        events.append({**base, "event_id": f"{prefix}{n}-a", "type": "call.offered", "occurred_at": _iso(at)})
        events.append(
            {
                **base,
                "event_id": f"{prefix}{n}-s",
                "type": "call.answered",
                "occurred_at": _iso(at + 30),
                "agent": "anna",
                "wait_seconds": 30.0,
            }
        )
        events.append(
            {
                **base,
                "event_id": f"{prefix}{n}-f",
                "type": "call.ended",
                "occurred_at": _iso(at + 200),
                "resolved": n % 2 == 0,
            }
        )
    return events


def tickets(count: int, start: float) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for n in range(count):
        at = start + n * 300
        base = {"contact_id": f"t{n}", "queue": "pas"}
        number = f"P{n:03d}"
        events.append(
            {
                **base,
                "event_id": f"t{n}-a",
                "type": "ticket.issued",
                "occurred_at": _iso(at),
                "ticket_number": number,
            }
        )
        events.append(
            {
                **base,
                "event_id": f"t{n}-s",
                "type": "ticket.called",
                "occurred_at": _iso(at + 240),
                "desk": "desk3",
                "ticket_number": number,
            }
        )
    return events


def write_csv(path: Path, events: list[dict[str, Any]], fields: list[str]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(fields)
        for event in events:
            writer.writerow(["" if event.get(name) is None else _cell(event[name]) for name in fields])


def _cell(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


CSV_FIELDS = ["event_id", "type", "contact_id", "queue", "occurred_at", "desk", "ticket_number"]


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def importer(
    settings: Settings,
    clean_db: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Any:
    """Run `queuepulse ...` on the test database; returns its exit code and output."""
    monkeypatch.setenv("QUEUEPULSE_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("QUEUEPULSE_DATA_DIR", str(settings.data_dir))

    async def run(*argv: str) -> Run:
        capsys.readouterr()
        # The command runs its own event loop, so it goes to a thread of its own.
        code = await asyncio.to_thread(cli_main, list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


async def scalar(engine: AsyncEngine, query: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(query))).scalar_one()


async def rollup_rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT * FROM interval_rollup ORDER BY channel, queue, interval_start")
        )
        return [tuple(row) for row in result]


async def test_json_lines_and_csv_store_register_queues_and_rebuild_the_days(
    importer: Any, clean_db: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    start = day_bounds(DAY, TZ)[0] + 8 * 3600
    phone = calls(40, start)
    visits = tickets(20, start + 1800)
    write_jsonl(tmp_path / "phone.jsonl", phone)
    write_csv(tmp_path / "lobby.csv", visits, CSV_FIELDS)

    run = await importer(
        "import", str(tmp_path / "phone.jsonl"), str(tmp_path / "lobby.csv"), "--source", "old-pbx"
    )
    assert run.code == 0, run.err
    total = len(phone) + len(visits)
    assert f"{total:,} events read, {total:,} stored, 0 already stored, 0 bad lines" in run.out
    assert f"rollup rebuilt for 1 days ({DAY} to {DAY})" in run.out
    assert await scalar(clean_db, "SELECT count(*) FROM events WHERE ingested_by = 'old-pbx'") == total
    async with clean_db.connect() as conn:
        queues = (
            await conn.execute(text("SELECT channel, queue, admitted_by FROM queues ORDER BY 1, 2"))
        ).all()
        stored = (
            await conn.execute(
                text("SELECT wait_seconds, resolved, agent FROM events WHERE event_id = 'c0-s'")
            )
        ).one()
        ticket = (
            await conn.execute(text("SELECT desk, ticket_number FROM events WHERE event_id = 't3-s'"))
        ).one()
    assert [tuple(row) for row in queues] == [
        ("phone", "borgerservice", "old-pbx"),
        ("visit", "pas", "old-pbx"),
    ]
    assert tuple(stored) == (30.0, None, "anna")
    assert tuple(ticket) == ("desk3", "P003")
    # The rollup holds the day as a rebuild from the stored events makes it: every arrival counted.
    rows = await rollup_rows(clean_db)
    _, items = await day_tallies(
        clean_db, lambda: Window(window_config(settings), target_book(settings)), DAY
    )
    assert len(rows) == len(items) > 0
    async with clean_db.connect() as conn:
        arrived = (
            await conn.execute(
                text("SELECT channel, queue, sum(arrived) FROM interval_rollup GROUP BY 1, 2 ORDER BY 1")
            )
        ).all()
    assert [tuple(row) for row in arrived] == [("phone", "borgerservice", 40), ("visit", "pas", 20)]


async def test_a_second_run_adds_nothing(importer: Any, clean_db: AsyncEngine, tmp_path: Path) -> None:
    events = calls(30, day_bounds(DAY, TZ)[0] + 9 * 3600)
    path = tmp_path / "calls.jsonl.gz"
    with gzip.open(path, "wt") as out:
        out.writelines(json.dumps(event) + "\n" for event in events)
    first = await importer("import", str(path))
    assert first.code == 0, first.err
    rows = await rollup_rows(clean_db)
    second = await importer("import", str(path), "--chunk-lines", "7")
    assert second.code == 0, second.err
    assert f"{len(events)} events read, 0 stored, {len(events)} already stored, 0 bad lines" in second.out
    # Nothing new, so no day to rebuild, and the rollup is as it was.
    assert "rollup rebuilt" not in second.out
    assert await scalar(clean_db, "SELECT count(*) FROM events") == len(events)
    assert await rollup_rows(clean_db) == rows


def _with_bad_line(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    events = calls(4, day_bounds(DAY, TZ)[0] + 10 * 3600)[:10]
    lines = [json.dumps(event) for event in events]
    lines[5] = lines[5].replace('"call.ended"', '"call.finished"')  # line 6: no such type
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, events


async def test_a_bad_line_stops_the_import_and_nothing_of_its_chunk_is_stored(
    importer: Any, clean_db: AsyncEngine, tmp_path: Path
) -> None:
    path, events = _with_bad_line(tmp_path)
    run = await importer("import", str(path), "--chunk-lines", "4")
    assert run.code == 1
    assert f"{path}:6: type: Input should be" in run.err
    assert f"nothing of lines 5-8 of {path} (or after) was stored, everything through {path}:4 was" in run.err
    async with clean_db.connect() as conn:
        stored = (await conn.execute(text("SELECT event_id FROM events ORDER BY id"))).scalars().all()
    assert stored == [event["event_id"] for event in events[:4]]
    # The days the stored chunks bear on are rebuilt all the same.
    assert "rollup rebuilt for 1 days" in run.out

    # Fixed, the same command stores the rest and skips what is stored (lines 4-6 are a chunk of both).
    path.write_text("\n".join(json.dumps(event) for event in events) + "\n")
    again = await importer("import", str(path), "--chunk-lines", "3")
    assert again.code == 0, again.err
    assert "10 events read, 6 stored, 4 already stored, 0 bad lines" in again.out
    assert f"rollup rebuilt for 1 days ({DAY} to {DAY})" in again.out


async def test_skip_bad_imports_the_rest_and_lists_the_bad_lines(
    importer: Any, clean_db: AsyncEngine, tmp_path: Path
) -> None:
    path, events = _with_bad_line(tmp_path)
    with path.open("a") as out:
        out.write("not json at all\n\n")
        out.write(json.dumps({**events[0], "event_id": "late", "occurred_at": "2126-01-01T00:00:00Z"}) + "\n")
    run = await importer("import", str(path), "--chunk-lines", "4", "--skip-bad")
    assert run.code == 1
    assert "9 events read, 9 stored, 0 already stored, 3 bad lines" in run.out
    bad = [line for line in run.err.splitlines() if line.startswith(str(path))]
    assert [line.split(":")[1] for line in bad] == ["6", "11", "13"]
    assert "Invalid JSON" in bad[1]
    assert "occurred_at: is more than 300 seconds in the future" in bad[2]
    assert await scalar(clean_db, "SELECT count(*) FROM events") == 9


async def test_an_event_id_reused_for_another_payload_is_a_conflict_with_its_line(
    importer: Any, clean_db: AsyncEngine, tmp_path: Path
) -> None:
    events = calls(3, day_bounds(DAY, TZ)[0] + 11 * 3600)
    write_jsonl(tmp_path / "first.jsonl", events)
    assert (await importer("import", str(tmp_path / "first.jsonl"))).code == 0

    changed = [dict(event) for event in events]
    changed[2]["queue"] = "pas"  # line 3: c0-f stored with queue borgerservice
    changed.append({**changed[0], "agent": None})  # line 10: c0-a repeated as it was: a duplicate
    changed.append({**changed[1], "agent": "bo"})  # line 11: c0-s again, with another agent
    write_jsonl(tmp_path / "second.jsonl", changed)
    stopped = await importer("import", str(tmp_path / "second.jsonl"))
    assert stopped.code == 1
    second = tmp_path / "second.jsonl"
    assert f"{second}:3: event_id 'c0-f' was stored before with a different queue" in stopped.err
    assert f"{second}:11: event_id 'c0-s' was given earlier on line 2 with a different agent" in stopped.err

    skipped = await importer("import", str(second), "--skip-bad")
    assert skipped.code == 1
    assert "9 events read, 0 stored, 9 already stored, 2 bad lines" in skipped.out
    async with clean_db.connect() as conn:
        queue = (await conn.execute(text("SELECT queue FROM events WHERE event_id = 'c0-f'"))).scalar_one()
    assert queue == "borgerservice"


async def test_csv_reads_numbers_and_flags_and_refuses_a_bad_header(
    importer: Any, clean_db: AsyncEngine, tmp_path: Path
) -> None:
    at = day_bounds(DAY, TZ)[0] + 12 * 3600
    path = tmp_path / "calls.csv"
    rows = [
        ["event_id", "type", "contact_id", "queue", "occurred_at", "agent", "wait_seconds", "resolved"],
        ["x-a", "call.offered", "x", "borgerservice", _iso(at), "", "", ""],
        ["x-s", "call.answered", "x", "borgerservice", _iso(at + 12.5), "anna", "12.5", ""],
        ["x-f", "call.ended", "x", "borgerservice", _iso(at + 100), "anna", "", "true"],
        ["y-f", "call.ended", "y", "borgerservice", _iso(at + 100), "anna", "", "maybe"],
        ["z-a", "call.offered", "z"],
    ]
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    # A quoted cell across two lines: the record after it is still told by its own first line.
    path.write_text(buffer.getvalue().replace("anna,,maybe", '"an\nna",,maybe'))
    run = await importer("import", str(path), "--skip-bad")
    assert run.code == 1
    assert "3 events read, 3 stored" in run.out
    assert f"{path}:5: resolved: Input should be a valid boolean" in run.err
    assert f"{path}:7: 3 cells, the header names 8 fields" in run.err
    async with clean_db.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT wait_seconds, resolved FROM events WHERE event_id IN ('x-s', 'x-f') ORDER BY id")
            )
        ).all()
    assert [tuple(r) for r in row] == [(12.5, None), (None, True)]

    header = tmp_path / "header.csv"
    header.write_text("event_id,type,contact_id,queue,when\n")
    refused = await importer("import", str(header))
    assert refused.code == 2
    assert "unknown field 'when'" in refused.err
    assert "required field 'occurred_at' missing" in refused.err


async def test_todays_events_show_in_the_live_window_after_a_restart(
    importer: Any, clean_db: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    # Calls of today that have ended by now, however early in the local day the test runs: one call
    # takes 200 s, so in the first minutes after midnight the test waits for the first to fit.
    midnight = day_bounds(datetime.now(TZ).date(), TZ)[0]
    if time.time() - midnight < 240:
        await asyncio.sleep(midnight + 240 - time.time())
    now = time.time()
    start = max(now - 3 * 3600, midnight + 1)
    events = calls(min(5, int((now - start - 200) // 120) + 1), start, prefix="today")
    arrivals = sum(1 for event in events if event["type"] == "call.offered")
    assert arrivals >= 1
    write_jsonl(tmp_path / "today.jsonl", events)
    run = await importer("import", str(tmp_path / "today.jsonl"))
    assert run.code == 0, run.err
    assert "today's events are in the store" in run.out
    async with running_app(settings) as api:
        kpis: Any = await api.kpis("today")
        assert kpis["channels"]["phone"]["queues"]["borgerservice"]["arrived"] == arrivals


def test_progress_draws_a_bar_on_a_terminal_and_lines_elsewhere() -> None:
    terminal = io.StringIO()
    bar = Progress(stream=terminal, tty=True, started=time.monotonic() - 10)
    bar.update(50_000, 25, 100, "year.jsonl")
    drawn = terminal.getvalue()
    assert drawn.startswith("\r[#######---------------------]  25.0% 50,000 events")
    assert "/s 0:00:30 left year.jsonl" in drawn
    plain = io.StringIO()
    lines = Progress(stream=plain, tty=False, every=1000)
    for events in (400, 1200, 1300, 3100):
        lines.update(events, events, 4000)
    assert [line.split(" events")[0] for line in plain.getvalue().splitlines()] == ["1,200", "3,100", "3,100"]


def _peak_rss_kb(settings: Settings, path: Path) -> int:
    env = {
        **os.environ,
        "QUEUEPULSE_DATABASE_URL": settings.database_url or "",
        "QUEUEPULSE_DATA_DIR": str(settings.data_dir),
    }
    argv = [sys.executable, "-m", "app.cli", "import", str(path), "--chunk-lines", "2000"]
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, process.stderr.read() if process.stderr else ""
    return usage.ru_maxrss


async def test_memory_stays_flat_as_the_file_grows(
    settings: Settings, clean_db: AsyncEngine, tmp_path: Path
) -> None:
    start = day_bounds(DAY, TZ)[0] - 40 * 86_400
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    write_jsonl(small, calls(4_000, start, prefix="s"))
    write_jsonl(large, calls(40_000, start + 86_400 * 10, prefix="l"))
    small_kb = await asyncio.to_thread(_peak_rss_kb, settings, small)
    large_kb = await asyncio.to_thread(_peak_rss_kb, settings, large)
    # Ten times the events (12,000 against 120,000): the peak stays within a few MB (the days to rebuild
    # and the interpreter's own growth), where holding the file would add about 100 MB.
    assert large_kb - small_kb < 20 * 1024, (small_kb, large_kb)
    assert await scalar(clean_db, "SELECT count(*) FROM events") == 132_000


async def test_a_running_service_picks_up_todays_imported_events(
    importer: Any, clean_db: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    """The import commits plain rows (txid left to its default), which every running instance tails."""
    now = time.time()
    midnight = day_bounds(datetime.now(TZ).date(), TZ)[0]
    start = max(midnight + 60, now - 3 * 3600)
    events = [
        event
        for event in calls(5, start, prefix="tail")
        if datetime.fromisoformat(event["occurred_at"]).timestamp() < now
    ]
    arrivals = sum(1 for event in events if event["type"] == "call.offered")
    write_jsonl(tmp_path / "today.jsonl", events)
    async with running_app(settings) as api:
        run = await importer("import", str(tmp_path / "today.jsonl"))
        assert run.code == 0, run.err
        seen = None
        for _ in range(200):
            kpis: Any = await api.kpis("today")
            seen = kpis["channels"]["phone"]["queues"].get("borgerservice", {}).get("arrived")
            if seen == arrivals:
                break
            await asyncio.sleep(0.05)
        assert seen == arrivals
