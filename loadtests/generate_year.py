"""Load a year of generated call and ticket events into a database, then build the interval rollup.

    .venv/bin/python loadtests/generate_year.py --database-url postgresql://postgres@127.0.0.1:5432/qp_year \
        [--events 5000000] [--year 2025] [--seed 8]

The database is created (if missing) and migrated. Events go in with COPY, day by day in time order, so
their ids follow time as they would in a live feed; the rollup is then built by the same path as
`queuepulse rebuild-rollups` (each local day replayed through a fresh window), so its numbers are by
construction the live window's.

The profile is a large Danish citizen-service centre: phone (four queues) open weekdays 8-15, Thursday
until 17; the lobby (three queues) 9-15, Thursday until 17:30; a morning peak; Mondays busiest, Fridays
quiet; July quiet, January and August busy; waits grow with the load, so some months miss their goal.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.core.events import Event
from app.db.embedded import asyncpg_dsn, create_database_if_missing, normalise_url
from app.db.migrate import run_migrations
from app.db.rows import COPY_COLUMNS, copy_record

TZ = ZoneInfo("Europe/Copenhagen")
PHONE_QUEUES = {"borgerservice": 0.5, "pas-koerekort": 0.2, "skat": 0.15, "pension": 0.15}
VISIT_QUEUES = {"pas": 0.5, "koerekort": 0.3, "sundhedskort": 0.2}
# Some queues are harder to staff (specialists), so queues differ from the channel total.
QUEUE_DIFFICULTY = {"skat": 1.5, "pension": 0.8, "koerekort": 1.3, "sundhedskort": 0.7}
WEEKDAY_WEIGHT = (1.3, 1.1, 1.0, 1.15, 0.8, 0.0, 0.0)
MONTH_WEIGHT = (1.2, 1.05, 1.0, 1.0, 0.95, 0.95, 0.6, 1.2, 1.05, 1.0, 1.0, 0.9)
# Share of contacts by channel, and events per contact on average (3 if served, 2 if abandoned).
PHONE_SHARE = 0.7
EVENTS_PER_CONTACT = 2.97
# Sources deliver within a fraction of a second.
DELIVERY_SECONDS = 0.3


@dataclass(frozen=True)
class Hours:
    open_h: float
    close_h: float
    thursday_close_h: float
    peak_h: float


PHONE_HOURS = Hours(8.0, 15.0, 17.0, 9.5)
VISIT_HOURS = Hours(9.0, 15.0, 17.5, 10.5)


def day_weight(day: date) -> float:
    return WEEKDAY_WEIGHT[day.weekday()] * MONTH_WEIGHT[day.month - 1]


def arrival_times(rng: random.Random, day: date, count: int, hours: Hours) -> list[float]:
    """Arrival instants of one local day: a morning peak over a flat base within opening hours."""
    close = hours.thursday_close_h if day.weekday() == 3 else hours.close_h
    midnight = datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp()
    times: list[float] = []
    while len(times) < count:
        hour = rng.gauss(hours.peak_h, 1.6) if rng.random() < 0.55 else rng.uniform(hours.open_h, close)
        if hours.open_h <= hour < close:
            times.append(midnight + hour * 3600)
    return times


Record = tuple[object, ...]
TYPES = {
    "phone": ("call.offered", "call.answered", "call.abandoned", "call.ended", "call.transferred"),
    "visit": ("ticket.issued", "ticket.called", "ticket.cancelled", "ticket.completed", "ticket.no_show"),
}


def day_rows(rng: random.Random, day: date, contacts: int, serial: int) -> tuple[list[Record], int]:
    """Every event of one day, sorted by time; `serial` numbers the contacts across the year."""
    rows: list[tuple[float, Record]] = []

    def emit(at: float, eid: str, etype: str, cid: str, queue: str, **extra: Any) -> None:
        received = datetime.fromtimestamp(at, UTC) + timedelta(seconds=DELIVERY_SECONDS)
        rows.append((at, copy_record(Event(eid, etype, cid, queue, at, source="gen", **extra), received)))

    # Load pushes waits up: a busy month or weekday is harder to staff for.
    pressure = 0.2 + 0.9 * day_weight(day) ** 2 + 0.15 * math.sin(day.toordinal() / 9.0)
    phone = int(contacts * PHONE_SHARE)
    for channel, count, hours in (("phone", phone, PHONE_HOURS), ("visit", contacts - phone, VISIT_HOURS)):
        queues = PHONE_QUEUES if channel == "phone" else VISIT_QUEUES
        names, weights = list(queues), list(queues.values())
        mean_wait = (13.0 if channel == "phone" else 165.0) * pressure
        patience = 90.0 if channel == "phone" else 900.0
        mean_handle = 240.0 if channel == "phone" else 540.0
        arrive, start, leave, finish_ok, finish_other = TYPES[channel]
        for at in arrival_times(rng, day, count, hours):
            serial += 1
            cid = f"{channel[0]}{serial}"
            queue = rng.choices(names, weights)[0]
            peak = math.exp(-(((at % 86400) / 3600 - hours.peak_h + 1) ** 2) / 2.0)
            difficulty = QUEUE_DIFFICULTY.get(queue, 1.0)
            wait = rng.expovariate(1.0 / (mean_wait * difficulty * (0.6 + 0.9 * peak)))
            ticket = f"{queue[0].upper()}{serial % 1000:03d}" if channel == "visit" else None
            emit(at, f"{cid}-a", arrive, cid, queue, ticket_number=ticket)
            if rng.random() < 1.0 - math.exp(-wait / (patience * 8)):
                emit(at + wait, f"{cid}-l", leave, cid, queue)
                continue
            if channel == "phone":
                emit(at + wait, f"{cid}-s", start, cid, queue, agent=f"agent{rng.randrange(60)}")
            else:
                desk = f"desk{rng.randrange(1, 13)}"
                emit(at + wait, f"{cid}-s", start, cid, queue, desk=desk, ticket_number=ticket)
            end = at + wait + rng.expovariate(1.0 / mean_handle)
            if rng.random() < (0.07 if channel == "phone" else 0.03):
                to_queue = rng.choice(names) if channel == "phone" else None
                emit(end, f"{cid}-f", finish_other, cid, queue, to_queue=to_queue)
            else:
                emit(end, f"{cid}-f", finish_ok, cid, queue, resolved=rng.random() < 0.86)
    rows.sort(key=lambda item: item[0])
    return [record for _, record in rows], serial


def year_days(year: int) -> Iterator[date]:
    day = date(year, 1, 1)
    while day.year == year:
        yield day
        day += timedelta(days=1)


def contacts_per_day(year: int, events: int) -> dict[date, int]:
    weights = {day: day_weight(day) for day in year_days(year)}
    total = sum(weights.values())
    contacts = events / EVENTS_PER_CONTACT
    return {day: round(contacts * w / total) for day, w in weights.items() if w > 0}


async def load(dsn: str, year: int, events: int, seed: int) -> int:
    rng = random.Random(seed)
    connection = await asyncpg.connect(dsn)
    stored = 0
    serial = 0
    try:
        for day, contacts in contacts_per_day(year, events).items():
            records, serial = day_rows(rng, day, contacts, serial)
            await connection.copy_records_to_table("events", records=records, columns=COPY_COLUMNS)
            stored += len(records)
            if day.day == 1:
                print(f"  {day:%Y-%m}: {stored:,} events so far", flush=True)
        await connection.execute("ANALYZE events")
    finally:
        await connection.close()
    return stored


async def build_rollup(url: str, year: int) -> int:
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.core.window import Window
    from app.db.rollup import rebuild_range
    from app.settings import Settings, target_book, window_config

    settings = Settings(_env_file=None, database_url=url)
    targets = target_book(settings)
    engine = create_async_engine(url)
    try:
        return await rebuild_range(
            engine,
            lambda: Window(window_config(settings), targets),
            date(year, 1, 1),
            date(year, 12, 31),
            progress=lambda day, _count: print(f"  rollup {day:%Y-%m}", flush=True) if day.day == 1 else None,
        )
    finally:
        await engine.dispose()


async def main_async(args: argparse.Namespace) -> None:
    url = normalise_url(args.database_url)
    dsn = asyncpg_dsn(url)
    name = make_url(url).database
    assert name is not None
    await create_database_if_missing(
        asyncpg_dsn(make_url(url).set(database="postgres").render_as_string(False)), name
    )
    run_migrations(url)
    if not args.rollup_only:
        started = time.perf_counter()
        stored = await load(dsn, args.year, args.events, args.seed)
        loaded = time.perf_counter() - started
        print(f"loaded {stored:,} events in {loaded:.1f} s ({stored / loaded:,.0f}/s)", flush=True)
    started = time.perf_counter()
    replayed = await build_rollup(url, args.year)
    built = time.perf_counter() - started
    print(f"rollup built from {replayed:,} replayed events in {built:.1f} s ({replayed / built:,.0f}/s)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--rollup-only", action="store_true", help="skip loading; rebuild the rollup only")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
