"""Local days and 15-minute intervals in the centre's time zone, daylight-saving days included."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

INTERVAL_SECONDS = 900


def local_date(at: float, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(at, tz).date()


def day_bounds(day: date, tz: ZoneInfo) -> tuple[float, float]:
    """Unix seconds of the local midnights starting `day` and the next day (23 or 25 h apart on DST days)."""
    start = datetime.combine(day, time(0), tz).timestamp()
    end = datetime.combine(day + timedelta(days=1), time(0), tz).timestamp()
    return start, end


def interval_start(at: float) -> int:
    """Start of the 15-minute interval holding `at`.

    Counting from the Unix epoch matches local quarter-hours in every zone whose UTC offset is a
    multiple of 15 minutes (all zones in use in Denmark and almost all elsewhere), on DST days too.
    """
    return int(at // INTERVAL_SECONDS) * INTERVAL_SECONDS


def day_intervals(day: date, tz: ZoneInfo) -> list[int]:
    start, end = day_bounds(day, tz)
    return list(range(int(start), int(end), INTERVAL_SECONDS))
