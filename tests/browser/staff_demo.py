"""Log the simulator's agents in and open its desks, so the screens (and their screenshots) show who is
there to answer: `queuepulse simulate` names agents and desks on its calls and tickets but sends no
staff events of its own.

python -m tests.browser.staff_demo --url http://127.0.0.1:8000 --token "$(cat var/ingest_token)"
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from app.simulate import PHONE_QUEUES, VISIT_QUEUES


def staff_event(event_type: str, queue: str, at: float, **subject: str) -> dict[str, Any]:
    name = subject.get("agent") or subject.get("desk")
    return {
        "event_id": f"staff-demo-{event_type}-{queue}-{name}-{int(at)}",
        "type": event_type,
        "queue": queue,
        "occurred_at": datetime.fromtimestamp(at, UTC).isoformat(),
        **subject,
    }


def demo_events(agents: int, desks: int, at: float) -> list[dict[str, Any]]:
    """Every agent in every phone queue and every desk in every category (the simulator pools them),
    the last agent on a lunch break."""
    events = [
        staff_event("agent.logged_in", queue, at, agent=f"agent-{n:02d}")
        for n in range(1, agents + 1)
        for queue, _ in PHONE_QUEUES
    ]
    events += [
        staff_event("desk.opened", queue, at, desk=str(n))
        for n in range(1, desks + 1)
        for queue, _, _ in VISIT_QUEUES
    ]
    events += [
        staff_event("agent.paused", queue, at + 1, agent=f"agent-{agents:02d}", reason="frokost")
        for queue, _ in PHONE_QUEUES
    ]
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--desks", type=int, default=6)
    args = parser.parse_args()
    events = demo_events(args.agents, args.desks, time.time() - 5)
    response = httpx.post(
        f"{args.url}/v1/events",
        json=events,
        headers={"Authorization": f"Bearer {args.token}"},
        timeout=30,
    )
    response.raise_for_status()
    assert response.json()["accepted"] + response.json()["duplicates"] == len(events)


if __name__ == "__main__":
    main()
