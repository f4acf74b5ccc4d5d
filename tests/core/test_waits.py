"""The lobby's expected wait: the estimator, its fallback and silence, and the ledger that scores it."""

from __future__ import annotations

import random

import pytest

from app.core.events import Event
from app.core.waits import (
    MIN_CALLED,
    MIN_SERVICES,
    CompletedServices,
    Score,
    WaitLedger,
    estimate_wait,
    wait_range,
)
from loadtests.lobby_waits import ledger_of_day, score_day, simulate_day

Q = "borgerservice"


def ev(type_: str, contact: str, at: float, queue: str = Q, **fields: object) -> Event:
    return Event(f"{type_}-{contact}-{at}", type_, contact, queue, at, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "name"),
    [
        (-3, "under_5"),
        (0, "under_5"),
        (299.9, "under_5"),
        (300, "5_10"),
        (599, "5_10"),
        (600, "10_20"),
        (1199.9, "10_20"),
        (1200, "over_20"),
        (10_000, "over_20"),
    ],
)
def test_ranges_have_closed_lower_and_open_upper_bounds(seconds: float, name: str) -> None:
    assert wait_range(seconds) == name


def test_queue_length_estimator_with_every_desk_busy() -> None:
    # 5 ahead, 3 desks all serving, 6 minutes a service: (5 + 1) x 360 / 3 = 720 s.
    found = estimate_wait(
        ahead=5, desks=3, serving=3, mean_service_seconds=360, services=MIN_SERVICES, called_last_hour=0
    )
    assert (found.seconds, found.range, found.basis, found.reason) == (720, "10_20", "queue_length", None)


def test_a_free_desk_means_no_wait_and_counts_against_those_ahead() -> None:
    free = estimate_wait(
        ahead=0, desks=3, serving=2, mean_service_seconds=None, services=0, called_last_hour=0
    )
    assert (free.seconds, free.range) == (0.0, "under_5")
    # Two desks free, four ahead: three services have to end first, at 3 / 400 s.
    busy = estimate_wait(
        ahead=4, desks=3, serving=1, mean_service_seconds=400, services=9, called_last_hour=9
    )
    assert busy.seconds == pytest.approx(3 * 400 / 3)


def test_throughput_fallback_when_desks_are_unknown_or_none_open() -> None:
    unknown = estimate_wait(
        ahead=9, desks=None, serving=0, mean_service_seconds=300, services=20, called_last_hour=12
    )
    # Twelve called in the hour: one every 300 s, so ten to go take 3000 s.
    assert (unknown.basis, unknown.seconds, unknown.range) == ("throughput", 3000.0, "over_20")
    closed = estimate_wait(
        ahead=1, desks=0, serving=0, mean_service_seconds=300, services=20, called_last_hour=12
    )
    assert closed.basis == "throughput"


def test_hidden_with_too_little_data_and_says_why() -> None:
    found = estimate_wait(
        ahead=2, desks=None, serving=0, mean_service_seconds=None, services=0, called_last_hour=MIN_CALLED - 1
    )
    assert found.range is None
    assert found.seconds is None
    assert found.basis is None
    assert found.reason is not None
    assert f"{MIN_CALLED - 1} tickets called" in found.reason
    assert found.as_dict()["minutes"] is None


def test_ledger_gives_the_estimate_in_force_at_issue_and_scores_it_when_called() -> None:
    ledger = WaitLedger(4 * 3600)
    t = 10_000.0
    events = [ev("desk.opened", "d1", t, desk="d1"), ev("desk.opened", "d2", t, desk="d2")]
    # Five services of 300 s each, one after the other at desk d1.
    for n in range(MIN_SERVICES):
        start = t + n * 300
        events += [
            ev("ticket.issued", f"p{n}", start),
            ev("ticket.called", f"p{n}", start, desk="d1"),
            ev("ticket.completed", f"p{n}", start + 300),
        ]
    now = t + MIN_SERVICES * 300 + 1
    # Both desks busy, then three tickets: the third has two ahead, so (2 + 1) x 300 / 2 = 450 s.
    events += [
        ev("ticket.issued", "x1", now),
        ev("ticket.called", "x1", now, desk="d1"),
        ev("ticket.issued", "x2", now),
        ev("ticket.called", "x2", now, desk="d2"),
        ev("ticket.issued", "a", now + 1),
        ev("ticket.issued", "b", now + 2),
        ev("ticket.issued", "c", now + 3),
    ]
    ledger.apply_many(events)
    shown = ledger.estimate(Q, now + 3)
    assert shown.ahead == 3
    assert shown.desks == 2
    assert shown.serving == 2
    assert ledger.given["c"].seconds == pytest.approx(450)
    assert ledger.given["c"].range == "5_10"
    assert ledger.given["a"].seconds == pytest.approx(150)
    # c is called after 700 s: outside 5-10, 250 s off; a after 100 s: inside under 5; b cancels.
    ledger.apply(ev("ticket.called", "a", now + 101, desk="d1"))
    ledger.apply(ev("ticket.cancelled", "b", now + 200))
    ledger.apply(ev("ticket.called", "c", now + 703, desk="d2"))
    score = ledger.score(0, now + 10)[Q]
    # The five first services, x1 and x2 found a desk free (0 s, called at once): inside; a inside, c not.
    assert (score.scored, score.inside, score.left, score.hidden) == (
        MIN_SERVICES + 4,
        MIN_SERVICES + 3,
        1,
        0,
    )
    records = {record.given.contact_id: record for record in ledger.take_new()}
    assert records["a"].inside
    assert not records["c"].inside
    assert records["c"].error_seconds == pytest.approx(250)
    assert ledger.take_new() == []
    # A reported wait is the actual wait.
    ledger.apply(ev("ticket.issued", "r", now + 800))
    ledger.apply(ev("ticket.called", "r", now + 900, wait_seconds=20.0, desk="d1"))
    assert ledger.take_new()[0].actual_seconds == 20.0


def test_the_first_tickets_of_the_day_are_hidden_without_desks() -> None:
    ledger = WaitLedger(4 * 3600)
    ledger.apply(ev("ticket.issued", "first", 100.0))
    assert "first" not in ledger.given
    assert ledger.score(0, 200)[Q].hidden == 1


def test_same_events_same_score_so_a_replay_rebuilds_it() -> None:
    events = simulate_day(3, start=1_700_000_000.0)
    first, second = score_day(events), score_day(events)
    assert first == second
    assert first.scored > 100


def test_simulated_lobby_days_score_better_with_desks_than_without() -> None:
    """The figures the README reports (loadtests/lobby_waits.py, 20 days): asserted loosely here, since a
    few days vary by several points; the estimator must beat a constant and the fallback."""
    with_desks, without = Score(), Score()
    for seed in range(1, 11):
        with_desks.merge(score_day(simulate_day(seed)))
        without.merge(score_day(simulate_day(seed, desk_events=False)))
    assert with_desks.inside_ratio is not None
    assert without.inside_ratio is not None
    assert with_desks.inside_ratio > 0.6
    assert with_desks.inside_ratio > without.inside_ratio
    assert (with_desks.mean_abs_error_seconds or 0) < (without.mean_abs_error_seconds or 0)
    # Announcing the commonest range to everyone (under 5 minutes, most of the day) is right for about
    # 59 % (loadtests/lobby_waits.py prints it): the estimate must do better than that.
    ranges = [
        wait_range(record.actual_seconds)
        for seed in range(1, 11)
        for record in ledger_of_day(simulate_day(seed)).scored
    ]
    commonest = max(ranges.count(name) for name in set(ranges)) / len(ranges)
    assert with_desks.inside_ratio > commonest + 0.05


def test_a_recall_is_one_service_and_a_ticket_older_than_max_wait_is_no_longer_ahead() -> None:
    ledger = WaitLedger(max_wait_seconds=3600)
    ledger.apply(ev("ticket.issued", "old", 0.0))
    ledger.apply(ev("ticket.issued", "r", 10.0))
    ledger.apply(ev("ticket.called", "r", 20.0, desk="1"))
    ledger.apply(ev("ticket.called", "r", 80.0, desk="1"))
    assert ledger.estimate(Q, 100.0).called_last_hour == 1
    assert ledger.estimate(Q, 100.0).ahead == 1
    # An hour and more later the old ticket is taken to have gone (as the window expires it).
    assert ledger.estimate(Q, 3700.0).ahead == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_ledgers_counts_equal_a_recount_of_every_event_so_far(seed: int) -> None:
    """A busy day in three queues, read at random moments: the people ahead, the calls and the services of
    the last hour the ledger keeps sorted (and prunes) equal a count over every event since the start."""
    rng = random.Random(seed)
    max_wait = 4 * 3600.0
    ledger = WaitLedger(max_wait)
    queues = ("pas", "koerekort", "sundhed")
    issued: dict[str, tuple[str, float]] = {}  # contact -> queue, issued at
    waiting: set[str] = set()
    serving: dict[str, tuple[str, float]] = {}  # contact -> queue, called at
    calls: list[tuple[str, float]] = []
    services: list[tuple[str, float, float]] = []  # queue, ended at, duration
    at = 8 * 3600.0
    for n in range(6000):
        at += rng.expovariate(1 / 4.0)
        roll = rng.random()
        if serving and (len(serving) >= 4 or roll > 0.75):
            # Four desks: the longest in service is done first.
            contact = min(serving, key=lambda c: serving[c][1])
            queue, called_at = serving.pop(contact)
            kind = "ticket.completed" if rng.random() < 0.9 else "ticket.no_show"
            if kind == "ticket.completed":
                services.append((queue, at, at - called_at))
            ledger.apply(ev(kind, contact, at, queue))
        elif roll < 0.4 or not waiting:
            contact, queue = f"t{n}", rng.choice(queues)
            issued[contact] = (queue, at)
            waiting.add(contact)
            ledger.apply(ev("ticket.issued", contact, at, queue))
        else:
            contact = rng.choice(sorted(waiting))
            queue = issued[contact][0]
            waiting.discard(contact)
            serving[contact] = (queue, at)
            calls.append((queue, at))
            ledger.apply(ev("ticket.called", contact, at, queue, desk="d1"))
        if n % 97 == 0:
            since = at - 3600.0
            for queue in queues:
                estimate = ledger.estimate(queue, at)
                recent = [duration for q, end, duration in services if q == queue and since < end <= at]
                ahead = [c for c in waiting if issued[c][0] == queue and issued[c][1] >= at - max_wait]
                assert estimate.ahead == len(ahead)
                assert estimate.called_last_hour == sum(
                    1 for q, call in calls if q == queue and since < call <= at
                )
                if recent:
                    # Kept in whole microseconds: exact sums, within a microsecond of the float mean.
                    assert estimate.mean_service_seconds == pytest.approx(sum(recent) / len(recent), abs=1e-6)
                else:
                    assert estimate.mean_service_seconds is None


def test_services_completed_out_of_order_are_counted_as_if_in_order() -> None:
    rng = random.Random(7)
    done = [(rng.uniform(0, 7200), rng.uniform(60, 900)) for _ in range(400)]
    kept = CompletedServices()
    for ended_at, seconds in done:
        kept.add(ended_at, seconds)
    kept.forget_until(1800.0)
    for since in (0.0, 1800.0, 2500.0, 5000.0):
        recent = [
            seconds for ended_at, seconds in done if since < ended_at <= since + 3600 and ended_at > 1800
        ]
        count, mean = kept.within(since, since + 3600)
        assert count == len(recent)
        assert mean == pytest.approx(sum(recent) / len(recent), abs=1e-6)
