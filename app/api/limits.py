"""Limits with clear answers: request bodies over max_body_bytes get 413, new queues beyond max_queues 422."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.schemas import ValidationIssue
from app.core.events import EVENT_TYPES, Channel, Event


def _too_large(max_bytes: int) -> HTTPException:
    return HTTPException(413, f"request body larger than {max_bytes} bytes")


class BodySizeLimit:
    """Refuses bodies over max_bytes: at once by Content-Length, else by counting the streamed bytes.

    A chunked body has no Content-Length, so the count is what bounds it: the route reading the body gets
    a 413 raised from receive() as soon as the limit is passed, before the rest is buffered.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _too_large(self.max_bytes)
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, send: Send) -> None:
        body = b'{"detail":"request body larger than %d bytes"}' % self.max_bytes
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # The unread body would otherwise be taken for the next request on this connection.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def queue_cap_issues(
    events: Sequence[Event],
    labels: Sequence[int | None],
    known: set[tuple[Channel, str]],
    max_queues: int,
) -> list[ValidationIssue]:
    """Issues for the events that would take the count of distinct queues past max_queues; each issue's
    index is the event's label (its batch index, its log line, or None).

    `known` holds the queues already admitted; those admitted by this batch are added to it only when the
    whole batch fits, so a refused batch leaves nothing behind.
    """
    # Nearly always every queue is admitted already: a batch's few distinct (type, queue) pairs say so
    # without a lookup per event.
    pairs = {(event.type, event.queue) for event in events}
    if all((EVENT_TYPES[event_type][0], queue) in known for event_type, queue in pairs):
        return []
    added: set[tuple[Channel, str]] = set()
    issues = []
    for label, event in zip(labels, events, strict=True):
        key = (event.channel, event.queue)
        if key in known or key in added:
            continue
        if len(known) + len(added) >= max_queues:
            issues.append(
                ValidationIssue(
                    index=label,
                    field="queue",
                    message=(
                        f"at most {max_queues} distinct queues are tracked; {event.queue!r} would be one more"
                    ),
                )
            )
            continue
        added.add(key)
    if not issues:
        known.update(added)
    return issues
