"""A fake Qmatic Orchestra: the webhook side of its orchestra-events module, as that module's code has it.

- `GET <hooks>/register?url=U` adds U to an in-memory list unless it is there already, and
  `GET <hooks>/deregister?url=U` removes it; both answer 204 (WebhookController, WebhookRegistry).
- Each event is POSTed as JSON (`Content-Type: application/json`) to every registered URL, once. When
  the request fails at the transport level (refused, reset, timed out) the URL is removed ("Request for
  endpoint {} failed, removing endpoint"); any HTTP answer completes the request, and an error answer
  loses the event just as surely: nothing is ever retried (WebhookService's FutureCallback).

Orchestra posts each event from an executor thread; here each publish is awaited, so the order of the
events is the order they are published in.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

HOOKS_PATH = "/qpevents/hooks"
POST_TIMEOUT_SECONDS = 10.0


@dataclass
class Published:
    event: dict[str, Any]
    # The answers of the registered endpoints: status code, or None for a failed request.
    answers: list[int | None] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return any(answer is not None and 200 <= answer < 300 for answer in self.answers)


class FakeOrchestra:
    def __init__(self) -> None:
        self.endpoints: list[str] = []
        self.removals = 0
        self.published: list[Published] = []
        self._lock = threading.Lock()
        orchestra = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                url = parse_qs(parts.query).get("url", [""])[0]
                if parts.path == f"{HOOKS_PATH}/register" and url:
                    with orchestra._lock:
                        if url not in orchestra.endpoints:
                            orchestra.endpoints.append(url)
                    self.send_response(204)
                elif parts.path == f"{HOOKS_PATH}/deregister" and url:
                    with orchestra._lock:
                        if url in orchestra.endpoints:
                            orchestra.endpoints.remove(url)
                    self.send_response(204)
                else:
                    self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.client = httpx.Client(timeout=POST_TIMEOUT_SECONDS)

    @property
    def hooks_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{HOOKS_PATH}"

    def __enter__(self) -> FakeOrchestra:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.client.close()

    def publish(self, event: dict[str, Any]) -> Published:
        published = Published(event)
        with self._lock:
            endpoints = list(self.endpoints)
        body = json.dumps(event).encode()
        for endpoint in endpoints:
            try:
                response = self.client.post(
                    endpoint, content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.TransportError:
                published.answers.append(None)
                with self._lock:
                    if endpoint in self.endpoints:
                        self.endpoints.remove(endpoint)
                        self.removals += 1
            else:
                published.answers.append(response.status_code)
        self.published.append(published)
        return published

    def wait_registered(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if url in self.endpoints:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"{url} never registered")

    @property
    def delivered(self) -> list[dict[str, Any]]:
        return [published.event for published in self.published if published.delivered]
