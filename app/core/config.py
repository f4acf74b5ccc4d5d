"""The window's settings and the target lookup it counts against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.core.events import Channel
from app.core.kpis import Target


@dataclass(frozen=True, slots=True)
class WindowConfig:
    time_zone: str = "Europe/Copenhagen"
    short_abandon_seconds: float = 5.0
    max_wait_seconds: float = 4 * 3600.0
    late_after_seconds: float = 60.0
    warning_margin_pct: float = 5.0
    fcr_goal_pct: float = 80.0
    # A closed contact is remembered this long so a repeated step is recognised, not counted anew.
    closed_retention_seconds: float = 3600.0
    # After-contact work after each finish an agent or desk served (ended early by agent.ready).
    wrap_up_seconds: float = 0.0


TargetLookup = Callable[[Channel, str | None], Target]
