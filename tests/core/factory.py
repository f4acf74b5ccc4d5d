"""Small builders for core tests: events with fresh ids, a window with the default targets, local times."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.core.events import Channel, Event
from app.core.kpis import Target
from app.core.snapshot import snapshot_json
from app.core.targets import TargetBook
from app.core.window import Window, WindowConfig, WindowName

CPH = ZoneInfo("Europe/Copenhagen")
_ids = itertools.count(1)


def local(year: int, month: int, day: int, hour: int, minute: int = 0, second: float = 0) -> float:
    """Unix seconds of a wall-clock time in Copenhagen (fold=0 on the repeated hour)."""
    whole = int(second)
    moment = datetime(year, month, day, hour, minute, whole, tzinfo=CPH)
    return moment.timestamp() + (second - whole)


def ev(type_: str, contact: str, at: float, queue: str = "borgerservice", **fields: Any) -> Event:
    if type_ == "ticket.called":
        fields.setdefault("desk", "3")
    return Event(event_id=f"e{next(_ids)}", type=type_, contact_id=contact, queue=queue, at=at, **fields)


def targets(overrides: dict[tuple[Channel, str], Target] | None = None) -> TargetBook:
    return TargetBook(
        {Channel.PHONE: Target(60.0, 90.0), Channel.VISIT: Target(300.0, 70.0)}, overrides or {}
    )


def make_window(overrides: dict[tuple[Channel, str], Target] | None = None, **config: Any) -> Window:
    return Window(WindowConfig(**config), targets(overrides))


def snapshot_of(
    window: Window, name: WindowName, now: float, channel: Channel | None = None, queue: str | None = None
) -> dict[str, Any]:
    """The snapshot as GET /v1/kpis shows it (rounded), which is what the assertions are written in."""
    return snapshot_json(window.snapshot(name, now, channel, queue))


def phone(window: Window, name: str, now: float, queue: str = "borgerservice") -> dict[str, Any]:
    """The phone KPI of one queue."""
    result: dict[str, Any] = snapshot_of(window, name, now)["channels"]["phone"]["queues"][queue]  # type: ignore[arg-type]
    return result
