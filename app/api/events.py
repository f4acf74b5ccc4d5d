"""POST /v1/events: validate, commit through the group-commit writer, then answer."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from app.api.auth import ReadyIngest, ingest_source
from app.api.limits import queue_cap_issues
from app.api.queues import submit_admitting
from app.api.schemas import (
    EVENT_JSON_SCHEMA,
    IngestResult,
    ValidationFailed,
    ValidationIssue,
    duplicate_key_issues,
    event_batch,
    occurred_at_issues,
    single_event,
)
from app.db.writer import Backpressure, Conflict, Refused, StoreUnavailable

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


def _unavailable(message: str) -> Response:
    return JSONResponse({"detail": message}, status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS})


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
    body = await request.body()
    batch = body.lstrip()[:1] == b"["
    try:
        stored = event_batch.validate_json(body) if batch else [single_event.validate_json(body)]
    except ValidationError as error:
        return _rejected(_issues(_located(error, body, batch), batch))
    repeated = duplicate_key_issues(body, stored, batch)
    if repeated:
        return _rejected(repeated)
    if len(stored) > services.settings.max_batch:
        return _rejected(
            [
                ValidationIssue(
                    index=None,
                    field=None,
                    message=f"a batch holds at most {services.settings.max_batch} events",
                )
            ]
        )
    settings = services.settings
    misdated = occurred_at_issues(stored, time.time(), settings.max_future_seconds, settings.max_past_days)
    if misdated:
        return _rejected(misdated)
    source = ingest_source(request)
    capped, held = queue_cap_issues(
        stored,
        range(len(stored)) if batch else [None],
        services.queues,
        source,
        settings.max_queues,
        settings.max_queues_per_source,
    )
    if capped:
        return _rejected(capped)
    try:
        accepted, duplicates = await submit_admitting(services, stored, source, held)
    except Backpressure:
        return _unavailable("ingest queue is full; retry shortly")
    except Conflict as error:
        services.metrics.conflicted(clash.type for clash in error.clashes)
        issues = [
            ValidationIssue(index=clash.index if batch else None, field="event_id", message=clash.message)
            for clash in error.clashes
        ]
        return JSONResponse(ValidationFailed(detail=issues).model_dump(), status_code=409)
    except Refused as error:
        return _rejected([ValidationIssue(index=None, field=None, message=f"events not stored: {error}")])
    except StoreUnavailable as error:
        return _unavailable(f"events not stored: {error}")
    return Response(
        IngestResult(accepted=accepted, duplicates=duplicates).model_dump_json(),
        media_type="application/json",
    )
