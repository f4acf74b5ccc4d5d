"""Property tests of the window: order and repeats do not matter, and every figure matches brute force.

Contacts are generated as plausible lifecycles with random times (quarter seconds, so sums are exact in
floating point) around random moments of ordinary and daylight-saving days. The reference is
tests/oracle.py, a loop over contacts written from the brief, independent of app.core.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.events import Channel, Event
from app.core.kpis import Target
from app.core.targets import TargetBook
from app.core.window import Window, WindowConfig, WindowName
from tests.core.factory import CPH, local, snapshot_of
from tests.oracle import Rules, channel_of, contacts_of, expected_channels

MAX_WAIT = 7200.0
DAYS = [date(2026, 6, 15), date(2026, 3, 29), date(2026, 10, 25)]
# Minutes after local midnight: just after midnight (events from yesterday too), around the DST jumps, day.
MOMENTS = [20, 70, 150, 200, 12 * 60, 23 * 60 + 50]
QUEUES = {"phone": ["borgerservice", "pas"], "visit": ["borgerservice", "lobby"]}
TYPES = {
    "phone": {
        "arrive": "call.offered",
        "start": "call.answered",
        "leave": "call.abandoned",
        "finish": "call.ended",
    },
    "visit": {
        "arrive": "ticket.issued",
        "start": "ticket.called",
        "leave": "ticket.cancelled",
        "finish": "ticket.completed",
    },
}
RANK = {"arrive": 0, "start": 1, "leave": 1, "finish": 2}
WINDOWS: tuple[WindowName, ...] = ("15m", "1h", "today")
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def quarters(low: float, high: float) -> st.SearchStrategy[float]:
    return st.integers(int(low * 4), int(high * 4)).map(lambda q: q / 4)


@st.composite
def contact(draw: st.DrawFn, index: int, now: float) -> list[Event]:
    channel = draw(st.sampled_from(["phone", "visit"]))
    queue = draw(st.sampled_from(QUEUES[channel]))
    kind = draw(st.sampled_from(["answered", "answered", "abandoned", "waiting", "no_show", "orphan"]))
    arrive = now - draw(quarters(0, 3 * 3600))
    wait = draw(quarters(0, 400))
    handle = draw(quarters(0, 1200))
    measured = draw(st.sampled_from([None, "exact", "own"]))
    types = TYPES[channel]
    cid = f"{channel}-{index}"
    events: list[dict[str, Any]] = []

    def add(step: str, at: float, **fields: Any) -> None:
        type_ = fields.pop("type", types[step])
        if type_ == "ticket.called":
            fields["desk"] = "7"
        if step in ("start", "leave") and measured is not None:
            fields["wait_seconds"] = wait if measured == "exact" else draw(quarters(0, 400))
        events.append({"type": type_, "at": at, **fields})

    if kind != "orphan":
        add("arrive", arrive, **({"ticket_number": f"A{index:03d}"} if channel == "visit" else {}))
    if kind == "abandoned":
        add("leave", arrive + wait)
    elif kind in ("answered", "orphan") or (kind == "no_show" and channel == "phone"):
        add("start", arrive + wait)
        transfer = channel == "phone" and draw(st.booleans()) and draw(st.booleans())
        resolved = draw(st.sampled_from([True, True, False, None]))
        if transfer:
            add("finish", arrive + wait + handle, type="call.transferred", to_queue="pas", resolved=resolved)
        else:
            add("finish", arrive + wait + handle, resolved=resolved)
    elif kind == "no_show":
        add("start", arrive + wait)
        add("finish", arrive + wait + handle, type="ticket.no_show")
    return [
        Event(event_id=f"{cid}-{n}", contact_id=cid, queue=queue, **fields)
        for n, fields in enumerate(events)
        if fields["at"] <= now  # what has not happened yet is not in the feed
    ]


@st.composite
def scenario(draw: st.DrawFn) -> tuple[float, list[Event], Rules]:
    day = draw(st.sampled_from(DAYS))
    now = (
        local(day.year, day.month, day.day, 0)
        + 60 * draw(st.sampled_from(MOMENTS))
        + draw(st.integers(0, 900))
    )
    count = draw(st.integers(0, 25))
    events = [event for i in range(count) for event in draw(contact(i, now))]
    formula = draw(st.sampled_from(["offered", "answered", "abandons_excluded"]))
    override = draw(st.sampled_from(["offered", "answered", "abandons_excluded"]))
    rules = Rules(
        formula=formula,
        overrides={("phone", "pas"): (30.0, 80.0, override)},
        max_wait_seconds=MAX_WAIT,
    )
    return now, events, rules


def window_for(rules: Rules) -> Window:
    defaults = {
        Channel(channel): Target(rules.thresholds[channel], rules.goals[channel], rules.formula)  # type: ignore[arg-type]
        for channel in ("phone", "visit")
    }
    overrides = {
        (Channel(channel), queue): Target(*target)  # type: ignore[arg-type]
        for (channel, queue), target in rules.overrides.items()
    }
    return Window(WindowConfig(max_wait_seconds=rules.max_wait_seconds), TargetBook(defaults, overrides))


def ordered(events: Sequence[Event]) -> list[Event]:
    return sorted(events, key=lambda e: (e.at, RANK[e.step.value], e.event_id))


def with_duplicates(events: list[Event], rng: random.Random, count: int) -> list[Event]:
    """A shuffled feed with `count` repeats: some re-sent as is, some under a fresh event id."""
    repeats = []
    for n in range(count if events else 0):
        original = rng.choice(events)
        repeats.append(
            original if n % 2 else dataclasses.replace(original, event_id=f"{original.event_id}-again")
        )
    feed = events + repeats
    rng.shuffle(feed)
    return feed


def expected_quality(
    events: Sequence[Event], first_seen: dict[tuple[str, str], float], now: float
) -> dict[str, int]:
    """The data-quality counters that depend on the contacts and the clock, by the README's rules.

    A contact still open is judged when it is forgotten, max_wait after its first event was received.
    An arrival with no outcome is expired once it has waited longer than max_wait; one received already
    that old cannot be waiting, and is expired only if still nothing has come when it is forgotten, so
    the order of its contact's events does not matter.
    """
    expired = orphans = unfinished = 0
    for key, c in contacts_of(events).items():
        steps = c.steps
        others = any(step in steps for step in ("start", "leave", "finish"))
        forgotten = now > first_seen[key] + MAX_WAIT
        if "arrive" not in steps:
            orphans += forgotten
        elif not others:
            arrived = steps["arrive"].at
            received_old = first_seen[key] - arrived > MAX_WAIT
            expired += now - arrived > MAX_WAIT and (forgotten or not received_old)
        elif forgotten and not ("leave" in steps or ("start" in steps and "finish" in steps)):
            unfinished += 1
    return {"expired": expired, "orphans": orphans, "unfinished": unfinished}


def quality(window: Window, now: float) -> dict[str, int]:
    dq: dict[str, int] = snapshot_of(window, "1h", now)["data_quality"]
    return {key: dq[key] for key in ("expired", "orphans", "unfinished")}


LATER = [0, 1, 899, 900, 3599, 3600, 5400, MAX_WAIT + 100]


@SETTINGS
@given(scenario(), st.randoms(use_true_random=False), st.integers(0, 12))
def test_any_order_with_duplicates_gives_the_same_snapshots(
    case: tuple[float, list[Event], Rules], rng: random.Random, repeats: int
) -> None:
    now, events, rules = case
    straight = window_for(rules)
    straight.apply_many(ordered(events), now)
    shuffled = window_for(rules)
    feed = with_duplicates(events, rng, repeats)
    shuffled.apply_many(feed, now)
    for later in LATER:
        for name in WINDOWS:
            a = snapshot_of(straight, name, now + later)
            b = snapshot_of(shuffled, name, now + later)
            assert b["channels"] == a["channels"], (name, later)
        dq_a, dq_b = dict(a["data_quality"]), dict(b["data_quality"])
        assert dq_b.pop("duplicates") == len(feed) - len(events)
        assert dq_a.pop("duplicates") == 0
        assert dq_a.pop("out_of_order") == 0
        # The one counter that is about the order of receipt itself.
        dq_b.pop("out_of_order")
        # Lateness is a property of each delivery, repeats included.
        assert dq_a.pop("late") == sum(e.at < now - 60 for e in events)
        assert dq_b.pop("late") == sum(e.at < now - 60 for e in feed)
        day = datetime.fromtimestamp(now, CPH).date()
        midnight = local(day.year, day.month, day.day, 0)
        assert dq_a.pop("before_today") == sum(e.at < midnight for e in events)
        assert dq_b.pop("before_today") == sum(e.at < midnight for e in feed)
        assert dq_b == dq_a


@SETTINGS
@given(scenario(), st.randoms(use_true_random=False), st.integers(0, 12))
def test_batch_snapshots_equal_brute_force(
    case: tuple[float, list[Event], Rules], rng: random.Random, repeats: int
) -> None:
    """A whole feed delivered at once (shuffled, repeated), read at later and later moments."""
    now, events, rules = case
    window = window_for(rules)
    feed = with_duplicates(events, rng, repeats)
    window.apply_many(feed, now)
    first_seen = {(channel_of(e.type), e.contact_id): now for e in events}
    for later in LATER:
        for name in WINDOWS:
            got = snapshot_of(window, name, now + later)["channels"]
            assert got == expected_channels(events, now + later, name, rules), (name, later)
        assert quality(window, now + later) == expected_quality(events, first_seen, now + later)
    dq = snapshot_of(window, "1h", now + LATER[-1])["data_quality"]
    assert dq["late"] == sum(e.at < now - 60 for e in feed)
    day = datetime.fromtimestamp(now, CPH).date()
    assert dq["before_today"] == sum(e.at < local(day.year, day.month, day.day, 0) for e in feed)
    assert dq["duplicates"] == len(feed) - len(events)


@SETTINGS
@given(scenario(), st.lists(st.integers(-3 * 3600, int(MAX_WAIT) + 1800), max_size=6))
def test_live_snapshots_equal_brute_force(case: tuple[float, list[Event], Rules], marks: list[int]) -> None:
    """Each event applied as it happens; at random checkpoints every window matches brute force."""
    now, events, rules = case
    window = window_for(rules)
    feed = ordered(events)
    checkpoints = sorted({now + mark for mark in marks} | {now})
    first_seen: dict[tuple[str, str], float] = {}
    applied: list[Event] = []
    position = 0
    for checkpoint in checkpoints:
        while position < len(feed) and feed[position].at <= checkpoint:
            event = feed[position]
            window.apply(event, event.at)
            first_seen.setdefault((channel_of(event.type), event.contact_id), event.at)
            applied.append(event)
            position += 1
        for name in WINDOWS:
            got = snapshot_of(window, name, checkpoint)["channels"]
            assert got == expected_channels(applied, checkpoint, name, rules), (name, checkpoint - now)
        assert quality(window, checkpoint) == expected_quality(applied, first_seen, checkpoint)
        dq = snapshot_of(window, "1h", checkpoint)["data_quality"]
        assert (dq["late"], dq["duplicates"], dq["out_of_order"]) == (0, 0, 0)
