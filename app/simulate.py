"""`queuepulse simulate`: a live demo feed posting a realistic stream of calls and tickets in real time.

A small discrete-event simulation: phone calls and lobby tickets arrive as Poisson streams whose rate
follows a weekday time-of-day profile; a pool of agents answers calls and a pool of desks calls tickets,
first come first served; callers with too little patience hang up, a share of calls is transferred to
another queue, a few tickets are cancelled or not answered when called. Events are posted as they
happen, stamped with the current time, through the same ingest API the telephony system uses.
`--backfill` first plays the earlier part of today quickly, so the charts have a shape at once (the
command itself is app/cli/simulate.py).
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

# Relative arrival rate per local hour on a weekday: the morning peak of a citizen-service centre.
# Outside opening hours the rate stays at a floor so a demo started in the evening still moves.
HOURLY_PROFILE = {
    8: 0.7, 9: 1.0, 10: 1.0, 11: 0.9, 12: 0.7, 13: 0.8, 14: 0.7, 15: 0.5, 16: 0.4, 17: 0.35,
}  # fmt: skip
OFF_HOURS_RATE = 0.5

# (queue, share of calls); phone calls per minute at the peak with the default --load.
PHONE_QUEUES = (("borgerservice", 0.55), ("pension", 0.25), ("sundhed", 0.20))
PHONE_PEAK_PER_MINUTE = 2.8
PHONE_HANDLE_MEAN_SECONDS = 160.0
PHONE_PATIENCE_MEAN_SECONDS = 150.0
PHONE_TRANSFER_SHARE = 0.08
PHONE_RESOLVED_SHARE = 0.84

# (queue, ticket letter, share of tickets)
VISIT_QUEUES = (("borgerservice", "A", 0.5), ("pas", "P", 0.35), ("koerekort", "K", 0.15))
VISIT_PEAK_PER_MINUTE = 1.45
VISIT_SERVICE_MEAN_SECONDS = 250.0
VISIT_PATIENCE_MEAN_SECONDS = 40 * 60.0
VISIT_NO_SHOW_SHARE = 0.03
VISIT_NO_SHOW_WAIT_SECONDS = 45.0  # a desk waits this long for a ticket holder who does not come
VISIT_RESOLVED_SHARE = 0.8

BATCH_LIMIT = 1000

log = logging.getLogger("queuepulse.simulate")


def profile(at: float, tz: ZoneInfo) -> float:
    local = datetime.fromtimestamp(at, tz)
    if local.weekday() >= 5:
        return OFF_HOURS_RATE
    return HOURLY_PROFILE.get(local.hour, OFF_HOURS_RATE)


@dataclass
class Contact:
    id: str
    channel: str
    queue: str
    arrived: float
    ticket_number: str | None = None
    served: bool = False
    gone: bool = False


@dataclass
class Simulation:
    """The centre's state; run_until(t) advances simulated time and returns the events that happened."""

    agents: int
    desks: int
    load: float
    tz: ZoneInfo
    rng: random.Random
    run_id: str
    now: float
    queue_phone: list[Contact] = field(default_factory=list)
    queue_visit: list[Contact] = field(default_factory=list)
    free_agents: list[str] = field(default_factory=list)
    free_desks: list[str] = field(default_factory=list)
    agenda: list[tuple[float, int, str, Any]] = field(default_factory=list)
    ticket_counters: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    _seq: int = 0

    def __post_init__(self) -> None:
        self.free_agents = [f"agent-{n:02d}" for n in range(1, self.agents + 1)]
        self.free_desks = [str(n) for n in range(1, self.desks + 1)]
        self._schedule(self.now, "phone_arrival", None)
        self._schedule(self.now, "visit_arrival", None)

    def _schedule(self, at: float, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self.agenda, (at, self._seq, kind, payload))

    def _event(
        self, out: list[dict[str, Any]], at: float, type_: str, contact: Contact, **extra: Any
    ) -> None:
        self._seq += 1
        self.counts[type_] = self.counts.get(type_, 0) + 1
        event = {
            "event_id": f"sim-{self.run_id}-{self._seq}",
            "type": type_,
            "contact_id": contact.id,
            "queue": extra.pop("queue", contact.queue),
            "occurred_at": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
            "source": "simulator",
        }
        event.update({key: value for key, value in extra.items() if value is not None})
        out.append(event)

    def run_until(self, until: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while self.agenda and self.agenda[0][0] <= until:
            at, _, kind, payload = heapq.heappop(self.agenda)
            self.now = at
            getattr(self, f"_on_{kind}")(out, at, payload)
        self.now = until
        return out

    # Arrivals: a Poisson stream at the peak rate, thinned by the profile (a non-homogeneous process).
    def _next_arrival(self, at: float, kind: str, peak_per_minute: float) -> None:
        rate = peak_per_minute * self.load / 60.0
        self._schedule(at + self.rng.expovariate(rate), kind, None)

    def _on_phone_arrival(self, out: list[dict[str, Any]], at: float, _: Any) -> None:
        self._next_arrival(at, "phone_arrival", PHONE_PEAK_PER_MINUTE)
        if self.rng.random() > profile(at, self.tz):
            return
        queue = self.rng.choices([q for q, _ in PHONE_QUEUES], [w for _, w in PHONE_QUEUES])[0]
        self._call_arrives(out, at, queue)

    def _call_arrives(self, out: list[dict[str, Any]], at: float, queue: str) -> None:
        contact = Contact(id=f"sim-{self.run_id}-call-{self._seq}", channel="phone", queue=queue, arrived=at)
        self._event(out, at, "call.offered", contact)
        self.queue_phone.append(contact)
        # Some dialled wrong and hang up at once; the rest wait a while before giving up.
        patience = (
            self.rng.uniform(1, 5)
            if self.rng.random() < 0.05
            else self.rng.expovariate(1 / PHONE_PATIENCE_MEAN_SECONDS)
        )
        self._schedule(at + patience, "abandon", contact)
        self._dispatch(out, at)

    def _on_visit_arrival(self, out: list[dict[str, Any]], at: float, _: Any) -> None:
        self._next_arrival(at, "visit_arrival", VISIT_PEAK_PER_MINUTE)
        if self.rng.random() > profile(at, self.tz):
            return
        queue, letter, _ = self.rng.choices(VISIT_QUEUES, [w for _, _, w in VISIT_QUEUES])[0]
        number = self.ticket_counters.get(letter, 0) % 999 + 1
        self.ticket_counters[letter] = number
        contact = Contact(
            id=f"sim-{self.run_id}-ticket-{self._seq}",
            channel="visit",
            queue=queue,
            arrived=at,
            ticket_number=f"{letter}{number:03d}",
        )
        self._event(out, at, "ticket.issued", contact, ticket_number=contact.ticket_number)
        self.queue_visit.append(contact)
        self._schedule(at + self.rng.expovariate(1 / VISIT_PATIENCE_MEAN_SECONDS), "abandon", contact)
        self._dispatch(out, at)

    def _on_abandon(self, out: list[dict[str, Any]], at: float, contact: Contact) -> None:
        if contact.served or contact.gone:
            return
        contact.gone = True
        if contact.channel == "phone":
            self.queue_phone.remove(contact)
            self._event(out, at, "call.abandoned", contact)
        else:
            self.queue_visit.remove(contact)
            self._event(out, at, "ticket.cancelled", contact, ticket_number=contact.ticket_number)

    def _dispatch(self, out: list[dict[str, Any]], at: float) -> None:
        while self.free_agents and self.queue_phone:
            contact = self.queue_phone.pop(0)
            agent = self.free_agents.pop(0)
            contact.served = True
            self._event(out, at, "call.answered", contact, agent=agent)
            handle = self.rng.lognormvariate(math.log(PHONE_HANDLE_MEAN_SECONDS) - 0.18, 0.6)
            self._schedule(at + handle, "call_done", (contact, agent))
        while self.free_desks and self.queue_visit:
            contact = self.queue_visit.pop(0)
            desk = self.free_desks.pop(0)
            contact.served = True
            self._event(out, at, "ticket.called", contact, desk=desk, ticket_number=contact.ticket_number)
            if self.rng.random() < VISIT_NO_SHOW_SHARE:
                self._schedule(at + VISIT_NO_SHOW_WAIT_SECONDS, "no_show", (contact, desk))
            else:
                service = self.rng.lognormvariate(math.log(VISIT_SERVICE_MEAN_SECONDS) - 0.18, 0.6)
                self._schedule(at + service, "visit_done", (contact, desk))

    def _on_call_done(self, out: list[dict[str, Any]], at: float, payload: tuple[Contact, str]) -> None:
        contact, agent = payload
        self.free_agents.append(agent)
        if self.rng.random() < PHONE_TRANSFER_SHARE:
            others = [q for q, _ in PHONE_QUEUES if q != contact.queue]
            target = self.rng.choice(others)
            self._event(out, at, "call.transferred", contact, to_queue=target)
            self._call_arrives(out, at, target)
        else:
            resolved = self.rng.random() < PHONE_RESOLVED_SHARE
            self._event(out, at, "call.ended", contact, resolved=resolved)
        self._dispatch(out, at)

    def _on_visit_done(self, out: list[dict[str, Any]], at: float, payload: tuple[Contact, str]) -> None:
        contact, desk = payload
        self.free_desks.append(desk)
        resolved = self.rng.random() < VISIT_RESOLVED_SHARE
        self._event(out, at, "ticket.completed", contact, desk=desk, resolved=resolved)
        self._dispatch(out, at)

    def _on_no_show(self, out: list[dict[str, Any]], at: float, payload: tuple[Contact, str]) -> None:
        contact, desk = payload
        self.free_desks.append(desk)
        self._event(out, at, "ticket.no_show", contact, desk=desk)
        self._dispatch(out, at)


class PostRefused(Exception):
    """The service refused the events for good (a wrong token, a rule they break): retrying cannot help."""


class Poster:
    """Posts batches to /v1/events, retrying while the service is down or pushing back."""

    def __init__(self, url: str, token: str, retry_seconds: float = 2.0) -> None:
        self.endpoint = url.rstrip("/") + "/v1/events"
        self.token = token
        self.retry_seconds = retry_seconds

    def post(self, events: list[dict[str, Any]]) -> None:
        for start in range(0, len(events), BATCH_LIMIT):
            self._post_batch(events[start : start + BATCH_LIMIT])

    def _post_batch(self, batch: list[dict[str, Any]]) -> None:
        body = json.dumps(batch).encode()
        while True:
            request = urllib.request.Request(
                self.endpoint,
                data=body,
                method="POST",
                headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    response.read()
                return
            except urllib.error.HTTPError as error:
                detail = error.read().decode(errors="replace")[:500]
                if error.code in (401, 403, 413, 422):
                    # Retrying cannot help: say why and stop rather than post into the void.
                    raise PostRefused(f"the service refused the events ({error.code}): {detail}") from error
                log.warning("simulate: %s from the service, retrying: %s", error.code, detail)
            except (urllib.error.URLError, OSError) as error:
                log.warning("simulate: cannot reach %s (%s), retrying", self.endpoint, error)
            time.sleep(self.retry_seconds)
