"""The demo feed's simulation: every event it makes passes the API's own validation and tells a story."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

from app.api.schemas import single_event
from app.simulate import Simulation

TZ = ZoneInfo("Europe/Copenhagen")


def simulate(hours: float, seed: int = 3) -> list[dict[str, object]]:
    begin = datetime(2026, 3, 10, 9, 0, tzinfo=TZ).timestamp()  # a Tuesday morning
    simulation = Simulation(
        agents=8, desks=6, load=1.0, tz=TZ, rng=random.Random(seed), run_id="t", now=begin
    )
    return simulation.run_until(begin + hours * 3600)


def test_every_event_is_valid_and_each_contact_follows_its_lifecycle() -> None:
    events = simulate(2)
    steps: dict[str, list[str]] = {}
    times: dict[str, list[float]] = {}
    for body in events:
        event = single_event.validate_python(body)
        steps.setdefault(event.contact_id, []).append(event.type)
        times.setdefault(event.contact_id, []).append(event.at)
    assert len({body["event_id"] for body in events}) == len(events)
    for contact, types in steps.items():
        assert types[0] in ("call.offered", "ticket.issued"), contact
        assert times[contact] == sorted(times[contact])
        assert len(types) == len(set(types)), f"{contact} repeats a step: {types}"
        if "call.abandoned" in types or "ticket.cancelled" in types:
            assert len(types) == 2
    counts = Counter(body["type"] for body in events)
    # Two busy hours: every outcome the screens show occurs, in plausible proportions.
    assert counts["call.offered"] > 200
    assert 0 < counts["call.abandoned"] < counts["call.answered"] / 3
    assert 0 < counts["call.transferred"] < counts["call.ended"] / 5
    assert counts["ticket.issued"] > 80
    assert counts["ticket.called"] > counts["ticket.cancelled"]


def test_tickets_carry_numbers_by_category_and_go_to_real_desks() -> None:
    events = simulate(1)
    called = [body for body in events if body["type"] == "ticket.called"]
    assert called
    prefixes = {"borgerservice": "A", "pas": "P", "koerekort": "K"}
    for body in called:
        number = str(body["ticket_number"])
        assert number[0] == prefixes[str(body["queue"])]
        assert number[1:].isdigit()
        assert len(number) == 4
        assert body["desk"] in {str(desk) for desk in range(1, 7)}


def test_the_same_seed_gives_the_same_stream() -> None:
    first = [(body["type"], body["occurred_at"]) for body in simulate(0.5, seed=9)]
    again = [(body["type"], body["occurred_at"]) for body in simulate(0.5, seed=9)]
    assert first == again
