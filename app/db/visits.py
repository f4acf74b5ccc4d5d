"""What the store holds of the channels named in one Asterisk request: their visits, and the lines stored."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from app.asterisk.visits import Stored
from app.core.events import Event
from app.db.connection import raw_connection

# The visits of `uniqueid@queue` are `uniqueid@queue` and `uniqueid@queue#N`: all in the bytewise range
# from the base to the base followed by '$' (the byte after '#'), which ix_events_asterisk_visits answers
# with text_pattern_ops' ~>=~ and ~<~. Whatever else falls in that range is no visit and is dropped by
# visit_number. The type and source are literals, so the planner matches the index's predicate.
STORED_ARRIVALS = """
SELECT b.base, e.contact_id, extract(epoch from e.occurred_at)::float8
FROM unnest($1::text[]) AS b(base)
JOIN events e ON e.contact_id ~>=~ b.base AND e.contact_id ~<~ (b.base || '$')
WHERE e.type = 'call.offered' AND e.source = 'asterisk'
"""
STORED_CONTACTS = "SELECT event_id, contact_id FROM events WHERE event_id = ANY($1::text[])"


async def stored_for(engine: AsyncEngine, events: Sequence[Event]) -> Stored:
    """The stored visits of the events' `uniqueid@queue`s, and the stored contact of each event whose
    channel has visits stored (for any other, the rule gives a re-sent line its contact again)."""
    bases = sorted({event.contact_id for event in events})
    if not bases:
        return Stored()
    async with raw_connection(engine) as driver:
        arrivals: dict[str, list[tuple[str, float]]] = {}
        for base, contact_id, at in await driver.fetch(STORED_ARRIVALS, bases):
            arrivals.setdefault(base, []).append((contact_id, at))
        ids = [event.event_id for event in events if event.contact_id in arrivals]
        contacts: dict[str, str] = {}
        if ids:
            contacts = {record[0]: record[1] for record in await driver.fetch(STORED_CONTACTS, ids)}
    return Stored(arrivals=arrivals, contacts=contacts)
