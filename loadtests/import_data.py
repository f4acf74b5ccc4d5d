"""The generated year of loadtests/generate_year.py as our event format: what a centre would export from
its old system and hand to `queuepulse import`. The same seed gives the same events as generate_year.py
stores directly, so the two can be compared."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

from app.db.rows import COPY_COLUMNS
from loadtests.generate_year import contacts_per_day, day_rows

# The event fields of a COPY record (the rest are the store's own: channel, received_at, ingested_by).
_EVENT_COLUMNS = [
    (index, name)
    for index, name in enumerate(COPY_COLUMNS)
    if name not in ("channel", "received_at", "ingested_by")
]


def as_event(record: tuple[Any, ...]) -> dict[str, Any]:
    """A COPY record as the JSON object a source would post for it."""
    event: dict[str, Any] = {}
    for index, name in _EVENT_COLUMNS:
        value = record[index]
        if value is None:
            continue
        event[name] = value.astimezone(UTC).isoformat() if name == "occurred_at" else value
    return event


def year_events(year: int, events: int, seed: int, month: int | None = None) -> Iterator[dict[str, Any]]:
    """The generated year (or one month of it), in time order, as generate_year.py makes it."""
    rng = random.Random(seed)
    serial = 0
    for day, contacts in contacts_per_day(year, events).items():
        if month is not None and day.month > month:
            return
        records, serial = day_rows(rng, day, contacts, serial)
        if month is None or day.month == month:
            yield from (as_event(record) for record in records)


def write_jsonl(path: Path, events: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> int:
    """Write the events one JSON object a line; how many."""
    count = 0
    with path.open("w") as out:
        for event in events:
            out.write(json.dumps(event, separators=(",", ":")) + "\n")
            count += 1
    return count
