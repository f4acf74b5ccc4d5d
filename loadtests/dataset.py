"""A synthetic but plausible day of events, in the order they would be received.

Used to seed the database for the replay, memory and baseline figures (loadtests/bench.py) and to fill
the core window for the snapshot benchmark (tests/bench/). Deterministic for a given seed.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from typing import NamedTuple

PHONE_QUEUES = ("borgerservice", "pas-koerekort", "skat", "ydelser", "pension")
VISIT_QUEUES = ("pas", "koerekort", "sundhedskort")
PHONE_SHARE = 0.8
# Expected events per contact under the probabilities below (phone 2.9, visit 2.95), used to space arrivals
# so the requested count fills the span; slightly low so the count is reached before the span ends.
EVENTS_PER_CONTACT = 2.88


class Row(NamedTuple):
    event_id: str
    type: str
    contact_id: str
    queue: str
    at: float
    received_at: float
    agent: str | None = None
    desk: str | None = None
    ticket_number: str | None = None
    wait_seconds: float | None = None
    resolved: bool | None = None
    to_queue: str | None = None
    source: str | None = None


def _phone(rng: random.Random, n: int, at: float) -> list[tuple[float, str, dict[str, object]]]:
    queue = rng.choice(PHONE_QUEUES)
    steps: list[tuple[float, str, dict[str, object]]] = [(at, "call.offered", {"queue": queue})]
    wait = rng.expovariate(1 / 40)
    if rng.random() < 0.1:
        steps.append((at + wait, "call.abandoned", {"queue": queue}))
        return steps
    answered = at + wait
    steps.append((answered, "call.answered", {"queue": queue, "agent": f"agent-{n % 60}"}))
    ended = answered + rng.expovariate(1 / 180)
    if rng.random() < 0.05:
        steps.append((ended, "call.transferred", {"queue": queue, "to_queue": rng.choice(PHONE_QUEUES)}))
    else:
        steps.append((ended, "call.ended", {"queue": queue, "resolved": rng.random() < 0.8}))
    return steps


def _visit(rng: random.Random, n: int, at: float) -> list[tuple[float, str, dict[str, object]]]:
    queue = rng.choice(VISIT_QUEUES)
    ticket = f"{queue[0].upper()}{n % 1000:03d}"
    steps: list[tuple[float, str, dict[str, object]]] = [
        (at, "ticket.issued", {"queue": queue, "ticket_number": ticket})
    ]
    wait = rng.expovariate(1 / 240)
    if rng.random() < 0.05:
        steps.append((at + wait, "ticket.cancelled", {"queue": queue}))
        return steps
    called = at + wait
    steps.append((called, "ticket.called", {"queue": queue, "desk": f"desk-{n % 12 + 1}"}))
    if rng.random() < 0.03:
        steps.append((called + 120, "ticket.no_show", {"queue": queue}))
    else:
        done = called + rng.expovariate(1 / 420)
        steps.append((done, "ticket.completed", {"queue": queue, "resolved": rng.random() < 0.85}))
    return steps


def day_of_events(count: int, start: float, end: float, seed: int = 7) -> Iterator[Row]:
    """`count` events of contacts arriving between `start` and `end` (Unix seconds), in received order.

    Steps that would happen after `end` are not emitted: those contacts are still waiting or being served.
    """
    rng = random.Random(seed)
    gap = (end - start) / (count / EVENTS_PER_CONTACT)
    pending: list[tuple[float, int, str, dict[str, object], str]] = []
    emitted = 0
    contact = 0
    arrival = start
    while emitted < count:
        arrival += rng.expovariate(1 / gap)
        arriving = arrival < end
        while pending and (not arriving or pending[0][0] <= arrival):
            at, _, kind, fields, contact_id = heapq.heappop(pending)
            yield Row(
                event_id=f"seed-{emitted}",
                type=kind,
                contact_id=contact_id,
                queue=str(fields["queue"]),
                at=at,
                received_at=at + rng.uniform(0.05, 2.0),
                agent=fields.get("agent"),  # type: ignore[arg-type]
                desk=fields.get("desk"),  # type: ignore[arg-type]
                ticket_number=fields.get("ticket_number"),  # type: ignore[arg-type]
                resolved=fields.get("resolved"),  # type: ignore[arg-type]
                to_queue=fields.get("to_queue"),  # type: ignore[arg-type]
                source="seed",
            )
            emitted += 1
            if emitted == count:
                return
        if not arriving:
            return
        contact += 1
        phone = rng.random() < PHONE_SHARE
        steps = (_phone if phone else _visit)(rng, contact, arrival)
        contact_id = f"{'call' if phone else 'visit'}-{contact}"
        for order, (at, kind, fields) in enumerate(steps):
            if at < end:
                # The step order breaks ties, so a contact's events never come out of order.
                heapq.heappush(pending, (at, contact * 4 + order, kind, fields, contact_id))
