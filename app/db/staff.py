"""The staff events' part of the queries that read events back: a longer horizon than contacts get.

An agent logged in yesterday evening and still working has its agent.logged_in older than today's
replay reaches (about the day start less a maximum wait); staff events are few (tens per agent and day),
so every replay and day rebuild also reads those of the STAFF_REPLAY_SECONDS before its start, and the
window folds what is older than two days into each subject's base state (app/core/staff.py).
"""

from __future__ import annotations

from app.core.events import STAFF_TYPES
from app.core.staff import STAFF_REPLAY_SECONDS

# The staff types as SQL; the partial index ix_events_staff_occurred_at (migration 0007) has this very
# predicate, so a query naming it can use that index.
STAFF_EVENTS_PREDICATE = "type IN (" + ", ".join(f"'{name}'" for name in sorted(STAFF_TYPES)) + ")"


def staff_since(start: str) -> str:
    """SQL true for a staff event that happened at most STAFF_REPLAY_SECONDS before `start` (an SQL
    timestamptz expression) or later."""
    horizon = f"interval '{int(STAFF_REPLAY_SECONDS)} seconds'"
    return f"({STAFF_EVENTS_PREDICATE} AND occurred_at >= {start} - {horizon})"
