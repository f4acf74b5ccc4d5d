"""A queue_log date with no UTC equivalent is that line's error: the other lines are stored."""

from __future__ import annotations

import time
from typing import Any
from zoneinfo import ZoneInfo

from app.asterisk.parser import Malformed, parse_line
from tests.asterisk.test_ingest_route import post_log
from tests.running import RunningApp

OUT_OF_RANGE = "time: a date outside the years 1 to 9999 in UTC"


def test_dates_outside_utc_years_1_to_9999_are_malformed_lines() -> None:
    east = ZoneInfo("Etc/GMT-14")
    assert parse_line("0001-01-01 00:00:00|1.1|q|NONE|ENTERQUEUE||1|1", east) == Malformed(
        f"ENTERQUEUE: {OUT_OF_RANGE}"
    )
    assert parse_line("9999-12-31T23:00:00-14:00|1.1|q|NONE|ABANDON|1|1|5") == Malformed(
        f"ABANDON: {OUT_OF_RANGE}"
    )
    assert parse_line("0001-01-01 00:00:00|NONE|NONE|NONE|QUEUESTART|", east) == Malformed(
        f"QUEUESTART: {OUT_OF_RANGE}"
    )


async def test_the_route_reports_them_and_stores_the_rest(api: RunningApp) -> None:
    now = int(time.time())
    body = (
        f"0001-01-01 00:00:00|{now}.1|Borgerservice|NONE|ENTERQUEUE||004511111111|1\n"
        f"9999-12-31 23:59:59|{now}.2|Borgerservice|NONE|ENTERQUEUE||004522222222|1\n"
        f"{now - 10}|{now}.3|Borgerservice|NONE|ENTERQUEUE||004533333333|1\n"
        "0001-01-01 00:00:00|NONE|NONE|NONE|QUEUESTART|\n"
    )

    response = await post_log(api, body, time_zone="Etc/GMT-14")

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["events"], result["accepted"]) == (1, 1)
    reasons = {issue["line"]: issue["reason"] for issue in result["errors"]}
    assert sorted(reasons) == [1, 2, 4]
    assert reasons[1] == f"ENTERQUEUE: {OUT_OF_RANGE}"
    # Year 9999 at UTC+14 is still year 9999 in UTC, but far in the future.
    assert reasons[2].startswith("occurred_at: is more than")
    assert reasons[4] == f"QUEUESTART: {OUT_OF_RANGE}"
    # Nothing reached the store that it could not take: no commit failed.
    assert api.services.writer.stats.errors == 0
    queue: Any = (await api.kpis("15m"))["channels"]["phone"]["queues"]["borgerservice"]  # type: ignore[index]
    assert queue["arrived"] == 1
