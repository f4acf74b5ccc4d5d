"""The HTTP protocol `queuepulse run` serves with: uvicorn's httptools protocol, bounded against slow or
endless requests.

httptools (llhttp) keeps a header line that has not ended in memory however long it grows, and uvicorn
sets no limit on it (its `h11_max_incomplete_event_size` is for h11 only), nor any deadline on a request
that trickles in: one client could hold megabytes per connection, or a connection for ever. This protocol
counts each request's bytes until its headers are complete (then stops counting, so the fast path only
adds a comparison) and answers 431 past `max_header_bytes`; the headers must be complete within
`header_timeout_seconds` of the request's first byte (or of the connection opening), and the body within
`body_timeout_seconds` of the headers, or the connection is closed.
"""

from __future__ import annotations

import asyncio
import http
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.settings import Settings

DEFAULTS = Settings.model_fields


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a header size limit and header and body deadlines (class attributes)."""

    max_header_bytes: int = DEFAULTS["max_header_bytes"].default
    header_timeout_seconds: float = DEFAULTS["header_timeout_seconds"].default
    body_timeout_seconds: float = DEFAULTS["body_timeout_seconds"].default

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._awaiting_headers = True
        self._header_bytes = 0
        # One timer per connection, re-armed only when it fires early or a sooner deadline comes: setting
        # a deadline per request is then an assignment, not a timer scheduled and cancelled.
        self._deadline: float | None = None
        self._deadline_timer: asyncio.TimerHandle | None = None

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        # A connection that never sends a byte is held no longer than one that sends too slowly.
        self._set_deadline(self.header_timeout_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        while self._awaiting_headers:
            if self._deadline is None:
                # The first byte of the next request on a kept-alive connection.
                self._set_deadline(self.header_timeout_seconds)
            room = self.max_header_bytes - self._header_bytes
            if room <= 0:
                self._refuse(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
                return
            if len(data) <= room:
                self._header_bytes += len(data)
                super().data_received(data)
                return
            # Feed no more than the limit allows, then go round again: the same request still in its
            # headers has no room left, and what follows complete headers (a body, the next request) is
            # fed as it comes.
            piece, data = data[:room], data[room:]
            self._header_bytes += room
            super().data_received(piece)
            if self.transport.is_closing():
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._set_deadline(self.body_timeout_seconds)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_headers = True
        self._header_bytes = 0
        # Until the next request's first byte: while the app answers, and after it uvicorn's keep-alive
        # timeout, bound the wait.
        self._deadline = None

    def _set_deadline(self, seconds: float) -> None:
        deadline = self.loop.time() + seconds
        self._deadline = deadline
        timer = self._deadline_timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._deadline_timer = self.loop.call_at(deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self._deadline_timer = None
        deadline = self._deadline
        if deadline is None or self.transport.is_closing():
            return
        if self.loop.time() < deadline:
            self._deadline_timer = self.loop.call_at(deadline, self._check_deadline)
            return
        if self._awaiting_headers and self._header_bytes:
            self._refuse(http.HTTPStatus.REQUEST_TIMEOUT)
        else:
            # An idle new connection, or a body still arriving: the route reading it (if any) sees the
            # client gone, which the ingest metrics count as 499, not as a server error.
            self.logger.info("closing a connection whose %s did not arrive in time", self._phase())
            self.transport.close()

    def _phase(self) -> str:
        return "request" if self._awaiting_headers else "body"

    def _refuse(self, status: http.HTTPStatus) -> None:
        """Answer a request whose headers never completed (when nothing else is being answered) and close."""
        self.logger.info("refusing a request: %d %s", status.value, status.phrase)
        if self.cycle is None or self.cycle.response_complete:
            message = status.phrase.encode("ascii")
            content = [b"HTTP/1.1 %d %s\r\n" % (status.value, message)]
            for name, value in self.server_state.default_headers:
                content.extend([name, b": ", value, b"\r\n"])
            content.extend(
                [
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: %d\r\n" % len(message),
                    b"connection: close\r\n",
                    b"\r\n",
                    message,
                ]
            )
            self.transport.write(b"".join(content))
        self.transport.close()


def bounded_protocol(settings: Settings) -> type[BoundedHttpToolsProtocol]:
    """The protocol class with the limits of `settings`, for uvicorn's `http=` option."""

    class Configured(BoundedHttpToolsProtocol):
        max_header_bytes = settings.max_header_bytes
        header_timeout_seconds = settings.header_timeout_seconds
        body_timeout_seconds = settings.body_timeout_seconds

    return Configured
