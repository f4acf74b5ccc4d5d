"""Events and scrapes shared by the metrics tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

ARRIVE = {"phone": "call.offered", "visit": "ticket.issued"}
START = {"phone": "call.answered", "visit": "ticket.called"}
LEAVE = {"phone": "call.abandoned", "visit": "ticket.cancelled"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def event(event_type: str, contact: str, queue: str, at: float, **extra: Any) -> dict[str, Any]:
    body = {
        "event_id": f"{contact}:{event_type}",
        "type": event_type,
        "contact_id": contact,
        "queue": queue,
        "occurred_at": datetime.fromtimestamp(at, UTC).isoformat(),
        **extra,
    }
    if event_type == "ticket.called":
        body.setdefault("desk", "3")
    return body


def arrival(channel: str, contact: str, queue: str, at: float) -> dict[str, Any]:
    return event(ARRIVE[channel], contact, queue, at)


def started(channel: str, contact: str, queue: str, arrived_at: float, wait: float) -> dict[str, Any]:
    return event(START[channel], contact, queue, arrived_at + wait)


def left(channel: str, contact: str, queue: str, arrived_at: float, wait: float) -> dict[str, Any]:
    return event(LEAVE[channel], contact, queue, arrived_at + wait)


def parse(text: str) -> Samples:
    """Every sample of a scrape, keyed by sample name and label set."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def labelled(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for sample, labels in samples if sample == name]
