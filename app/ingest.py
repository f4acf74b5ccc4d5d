"""One path from validated events to committed ones, for every ingest route and the benchmark ceiling.

A route parses its own body into events, each with a label its answer names it by (a batch index, a
log line number, or None for an event sent alone). Here the events meet the time rules and the queue
admission, are committed through the writer under their source's name, and come back as one Outcome:
Accepted, or a refusal the route turns into its own response shape (Invalid 422, Conflicting 409,
Unavailable 503). Nothing of a refused request is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from app.api.queues import persist_admitted
from app.api.schemas import EARLIEST_AT, ValidationIssue
from app.core.events import Event
from app.core.queues import QueueRegistry, Reservation
from app.db.writer import Backpressure, Clash, Conflict, Refused, StoreUnavailable
from app.services import Services
from app.settings import Settings

FULL_MESSAGE = "ingest queue is full; retry shortly"


@dataclass(frozen=True, slots=True)
class Accepted:
    accepted: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class Invalid:
    """The request breaks a rule (a time, a queue, a value PostgreSQL refuses): sending it again fails too."""

    issues: list[ValidationIssue]


@dataclass(frozen=True, slots=True)
class Conflicting:
    """Event ids reused for another payload; each clash's index is a position in the events submitted."""

    clashes: tuple[Clash, ...]


@dataclass(frozen=True, slots=True)
class Unavailable:
    """Not stored for now (queue full, database away): the same request may succeed shortly."""

    message: str


Outcome = Accepted | Invalid | Conflicting | Unavailable


def time_bounds(now: float, max_future_seconds: float, max_past_days: float) -> tuple[float, float]:
    """The earliest and latest time an event may carry: no further ahead than a clock may drift, no further
    back than the backfill allowed, and never before the schema's floor (which a QUEUESTART line's time,
    being no event, has not met)."""
    return max(now - max_past_days * 86_400.0, EARLIEST_AT), now + max_future_seconds


def misdated(at: float, now: float, max_future_seconds: float, max_past_days: float) -> str | None:
    """Why a time is refused, or None."""
    earliest, latest = time_bounds(now, max_future_seconds, max_past_days)
    if earliest <= at <= latest:
        return None
    return _misdated(at, latest, max_future_seconds, max_past_days)


def _misdated(at: float, latest: float, max_future_seconds: float, max_past_days: float) -> str:
    if at > latest:
        return f"is more than {max_future_seconds:g} seconds in the future"
    return f"is more than {max_past_days:g} days in the past"


def time_issues(
    events: Sequence[Event], labels: Sequence[int | None], now: float, settings: Settings
) -> list[ValidationIssue]:
    future, past = settings.max_future_seconds, settings.max_past_days
    earliest, latest = time_bounds(now, future, past)
    issues = []
    # One comparison per event in the loop: batches of a thousand pass through here.
    for label, event in zip(labels, events, strict=True):
        if not earliest <= event.at <= latest:
            message = _misdated(event.at, latest, future, past)
            issues.append(ValidationIssue(index=label, field="occurred_at", message=message))
    return issues


def queue_issues(
    events: Sequence[Event],
    labels: Sequence[int | None],
    registry: QueueRegistry,
    source: str,
    settings: Settings,
) -> tuple[list[ValidationIssue], Reservation | None]:
    """Issues for the events whose queue cannot be admitted (retired, or past the source's cap or the cap
    for all), each at the event's label; else the reservation that holds the new queues until the events
    commit (`store` admits them) or fail (`store` lets them go).

    A refused batch holds nothing, and a held queue counts against the caps until it is let go: only
    committed events admit a queue.
    """
    refusals, held = registry.reserve(
        events, labels, source, settings.max_queues, settings.max_queues_per_source
    )
    return [
        ValidationIssue(index=refusal.label, field="queue", message=refusal.message) for refusal in refusals
    ], held


def check(
    services: Services, events: Sequence[Event], labels: Sequence[int | None], source: str, now: float
) -> Invalid | Reservation | None:
    """Every rule a whole request meets before it is stored: the times, then the queues. A reservation
    (or None: no new queue) means the events may be stored; it must then go to `store`, with no await
    between, or be released."""
    settings = services.settings
    misdated_issues = time_issues(events, labels, now, settings)
    if misdated_issues:
        return Invalid(misdated_issues)
    capped, held = queue_issues(events, labels, services.queues, source, settings)
    if capped:
        return Invalid(capped)
    return held


async def ingest(
    services: Services, events: Sequence[Event], labels: Sequence[int | None], source: str
) -> Outcome:
    """All or nothing: the request's events are checked and then committed together, or none is."""
    checked = check(services, events, labels, source, services.clock())
    if isinstance(checked, Invalid):
        return checked
    return await store(services, events, source, checked)


async def store(
    services: Services, events: Sequence[Event], source: str, held: Reservation | None
) -> Outcome:
    """Commit the events through the writer, tagged with their source; the queues they hold are admitted
    once they commit and let go if they do not.

    The submission is awaited directly, so the events are in the writer's queue before anything else runs
    (a retire relies on that order, see app/api/queues.py).
    """
    registry = services.queues
    try:
        accepted, duplicates = await services.writer.submit(events, origin=source)
    except asyncio.CancelledError:
        # The client hung up; the flush goes on and its outcome is not known here. A queue its events may
        # have committed must not go to another source, so it stays: at worst a queue with no events yet.
        registry.commit(held)
        raise
    except Backpressure:
        registry.release(held)
        return Unavailable(FULL_MESSAGE)
    except Conflict as error:
        registry.release(held)
        services.metrics.conflicted(clash.type for clash in error.clashes)
        return Conflicting(error.clashes)
    except Refused as error:
        registry.release(held)
        return Invalid([ValidationIssue(index=None, field=None, message=f"events not stored: {error}")])
    except StoreUnavailable as error:
        registry.release(held)
        return Unavailable(f"events not stored: {error}")
    except Exception:
        registry.release(held)
        raise
    if held is not None:
        registry.commit(held)
        await persist_admitted(services)
    return Accepted(accepted, duplicates)
