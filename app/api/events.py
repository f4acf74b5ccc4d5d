"""POST /v1/events: validate, commit through the group-commit writer, then answer."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from app.api.auth import ReadyIngest
from app.api.limits import queue_cap_issues
from app.api.schemas import (
    EVENT_JSON_SCHEMA,
    IngestResult,
    ValidationFailed,
    ValidationIssue,
    event_batch,
    future_issues,
    single_event,
)
from app.db.writer import Backpressure, StoreUnavailable

router = APIRouter(prefix="/v1", tags=["ingest"])

RETRY_AFTER_SECONDS = "1"


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
    responses={401: {}, 403: {}, 413: {}, 422: {"model": ValidationFailed}, 503: {}},
    openapi_extra=_EVENT_BODY,
)
async def post_events(request: Request, services: ReadyIngest) -> Response:
    """Store one event or a batch of up to 1000, all or nothing; answers once they are committed."""
    body = await request.body()
    batch = body.lstrip()[:1] == b"["
    try:
        stored = event_batch.validate_json(body) if batch else [single_event.validate_json(body)]
    except ValidationError as error:
        return _rejected(_issues(_located(error, body, batch), batch))
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
    late = future_issues(stored, time.time(), services.settings.max_future_seconds)
    if late:
        return _rejected(late)
    if len(services.queues) < len(services.window.series):
        services.queues.update(services.window.series)
    capped = queue_cap_issues(
        stored, range(len(stored)) if batch else [None], services.queues, services.settings.max_queues
    )
    if capped:
        return _rejected(capped)
    try:
        accepted, duplicates = await services.writer.submit(stored)
    except Backpressure:
        return _unavailable("ingest queue is full; retry shortly")
    except StoreUnavailable as error:
        return _unavailable(f"events not stored: {error}")
    return Response(
        IngestResult(accepted=accepted, duplicates=duplicates).model_dump_json(),
        media_type="application/json",
    )
