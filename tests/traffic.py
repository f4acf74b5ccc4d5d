"""Seeded synthetic traffic for API tests: an hour of calls and visits as the ingest API receives them.

Times are whole quarter seconds, so every wait and sum is exact in floating point and the brute-force
reference in tests/oracle.py can be compared with the service for equality.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PHONE_QUEUES = ("borgerservice", "pension", "sundhed")
VISIT_QUEUES = ("pas-koerekort", "lobby")


@dataclass(frozen=True)
class Raw:
    """An event as the reference reads it, parsed back from the posted JSON."""

    event_id: str
    type: str
    contact_id: str
    queue: str
    at: float
    wait_seconds: float | None = None
    resolved: bool | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> Raw:
        return cls(
            event_id=body["event_id"],
            type=body["type"],
            contact_id=body["contact_id"],
            queue=body["queue"],
            at=datetime.fromisoformat(body["occurred_at"]).timestamp(),
            wait_seconds=body.get("wait_seconds"),
            resolved=body.get("resolved"),
        )


def quarter(value: float) -> float:
    return round(value * 4) / 4


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def hour_of_traffic(
    rng: random.Random, end: float, seconds: float = 3600.0, prefix: str = "sim"
) -> list[dict[str, Any]]:
    """Calls and visits arriving over `seconds` before `end`; what happens after `end` is left out."""
    events: list[dict[str, Any]] = []
    serial = 0

    def add(type_: str, contact: str, queue: str, at: float, **fields: Any) -> None:
        nonlocal serial
        if at > end:
            return
        serial += 1
        events.append(
            {
                "event_id": f"{prefix}-{serial}",
                "type": type_,
                "contact_id": contact,
                "queue": queue,
                "occurred_at": stamp(at),
                **fields,
            }
        )

    start = end - seconds + 1
    at = start
    n = 0
    while True:
        at = quarter(at + rng.expovariate(140 / 3600))  # about 140 calls an hour
        if at > end:
            break
        n += 1
        contact, queue = f"{prefix}-call-{n}", rng.choice(PHONE_QUEUES)
        add("call.offered", contact, queue, at)
        wait = quarter(rng.expovariate(1 / 45))
        patience = quarter(rng.expovariate(1 / 150))
        measured = {"wait_seconds": wait} if rng.random() < 0.2 else {}
        if patience < wait:
            add(
                "call.abandoned",
                contact,
                queue,
                at + patience,
                **({"wait_seconds": patience} if measured else {}),
            )
            continue
        add("call.answered", contact, queue, at + wait, agent=f"agent-{rng.randint(1, 12)}", **measured)
        finish = at + wait + quarter(rng.lognormvariate(5, 0.6))
        if rng.random() < 0.07:
            add("call.transferred", contact, queue, finish, to_queue=rng.choice(PHONE_QUEUES))
        else:
            resolved = rng.random() < 0.8 if rng.random() < 0.95 else None
            add("call.ended", contact, queue, finish, **({} if resolved is None else {"resolved": resolved}))

    at = start
    n = 0
    while True:
        at = quarter(at + rng.expovariate(45 / 3600))  # about 45 visits an hour
        if at > end:
            break
        n += 1
        contact, queue = f"{prefix}-visit-{n}", rng.choice(VISIT_QUEUES)
        add("ticket.issued", contact, queue, at, ticket_number=f"{queue[0].upper()}{n:03d}")
        wait = quarter(rng.expovariate(1 / 240))
        if rng.random() < 0.05:
            add("ticket.cancelled", contact, queue, at + wait)
            continue
        add("ticket.called", contact, queue, at + wait, desk=str(rng.randint(1, 6)))
        finish = at + wait + quarter(rng.lognormvariate(5.5, 0.5))
        if rng.random() < 0.05:
            add("ticket.no_show", contact, queue, at + wait + 120)
        else:
            add("ticket.completed", contact, queue, finish, resolved=rng.random() < 0.85)
    return events


class Clock:
    """A settable clock for the app: everything it stamps and reads uses this time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
