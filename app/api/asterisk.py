"""POST /v1/ingest/asterisk-queue-log: queue_log lines in, call and member events through the same gate as
/v1/events."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from app.api.auth import RequireIngest, ingest_source
from app.api.deps import RequireReady, ServicesDep
from app.api.schemas import single_event
from app.asterisk import members
from app.asterisk.parser import (
    SOURCE,
    AgentSession,
    Ignored,
    Malformed,
    Member,
    ParseResult,
    Restart,
    Unknown,
    decode_line,
    parse_line,
)
from app.asterisk.visits import Stored, resolve
from app.core.events import STAFF_TYPES, Channel, Event
from app.core.queues import QueueKey, QueueRegistry, Reservation
from app.core.window import Window
from app.db.visits import stored_for
from app.db.writer import Clash
from app.ingest import Accepted, Conflicting, Invalid, Unavailable, misdated, queue_issues, store
from app.settings import Settings

router = APIRouter(prefix="/v1/ingest", tags=["ingest"])

# A 1 MiB body holds about ten thousand queue_log lines; more in one request is a whole file, which the
# follower sends in batches instead.
MAX_LINES = 10_000
RETRY_AFTER_SECONDS = "1"
# What looking up a request's earlier visits can fail with when the database is away.
STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, SQLAlchemyError)


class LineIssue(BaseModel):
    line: int
    reason: str


class QueueLogResult(BaseModel):
    lines: int
    events: int
    accepted: int
    duplicates: int
    ignored: dict[str, int]
    unknown: dict[str, int]
    errors: list[LineIssue]


def _reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{field}: {message}" if field else message)
    return "; ".join(parts)


def _refused(status_code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"detail": message}, status_code=status_code, headers=headers)


def _conflicting(clashes: Sequence[Clash], line_numbers: list[int]) -> Response:
    """409 naming each line whose event_id is stored, or on an earlier line, with another payload."""
    errors = [
        LineIssue(
            line=line_numbers[clash.index],
            reason=clash.describe(None if clash.earlier is None else f"line {line_numbers[clash.earlier]}"),
        ).model_dump()
        for clash in clashes
    ]
    detail = "lines reuse an event_id for another payload; nothing of the request was stored"
    return JSONResponse({"detail": detail, "errors": errors}, status_code=409)


@dataclass
class _Reading:
    """What the lines of one request came to: events by line number, and what was not used."""

    events: list[tuple[int, Event]] = field(default_factory=list)
    # QUEUESTART lines: they become a clear for each contact still open when Asterisk started, and a
    # logout for each member session.
    restarts: list[tuple[int, Restart]] = field(default_factory=list)
    # AGENTLOGIN and AGENTLOGOFF lines: a login or logout in each of the agent's queues.
    sessions: list[tuple[int, AgentSession]] = field(default_factory=list)
    errors: list[LineIssue] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)
    lines: int = 0

    def use(
        self, number: int, result: ParseResult, now: float, max_future_seconds: float, max_past_days: float
    ) -> None:
        self.lines += 1
        if isinstance(result, Ignored):
            self.ignored[result.verb] += 1
        elif isinstance(result, Unknown):
            self.unknown[result.verb] += 1
        elif isinstance(result, Malformed):
            self.errors.append(LineIssue(line=number, reason=result.reason))
        elif isinstance(result, Restart):
            # A restart dated ahead would clear callers who are still waiting; a restart is no event, but
            # the clears it makes carry its time, so it meets the events' rules.
            problem = misdated(result.at, now, max_future_seconds, max_past_days)
            if problem is not None:
                self.errors.append(LineIssue(line=number, reason=f"QUEUESTART: time: {problem}"))
                return
            self.restarts.append((number, result))
        elif isinstance(result, AgentSession):
            problem = misdated(result.at, now, max_future_seconds, max_past_days)
            if problem is not None:
                self.errors.append(LineIssue(line=number, reason=f"{result.verb}: time: {problem}"))
                return
            self.sessions.append((number, result))
        else:
            fields = result.events if isinstance(result, Member) else (result.event,)
            events = []
            for one in fields:
                try:
                    event = single_event.validate_python(one)
                except ValidationError as error:
                    self.errors.append(LineIssue(line=number, reason=_reason(error)))
                    return
                problem = misdated(event.at, now, max_future_seconds, max_past_days)
                if problem is not None:
                    self.errors.append(LineIssue(line=number, reason=f"occurred_at: {problem}"))
                    return
                events.append(event)
            self.events.extend((number, event) for event in events)

    def cap_queues(self, registry: QueueRegistry, source: str, settings: Settings) -> Reservation | None:
        """Leave out, as line errors, the events of queues that cannot be admitted (retired, or past a queue
        cap); hold the others' new queues, for the caller to commit or release with the events."""
        while True:
            numbers = [number for number, _ in self.events]
            events = [event for _, event in self.events]
            capped, held = queue_issues(events, numbers, registry, source, settings)
            if not capped:
                return held
            refused = {issue.index for issue in capped}
            self.errors.extend(
                LineIssue(line=issue.index or 0, reason=f"queue: {issue.message}") for issue in capped
            )
            self.events = [(number, event) for number, event in self.events if number not in refused]

    def resolve_visits(self, stored: Stored, window: Window, retired: Collection[QueueKey]) -> None:
        """Number each channel's visits to a queue, and clear what the restarts ended (asterisk/visits.py);
        then place the agent-pool lines in queues and end the member sessions the restarts ended
        (asterisk/members.py)."""
        calls = [(number, event) for number, event in self.events if event.type not in STAFF_TYPES]
        staff = [(number, event) for number, event in self.events if event.type in STAFF_TYPES]
        lines: list[tuple[int, Event | Restart]] = [*calls, *self.restarts]
        lines.sort(key=lambda item: item[0])
        resolution = resolve(lines, stored, _LiveAsterisk(window))
        self.errors.extend(LineIssue(line=number, reason=reason) for number, reason in resolution.errors)
        member_lines: list[tuple[int, Event | AgentSession | Restart]] = [
            *resolution.events,
            *staff,
            *self.sessions,
            *self.restarts,
        ]
        # Stable: within a line, the call events before the member events, as the line made them.
        member_lines.sort(key=lambda item: item[0])
        placed = members.resolve(member_lines, _LiveMembers(window))
        self.errors.extend(LineIssue(line=number, reason=reason) for number, reason in placed.errors)
        self.ignored.update(placed.ignored)
        # The queues of the sessions the window remembers passed the cap when they opened; one an admin
        # has retired since takes no more events (the store would refuse the whole request for it).
        kept = []
        for number, event in placed.events:
            if (Channel.PHONE, event.queue) in retired:
                self.errors.append(LineIssue(line=number, reason=f"queue: {event.queue!r} is retired"))
            else:
                kept.append((number, event))
        merged = [*resolution.events, *kept]
        merged.sort(key=lambda item: item[0])
        self.events = merged


@dataclass(frozen=True, slots=True)
class _LiveAsterisk:
    """The window's Asterisk calls, as app/asterisk/visits.py asks about them."""

    window: Window

    def open_before(self, at: float) -> Sequence[tuple[str, str]]:
        return self.window.open_contacts(Channel.PHONE, SOURCE, at)

    def over_by(self, contact_id: str, at: float) -> bool:
        return self.window.over_by(Channel.PHONE, contact_id, at)


@dataclass(frozen=True, slots=True)
class _LiveMembers:
    """The window's Asterisk member sessions, as app/asterisk/members.py asks about them."""

    window: Window

    def open_sessions(self, began_before: float) -> Sequence[tuple[str, str]]:
        return self.window.open_memberships(Channel.PHONE, SOURCE, began_before)

    def queues_of(self, agent: str) -> Sequence[str]:
        return self.window.member_queues(Channel.PHONE, agent)


def _read(
    raw_lines: list[bytes], tz: tzinfo, now: float, max_future_seconds: float, max_past_days: float
) -> _Reading:
    reading = _Reading()
    for number, raw in enumerate(raw_lines, start=1):
        result = parse_line(decode_line(raw), tz)
        if result is not None:
            reading.use(number, result, now, max_future_seconds, max_past_days)
    return reading


_TEXT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/plain": {
                "schema": {"type": "string"},
                "example": "1700000000|1700000000.1|sales|NONE|ENTERQUEUE|||1\n",
            }
        },
    }
}


@router.post(
    "/asterisk-queue-log",
    dependencies=[RequireIngest, RequireReady],
    response_model=QueueLogResult,
    responses={401: {}, 403: {}, 409: {}, 413: {}, 422: {}, 503: {}},
    openapi_extra=_TEXT_BODY,
)
async def post_queue_log(
    request: Request,
    services: ServicesDep,
    time_zone: Annotated[
        str | None,
        Query(description="where dates without an offset were written; default: the service's time zone"),
    ] = None,
) -> Response:
    """Store the call and member events in Asterisk queue_log lines; reports each line that could not be used.

    The valid lines' events are stored all together or not at all. Lines that cannot be used (malformed,
    rejected by the event schema, naming a queue beyond QUEUEPULSE_MAX_QUEUES, or an AGENTLOGIN of an
    agent not yet seen in any queue) are listed by line number and do not stop the others; verbs that
    carry nothing to count (and an AGENTLOGOFF with no session open) are counted as ignored, verbs this
    service does not know as unknown.
    """
    try:
        tz = ZoneInfo(time_zone) if time_zone else services.window.tz
    except (ZoneInfoNotFoundError, ValueError):
        return _refused(422, "time_zone: not a known IANA time zone")
    settings = services.settings
    # BodySizeLimit (app/api/limits.py) has bounded it, as every body.
    body = await request.body()
    # \r\n, \n and a lone \r each end a line (bytes.splitlines knows no other line ends), as in the follower.
    raw_lines = body.splitlines()
    if len(raw_lines) > MAX_LINES:
        return _refused(413, f"a request holds at most {MAX_LINES} lines; send the rest in another")

    reading = _read(raw_lines, tz, services.clock(), settings.max_future_seconds, settings.max_past_days)
    stored = Stored()
    calls = [event for _, event in reading.events if event.type not in STAFF_TYPES]
    if calls:
        try:
            stored = await stored_for(services.engine, calls)
        except STORE_ERRORS as error:
            return _refused(503, f"events not stored: {error}", {"Retry-After": RETRY_AFTER_SECONDS})
    # Last before the commit, with no await between: what it holds is admitted or let go by store().
    source = ingest_source(request)
    held = reading.cap_queues(services.queues, source, settings)
    # After the cap, so a restart clears only contacts whose arrival is stored or let through with it.
    reading.resolve_visits(stored, services.window, services.queues.retired)
    accepted = duplicates = 0
    if reading.events:
        outcome = await store(services, [event for _, event in reading.events], source, held)
        match outcome:
            case Accepted():
                accepted, duplicates = outcome.accepted, outcome.duplicates
            case Conflicting():
                return _conflicting(outcome.clashes, [number for number, _ in reading.events])
            case Invalid():
                return _refused(422, "; ".join(issue.message for issue in outcome.issues))
            case Unavailable():
                return _refused(503, outcome.message, {"Retry-After": RETRY_AFTER_SECONDS})
    result_body = QueueLogResult(
        lines=reading.lines,
        events=len(reading.events),
        accepted=accepted,
        duplicates=duplicates,
        ignored=dict(sorted(reading.ignored.items())),
        unknown=dict(sorted(reading.unknown.items())),
        errors=sorted(reading.errors, key=lambda issue: issue.line),
    )
    return Response(result_body.model_dump_json(), media_type="application/json")
