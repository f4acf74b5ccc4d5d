"""POST /v1/events: validate, commit through the group-commit writer, then answer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from app.api.auth import ReadyIngest, ingest_source
from app.api.schemas import (
    EVENT_JSON_SCHEMA,
    IngestResult,
    ValidationFailed,
    ValidationIssue,
    duplicate_key_issues,
    event_batch,
    single_event,
)
from app.core.events import Event
from app.ingest import Accepted, Conflicting, Invalid, Outcome, Unavailable, ingest

router = APIRouter(prefix="/v1", tags=["ingest"])

RETRY_AFTER_SECONDS = "1"
JSON_MEDIA_MESSAGE = "Content-Type must be application/json (or application/*+json)"


def is_json_media_type(content_type: str | None) -> bool:
    """application/json or a +json type, any parameters (charset) allowed. No header at all is taken as
    JSON too: the body must parse as JSON either way, and simple clients send none."""
    if content_type is None:
        return True
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _issues(error: ValidationError, batch: bool) -> list[ValidationIssue]:
    issues = []
    for item in error.errors(include_url=False):
        location = list(item["loc"])
        index = location.pop(0) if batch and location and isinstance(location[0], int) else None
        assert index is None or isinstance(index, int)
        field = ".".join(str(part) for part in location) or None
        message = str(item["msg"]).removeprefix("Value error, ")
        # Only the schema's own cross-field checks say "field: message"; a parser's message is no field.
        if field is None and item["type"] == "value_error" and ": " in message:
            field, _, message = message.partition(": ")
        issues.append(ValidationIssue(index=index, field=field, message=message))
    return issues


def _located(error: ValidationError, body: bytes, batch: bool) -> ValidationError:
    """The field-by-field errors of a body the strict JSON parser refused as a whole, when there are any.

    JSON's grammar allows a lone surrogate escape ("\\ud800"), which the fast parser rejects without
    saying where; the standard library reads it, so the schema can name the index and field. A body
    only the lenient parser accepts is still refused.
    """
    if not any(item["type"] == "json_invalid" for item in error.errors(include_url=False)):
        return error
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return error
    try:
        if batch:
            event_batch.validate_python(data)
        else:
            single_event.validate_python(data)
    except ValidationError as located:
        return located
    return error


def _rejected(issues: list[ValidationIssue]) -> Response:
    return JSONResponse(ValidationFailed(detail=issues).model_dump(), status_code=422)


@dataclass(frozen=True, slots=True)
class Read:
    """A body's events, labelled as its answer names them: by batch index, or None for an event alone."""

    events: list[Event]
    labels: Sequence[int | None]
    batch: bool


_ALONE = (None,)


def read_events(body: bytes, max_batch: int) -> Read | Invalid:
    """The events of a body (one event object or a batch array), or what makes the body invalid."""
    batch = body.lstrip()[:1] == b"["
    try:
        events = event_batch.validate_json(body) if batch else [single_event.validate_json(body)]
    except ValidationError as error:
        return Invalid(_issues(_located(error, body, batch), batch))
    repeated = duplicate_key_issues(body, events, batch)
    if repeated:
        return Invalid(repeated)
    if len(events) > max_batch:
        return Invalid(
            [ValidationIssue(index=None, field=None, message=f"a batch holds at most {max_batch} events")]
        )
    return Read(events, range(len(events)) if batch else _ALONE, batch)


def answer(outcome: Outcome, batch: bool) -> Response:
    match outcome:
        case Accepted():
            body = IngestResult(accepted=outcome.accepted, duplicates=outcome.duplicates).model_dump_json()
            return Response(body, media_type="application/json")
        case Invalid():
            return _rejected(outcome.issues)
        case Conflicting():
            issues = [
                ValidationIssue(index=clash.index if batch else None, field="event_id", message=clash.message)
                for clash in outcome.clashes
            ]
            return JSONResponse(ValidationFailed(detail=issues).model_dump(), status_code=409)
        case Unavailable():
            return JSONResponse(
                {"detail": outcome.message}, status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS}
            )


def respond(outcome: Outcome, read: Read) -> Response:
    """The answer to what became of a body's events.

    A lone event's time issue has always named index 0 (its other issues name none); kept, since clients
    may read it.
    """
    if read.batch or not isinstance(outcome, Invalid):
        return answer(outcome, read.batch)
    issues = [
        ValidationIssue(index=0, field=issue.field, message=issue.message)
        if issue.field == "occurred_at"
        else issue
        for issue in outcome.issues
    ]
    return answer(Invalid(issues), batch=False)


_EVENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        EVENT_JSON_SCHEMA,
                        {
                            "type": "array",
                            "items": EVENT_JSON_SCHEMA,
                            "minItems": 1,
                            "maxItems": 1000,
                        },
                    ]
                }
            }
        },
    }
}


@router.post(
    "/events",
    response_model=IngestResult,
    responses={
        401: {},
        403: {},
        409: {"model": ValidationFailed},
        413: {},
        415: {},
        422: {"model": ValidationFailed},
        503: {},
    },
    openapi_extra=_EVENT_BODY,
)
async def post_events(request: Request, services: ReadyIngest) -> Response:
    """Store one event or a batch of up to 1000, all or nothing; answers once they are committed."""
    if not is_json_media_type(request.headers.get("content-type")):
        return JSONResponse({"detail": JSON_MEDIA_MESSAGE}, status_code=415)
    read = read_events(await request.body(), services.settings.max_batch)
    if isinstance(read, Invalid):
        return _rejected(read.issues)
    return respond(await ingest(services, read.events, read.labels, ingest_source(request)), read)
