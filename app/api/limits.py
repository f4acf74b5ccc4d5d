"""Request bodies over max_body_bytes get 413, for every route (the queue caps are app/ingest.py's)."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _too_large(max_bytes: int) -> HTTPException:
    # The unread rest of the body would otherwise be read (and thrown away) before the next request.
    return HTTPException(413, f"request body larger than {max_bytes} bytes", headers={"Connection": "close"})


# Methods whose routes read a body. Their 413 for a declared length waits for the route to ask for the
# body; any other method's is answered at once, since a file response reads receive() only to notice the
# client leaving, where a refusal would be an error after its answer began.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodySizeLimit:
    """Refuses bodies over max_bytes: at once by Content-Length, else by counting the streamed bytes.

    For a body-carrying method the 413 is raised from receive(), so it comes when the route asks for the
    body: the ingest and admin routes check the token first, so a request without one gets its 401 or 403
    as any other, and a 413 (which the metrics count as rejected events) only answers a client allowed to
    send. A declared length over the limit is refused at the first receive(), before a byte of the body
    is read (and before uvicorn sends `100 Continue`), and whatever answers such a request closes the
    connection. A chunked body has no Content-Length, so the count is what bounds it: the 413 is raised as
    soon as the limit is passed, before the rest is buffered.
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
            if scope["method"] in BODY_METHODS:
                await self._refuse_when_read(scope, send)
            else:
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

    async def _refuse_when_read(self, scope: Scope, send: Send) -> None:
        async def refused() -> Message:
            raise _too_large(self.max_bytes)

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"connection" for name, _ in headers):
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, refused, closing)

    async def _refuse(self, send: Send) -> None:
        body = b'{"detail":"request body larger than %d bytes"}' % self.max_bytes
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
