"""The realistic mix: a telephony feed and kiosks posting single events at a steady rate, 50 wall screens
polling /v1/kpis every 2 s and Prometheus scraping /metrics every 15 s.

    QUEUEPULSE_INGEST_TOKEN=... locust -f loadtests/locustfile.py --headless -u 54 -r 54 -t 60s \
        --host http://127.0.0.1:8000

The user classes have fixed counts (1 + 2 + 50 + 1), so -u must be 54. FEED_EVENTS_PER_SECOND sets the
telephony feed's rate (default 20 events/s, a busy centre's peak is a few per second).
"""

from __future__ import annotations

import itertools
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from locust import HttpUser, constant, constant_throughput, task

TOKEN = os.environ.get("QUEUEPULSE_INGEST_TOKEN", "bench-ingest-token")
READ_TOKEN = os.environ.get("QUEUEPULSE_READ_TOKEN")
FEED_RATE = float(os.environ.get("FEED_EVENTS_PER_SECOND", "20"))
PHONE_QUEUES = ("borgerservice", "pas-koerekort", "skat", "ydelser")
CALL_STEPS = ("call.offered", "call.answered", "call.ended")
TICKET_STEPS = ("ticket.issued", "ticket.called", "ticket.completed")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class _Poster(HttpUser):
    abstract = True
    steps: tuple[str, ...] = ()

    def on_start(self) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.counter = itertools.count()

    def _event(self) -> dict[str, Any]:
        n = next(self.counter)
        contact, step = divmod(n, 3)
        kind = self.steps[step]
        event: dict[str, Any] = {
            "event_id": f"{self.tag}-{n}",
            "type": kind,
            "contact_id": f"{self.tag}-c{contact}",
            "occurred_at": _now(),
        }
        if kind.startswith("call."):
            event["queue"] = PHONE_QUEUES[contact % len(PHONE_QUEUES)]
            if kind == "call.answered":
                event["agent"] = f"agent-{contact % 40}"
            elif kind == "call.ended":
                event["resolved"] = True
        else:
            event["queue"] = "pas"
            if kind == "ticket.issued":
                event["ticket_number"] = f"P{contact % 1000:03d}"
            elif kind == "ticket.called":
                event["desk"] = f"desk-{contact % 12 + 1}"
            else:
                event["resolved"] = True
        return event

    def _post(self, name: str) -> None:
        self.client.post(
            "/v1/events", json=self._event(), headers={"Authorization": f"Bearer {TOKEN}"}, name=name
        )


class TelephonyFeed(_Poster):
    """One call-centre integration posting each call state change as it happens."""

    fixed_count = 1
    steps = CALL_STEPS
    wait_time = constant_throughput(FEED_RATE)

    @task
    def post_call_event(self) -> None:
        self._post("POST /v1/events (telephony)")


class Kiosk(_Poster):
    """A ticket kiosk and its desk terminals: a visit step every second or so."""

    fixed_count = 2
    steps = TICKET_STEPS
    wait_time = constant_throughput(1)

    @task
    def post_ticket_event(self) -> None:
        self._post("POST /v1/events (kiosk)")


class WallScreen(HttpUser):
    fixed_count = 50
    wait_time = constant(2)

    @task
    def poll(self) -> None:
        headers = {"Authorization": f"Bearer {READ_TOKEN}"} if READ_TOKEN else {}
        self.client.get("/v1/kpis?window=today", headers=headers, name="GET /v1/kpis (wall screen)")


class Prometheus(HttpUser):
    fixed_count = 1
    wait_time = constant(15)

    @task
    def scrape(self) -> None:
        headers = {"Authorization": f"Bearer {READ_TOKEN}"} if READ_TOKEN else {}
        self.client.get("/metrics", headers=headers, name="GET /metrics (Prometheus)")
