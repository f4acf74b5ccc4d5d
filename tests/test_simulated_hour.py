"""A simulated hour of calls and visits, posted shuffled with repeats, matches the independent counts."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.oracle import Rules, expected_channels
from tests.running import running_app
from tests.traffic import Clock, Raw, hour_of_traffic

CONCURRENT_REQUESTS = 4


async def test_simulated_hour_out_of_order_with_duplicates(settings: Settings, clean_db: AsyncEngine) -> None:
    end = float(int(time.time()))
    rng = random.Random(20260615)
    bodies = hour_of_traffic(rng, end)
    repeats = rng.sample(bodies, k=len(bodies) // 10)
    feed = bodies + repeats
    rng.shuffle(feed)
    batches: list[list[dict[str, Any]]] = []
    while feed:
        size = rng.choice([1, 2, 7, 40, 150])
        batches.append(feed[:size])
        feed = feed[size:]

    async with running_app(settings, Clock(end)) as app:
        accepted = duplicates = 0
        for first in range(0, len(batches), CONCURRENT_REQUESTS):
            group = batches[first : first + CONCURRENT_REQUESTS]
            responses = await asyncio.gather(*(app.post(batch) for batch in group))
            for response in responses:
                assert response.status_code == 200, response.text
                accepted += response.json()["accepted"]
                duplicates += response.json()["duplicates"]
        assert (accepted, duplicates) == (len(bodies), len(repeats))

        raw = [Raw.of(body) for body in bodies]
        rules = Rules()
        for window in ("15m", "1h", "today"):
            kpis: Any = await app.kpis(window)
            assert kpis["channels"] == expected_channels(raw, end, window, rules), window

        hour: Any = await app.kpis("1h")
        phone, visit = hour["channels"]["phone"]["total"], hour["channels"]["visit"]["total"]
        # The traffic is rich enough that every count is exercised, not just zeros agreeing with zeros.
        assert phone["arrived"] > 80
        assert visit["arrived"] > 20
        assert phone["left"] > 0
        assert phone["left_after_short_abandon"] > 0
        assert phone["transferred"] > 0
        assert 0 < phone["started_within_target"] < phone["started"]
        assert phone["service_level_pct"] is not None
        assert visit["first_contact_resolution_pct"] is not None
        assert phone["finished"] > 0
        assert visit["finished"] > 0

        quality = hour["data_quality"]
        assert quality["duplicates"] == len(repeats)
        assert quality["late"] == sum(event.at < end - 60 for event in raw)
    async with clean_db.connect() as connection:
        count = (
            await connection.execute(text("SELECT count(*), count(DISTINCT event_id) FROM events"))
        ).one()
    assert tuple(count) == (len(bodies), len(bodies))
