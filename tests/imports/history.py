"""Generated history for the import tests: loadtests/generate_year.py's centre, as our event format."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from loadtests.import_data import as_event, write_jsonl, year_events

__all__ = ["as_event", "at", "days_of", "write_jsonl", "year_events"]


def at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["occurred_at"]).timestamp()


def days_of(events: list[dict[str, Any]], tz: ZoneInfo) -> set[date]:
    return {datetime.fromtimestamp(at(event), tz).date() for event in events}
