"""Time the history reports over a year of data, through the whole app (routing, auth, SQL, JSON).

    .venv/bin/python loadtests/bench_reports.py --database-url postgresql://postgres@127.0.0.1:5432/qp_year \
        [--year 2025] [--repeat 20]

Load the year first with loadtests/generate_year.py. The app runs in-process on that database (its
start-up replay finds nothing of today in a past year, so it is ready at once); each report is requested
`--repeat` times after one untimed warm-up, and the first (cold) request is reported separately.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import warnings
from pathlib import Path
from tempfile import TemporaryDirectory

import asyncpg
import httpx
from asgi_lifespan import LifespanManager

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db.embedded import asyncpg_dsn, normalise_url
from app.main import create_app
from app.settings import Settings

TARGET_SECONDS = 1.0


async def bench(url: str, year: int, repeat: int) -> bool:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        events = await conn.fetchval("SELECT count(*) FROM events")
        rollup_rows = await conn.fetchval("SELECT count(*) FROM interval_rollup")
    finally:
        await conn.close()
    print(f"database: {events:,} events, {rollup_rows:,} rollup rows")
    cases = {
        "month, both channels, all queues (JSON)": {"granularity": "month"},
        "month, phone, two queues (CSV)": {
            "granularity": "month",
            "channel": "phone",
            "queue": "borgerservice,skat",
            "format": "csv",
        },
        "week, both channels (JSON)": {"granularity": "week"},
        "day, both channels (JSON)": {"granularity": "day"},
        "year, both channels (JSON)": {"granularity": "year"},
    }
    ok = True
    with TemporaryDirectory() as data_dir:
        settings = Settings(
            _env_file=None, database_url=url, data_dir=Path(data_dir), ingest_token="bench-ingest-token"
        )
        app = create_app(settings)
        async with LifespanManager(app, startup_timeout=120) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://queuepulse", timeout=60
            ) as client:
                for _ in range(1200):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.1)
                for name, params in cases.items():
                    params = {"from": f"{year}-01-01", "to": f"{year}-12-31", **params}
                    timings = []
                    for attempt in range(repeat + 1):
                        started = time.perf_counter()
                        response = await client.get("/v1/reports", params=params)
                        elapsed = time.perf_counter() - started
                        response.raise_for_status()
                        timings.append(elapsed)
                        if attempt == 0:
                            size = len(response.content)
                    cold, warm = timings[0], sorted(timings[1:])
                    p95 = warm[max(0, round(0.95 * len(warm)) - 1)]
                    print(
                        f"{name}: cold {cold * 1000:.0f} ms, median {statistics.median(warm) * 1000:.0f} ms, "
                        f"p95 {p95 * 1000:.0f} ms, max {warm[-1] * 1000:.0f} ms ({size:,} bytes)"
                    )
                    if name.startswith("month") and max(timings) >= TARGET_SECONDS:
                        ok = False
    print(f"monthly report under {TARGET_SECONDS:.0f} s: {'yes' if ok else 'NO'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok = asyncio.run(bench(normalise_url(args.database_url), args.year, args.repeat))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
