"""POST /v1/qmatic/events: Qmatic Orchestra events in (as its webhook posts them, or batched by the relay),
ticket and desk events through the same gate as /v1/events. The rules are app/qmatic/mapping.py's."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
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
from app.core.events import EVENT_SPECS, Event
from app.db.qmatic import stored_rows
from app.db.writer import Clash
from app.ingest import Accepted, Conflicting, Invalid, Unavailable, misdated, queue_issues, store
from app.qmatic.mapping import Malformed, QPEvent, lookups, read, resolve

router = APIRouter(prefix="/v1/qmatic", tags=["ingest"])

RETRY_AFTER_SECONDS = "1"
STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, SQLAlchemyError)


class ItemIssue(BaseModel):
    index: int
    reason: str


class QmaticResult(BaseModel):
    # Qmatic events in the body, and the queuepulse events made of them.
    received: int
    events: int
    accepted: int
    duplicates: int
    # By Qmatic event name (and why), those that count nothing here.
    ignored: dict[str, int]
    errors: list[ItemIssue]


def _refused(status_code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"detail": message}, status_code=status_code, headers=headers)


def _reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _conflicting(clashes: Sequence[Clash], labels: list[int]) -> Response:
    """409 naming each item whose event is stored, or earlier in the body, with another payload."""
    errors = [
        ItemIssue(
            index=labels[clash.index],
            reason=clash.describe(None if clash.earlier is None else f"item {labels[clash.earlier]}"),
        ).model_dump()
        for clash in clashes
    ]
    detail = "items reuse an event_id for another payload; nothing of the request was stored"
    return JSONResponse({"detail": detail, "errors": errors}, status_code=409)


_JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": ["object", "null"]}}]
                },
                "example": {
                    "eventName": "VISIT_CALL",
                    "eventTime": "2026-11-23T09:58:00.000+01:00",
                    "eventType": "VISIT",
                    "unitId": 7,
                    "parameters": {
                        "visitId": 4711,
                        "branchId": 1,
                        "queueId": 3,
                        "queueName": "Pas og kørekort",
                        "servicePointName": "Skranke 2",
                        "ticket": "A012",
                        "waitingTime": 312,
                    },
                },
            }
        },
    }
}


@router.post(
    "/events",
    dependencies=[RequireIngest, RequireReady],
    response_model=QmaticResult,
    responses={401: {}, 403: {}, 409: {}, 413: {}, 422: {}, 503: {}},
    openapi_extra=_JSON_BODY,
)
async def post_qmatic_events(
    request: Request,
    services: ServicesDep,
    time_zone: Annotated[
        str | None,
        Query(description="where eventTime values without an offset were written; default: the service's"),
    ] = None,
) -> Response:
    """Store the ticket and desk events of one Qmatic event, or of an array of them (a null item is a
    placeholder, skipped). Items that cannot be used are listed by index and do not stop the others; the
    others' events are stored all together or not at all."""
    try:
        tz = ZoneInfo(time_zone) if time_zone else services.window.tz
    except (ZoneInfoNotFoundError, ValueError):
        return _refused(422, "time_zone: not a known IANA time zone")
    settings = services.settings
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        return _refused(422, "the body is no JSON")
    raw_items: list[Any] = body if isinstance(body, list) else [body]
    if len(raw_items) > settings.max_batch:
        return _refused(413, f"a request holds at most {settings.max_batch} Qmatic events")

    now = services.clock()
    errors: list[ItemIssue] = []
    items: list[tuple[int, QPEvent]] = []
    for index, raw in enumerate(raw_items):
        if raw is None:
            continue
        item = read(raw, tz)
        if isinstance(item, Malformed):
            errors.append(ItemIssue(index=index, reason=item.reason))
            continue
        problem = misdated(item.at, now, settings.max_future_seconds, settings.max_past_days)
        if problem is not None:
            errors.append(ItemIssue(index=index, reason=f"eventTime: {problem}"))
            continue
        items.append((index, item))

    try:
        stored = await stored_rows(services.engine, lookups([item for _, item in items]))
    except STORE_ERRORS as error:
        return _refused(503, f"events not stored: {error}", {"Retry-After": RETRY_AFTER_SECONDS})
    resolution = resolve(items, stored, desks="desk.opened" in EVENT_SPECS)
    errors.extend(ItemIssue(index=index, reason=reason) for index, reason in resolution.errors)
    labelled: list[tuple[int, Event]] = []
    for index, fields in resolution.events:
        try:
            labelled.append((index, single_event.validate_python(fields)))
        except ValidationError as error:
            errors.append(ItemIssue(index=index, reason=_reason(error)))

    # Last before the commit, with no await between: what it holds is admitted or let go by store().
    source = ingest_source(request)
    held = None
    while labelled:
        capped, held = queue_issues(
            [event for _, event in labelled],
            [index for index, _ in labelled],
            services.queues,
            source,
            settings,
        )
        if not capped:
            break
        refused = {issue.index for issue in capped}
        errors.extend(ItemIssue(index=issue.index or 0, reason=f"queue: {issue.message}") for issue in capped)
        labelled = [(index, event) for index, event in labelled if index not in refused]
    accepted, duplicates = 0, resolution.duplicates
    if labelled:
        outcome = await store(services, [event for _, event in labelled], source, held)
        match outcome:
            case Accepted():
                accepted, duplicates = outcome.accepted, duplicates + outcome.duplicates
            case Conflicting():
                return _conflicting(outcome.clashes, [index for index, _ in labelled])
            case Invalid():
                return _refused(422, "; ".join(issue.message for issue in outcome.issues))
            case Unavailable():
                return _refused(503, outcome.message, {"Retry-After": RETRY_AFTER_SECONDS})
    result = QmaticResult(
        received=sum(raw is not None for raw in raw_items),
        events=len(labelled),
        accepted=accepted,
        duplicates=duplicates,
        ignored=dict(sorted(Counter(resolution.ignored).items())),
        errors=sorted(errors, key=lambda issue: issue.index),
    )
    return Response(result.model_dump_json(), media_type="application/json")
