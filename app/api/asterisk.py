"""POST /v1/ingest/asterisk-queue-log: queue_log lines in, call events through the same gate as /v1/events."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from app.api.auth import RequireIngest
from app.api.deps import RequireReady, ServicesDep
from app.api.limits import queue_cap_issues
from app.api.schemas import ValidationIssue, single_event
from app.asterisk.parser import Ignored, Malformed, ParseResult, Unknown, decode_line, parse_line
from app.core.events import Channel, Event
from app.db.writer import Backpressure, StoreUnavailable

router = APIRouter(prefix="/v1/ingest", tags=["ingest"])

# A 1 MiB body holds about ten thousand queue_log lines; more in one request is a whole file, which the
# follower sends in batches instead.
MAX_LINES = 10_000
RETRY_AFTER_SECONDS = "1"


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


async def _body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it grows past the limit (read no further than that)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


@dataclass
class _Reading:
    """What the lines of one request came to: events by line number, and what was not used."""

    events: list[tuple[int, Event]] = field(default_factory=list)
    errors: list[LineIssue] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)
    lines: int = 0

    def use(self, number: int, result: ParseResult, now: float, max_future_seconds: float) -> None:
        self.lines += 1
        if isinstance(result, Ignored):
            self.ignored[result.verb] += 1
        elif isinstance(result, Unknown):
            self.unknown[result.verb] += 1
        elif isinstance(result, Malformed):
            self.errors.append(LineIssue(line=number, reason=result.reason))
        else:
            try:
                event = single_event.validate_python(result.event)
            except ValidationError as error:
                self.errors.append(LineIssue(line=number, reason=_reason(error)))
                return
            if event.at - now > max_future_seconds:
                message = f"occurred_at: is more than {max_future_seconds:g} seconds in the future"
                self.errors.append(LineIssue(line=number, reason=message))
                return
            self.events.append((number, event))

    def cap_queues(self, known: set[tuple[Channel, str]], max_queues: int) -> None:
        """Leave out, as line errors, the events of queues beyond max_queues; admit the others' queues."""
        capped = self._queue_cap_issues(known, max_queues)
        if not capped:
            return
        refused = {issue.index for issue in capped}
        self.errors.extend(
            LineIssue(line=issue.index or 0, reason=f"queue: {issue.message}") for issue in capped
        )
        self.events = [(number, event) for number, event in self.events if number not in refused]
        self._queue_cap_issues(known, max_queues)

    def _queue_cap_issues(self, known: set[tuple[Channel, str]], max_queues: int) -> list[ValidationIssue]:
        numbers = [number for number, _ in self.events]
        return queue_cap_issues([event for _, event in self.events], numbers, known, max_queues)


def _read(raw_lines: list[bytes], tz: tzinfo, now: float, max_future_seconds: float) -> _Reading:
    reading = _Reading()
    for number, raw in enumerate(raw_lines, start=1):
        result = parse_line(decode_line(raw), tz)
        if result is not None:
            reading.use(number, result, now, max_future_seconds)
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
    responses={401: {}, 403: {}, 413: {}, 422: {}, 503: {}},
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
    """Store the call events in Asterisk queue_log lines; reports each line that could not be used.

    The valid lines' events are stored all together or not at all. Lines that cannot be used (malformed,
    rejected by the event schema, or naming a queue beyond QUEUEPULSE_MAX_QUEUES) are listed by line
    number and do not stop the others; verbs that carry no call outcome are counted as ignored, verbs
    this service does not know as unknown.
    """
    try:
        tz = ZoneInfo(time_zone) if time_zone else services.window.tz
    except (ZoneInfoNotFoundError, ValueError):
        return _refused(422, "time_zone: not a known IANA time zone")
    settings = services.settings
    body = await _body(request, settings.max_body_bytes)
    if body is None:
        return _refused(413, f"the body holds at most {settings.max_body_bytes} bytes")
    raw_lines = body.split(b"\n")
    if len(raw_lines) > MAX_LINES:
        return _refused(413, f"a request holds at most {MAX_LINES} lines; send the rest in another")

    reading = _read(raw_lines, tz, services.clock(), settings.max_future_seconds)
    if len(services.queues) < len(services.window.series):
        services.queues.update(services.window.series)
    reading.cap_queues(services.queues, settings.max_queues)
    accepted = duplicates = 0
    if reading.events:
        try:
            accepted, duplicates = await services.writer.submit([event for _, event in reading.events])
        except Backpressure:
            return _refused(503, "ingest queue is full; retry shortly", {"Retry-After": RETRY_AFTER_SECONDS})
        except StoreUnavailable as error:
            return _refused(503, f"events not stored: {error}", {"Retry-After": RETRY_AFTER_SECONDS})
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
