"""A simulated lobby day and how well the expected-wait estimate (app/core/waits.py) kept its word.

    .venv/bin/python -m loadtests.lobby_waits [--seed 1] [--days 20] [--no-desks]

The day: tickets issued 08:00-16:00 at a rate that peaks late morning, service times exponential
(mean 8 minutes), desks opening and closing in shifts (3, then 5 over the peak, then 3), first come first
served, and citizens who give up after an exponential patience (mean 45 minutes) cancel their ticket.
The events go through the same WaitLedger the service runs, in time order; the figures are the share of
called tickets whose actual wait fell inside the announced range and the mean absolute error.
`--no-desks` leaves the desk events out, so the estimate falls back on the throughput.
`tests/test_lobby_waits_api.py` posts a day of this through /v1/events and checks the service records
the same score.
"""

from __future__ import annotations

import argparse
import heapq
import random
from dataclasses import dataclass

from app.core.events import Event
from app.core.waits import Score, WaitLedger, wait_range

DAY_START = 8 * 3600.0
DAY_END = 16 * 3600.0
MEAN_SERVICE = 8 * 60.0
MEAN_PATIENCE = 45 * 60.0
# (from, to, desks) in seconds after midnight: the shifts.
SHIFTS: tuple[tuple[float, float, int], ...] = (
    (8 * 3600.0, 10 * 3600.0, 3),
    (10 * 3600.0, 13 * 3600.0, 5),
    (13 * 3600.0, 16 * 3600.0 + 1800.0, 3),
)
MAX_WAIT = 4 * 3600.0
PEAK_RATE = 42 / 3600
QUEUE = "borgerservice"


def arrival_rate(at: float) -> float:
    """Tickets per second: 22 an hour at opening, 42 at the late-morning peak, 20 in the afternoon."""
    hour = at / 3600
    if hour < 10:
        return 22 / 3600
    if hour < 13:
        return PEAK_RATE
    return 20 / 3600


@dataclass(frozen=True, slots=True)
class Desk:
    name: str
    opens: float
    closes: float


def desks_of_day() -> list[Desk]:
    desks = []
    for shift, (opens, closes, count) in enumerate(SHIFTS):
        desks += [Desk(f"s{shift}d{number}", opens, closes) for number in range(count)]
    return desks


def simulate_day(seed: int, start: float = 0.0, desk_events: bool = True) -> list[Event]:
    """The day's events in time order, `start` being the day's midnight in Unix seconds."""
    rng = random.Random(seed)
    desks = desks_of_day()
    free = {desk.name: desk.opens for desk in desks}
    timed: list[tuple[float, int, Event]] = []
    order = 0

    def emit(
        at: float,
        type_: str,
        contact: str,
        desk: str | None = None,
        ticket_number: str | None = None,
        resolved: bool | None = None,
    ) -> None:
        nonlocal order
        order += 1
        event = Event(
            f"{type_}-{contact}",
            type_,
            contact,
            QUEUE,
            start + at,
            desk=desk,
            ticket_number=ticket_number,
            resolved=resolved,
        )
        timed.append((at, order, event))

    if desk_events:
        for desk in desks:
            emit(desk.opens, "desk.opened", desk.name, desk=desk.name)
    at = DAY_START
    number = 0
    last_start = 0.0
    while True:
        # Thinning a Poisson process at the day's highest rate gives the hour-by-hour rate exactly.
        at += rng.expovariate(PEAK_RATE)
        if at >= DAY_END:
            break
        if rng.random() > arrival_rate(at) / PEAK_RATE:
            continue
        number += 1
        ticket = f"A{number:03d}"
        emit(at, "ticket.issued", ticket, ticket_number=ticket)
        patience = rng.expovariate(1 / MEAN_PATIENCE)
        best: tuple[float, str] | None = None
        for desk in desks:
            begin = max(at, free[desk.name], last_start)
            if begin < desk.closes and (best is None or begin < best[0]):
                best = (begin, desk.name)
        if best is None or best[0] - at > patience:
            emit(at + patience, "ticket.cancelled", ticket)
            continue
        begin, name = best
        last_start = begin
        finish = begin + rng.expovariate(1 / MEAN_SERVICE)
        free[name] = finish
        emit(begin, "ticket.called", ticket, ticket_number=ticket, desk=name)
        emit(finish, "ticket.completed", ticket, resolved=True)
    if desk_events:
        for desk in desks:
            emit(max(desk.closes, free[desk.name]), "desk.closed", desk.name, desk=desk.name)
    return [event for _, _, event in heapq.nsmallest(len(timed), timed)]


def ledger_of_day(events: list[Event]) -> WaitLedger:
    """The events fed to a ledger in time order, as a timely feed stores them."""
    ledger = WaitLedger(MAX_WAIT)
    for event in events:
        ledger.apply(event)
    return ledger


def score_day(events: list[Event]) -> Score:
    total = Score()
    for score in ledger_of_day(events).score(float("-inf"), float("inf")).values():
        total.merge(score)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1, help="the first day's seed; day k uses seed + k")
    parser.add_argument("--days", type=int, default=20, help="simulated days, scored together and one by one")
    parser.add_argument(
        "--no-desks", action="store_true", help="leave the desk events out (throughput fallback)"
    )
    args = parser.parse_args()
    total = Score()
    shares = []
    # The naive rival: announce to everyone the range most actual waits fell in.
    actual: dict[str, int] = {}
    for day in range(args.days):
        ledger = ledger_of_day(simulate_day(args.seed + day, desk_events=not args.no_desks))
        score = Score()
        for found in ledger.score(float("-inf"), float("inf")).values():
            score.merge(found)
        for record in ledger.scored:
            name = wait_range(record.actual_seconds)
            actual[name] = actual.get(name, 0) + 1
        total.merge(score)
        if score.inside_ratio is not None:
            shares.append(score.inside_ratio)
        print(
            f"day {day + 1:2d} (seed {args.seed + day}): {score.scored} scored, "
            f"{100 * (score.inside_ratio or 0):.1f} % inside the range, "
            f"mean abs error {(score.mean_abs_error_seconds or 0) / 60:.2f} min, "
            f"{score.hidden} hidden, {score.left} left"
        )
    mean = sum(shares) / len(shares) if shares else 0.0
    spread = (sum((share - mean) ** 2 for share in shares) / max(1, len(shares) - 1)) ** 0.5
    print(
        f"all {args.days} days ({'throughput fallback' if args.no_desks else 'desks known'}): "
        f"{total.scored} scored, {100 * (total.inside_ratio or 0):.1f} % inside the announced range "
        f"(day to day: {100 * min(shares, default=0):.1f}-{100 * max(shares, default=0):.1f} %, "
        f"sd {100 * spread:.1f} points), mean abs error {(total.mean_abs_error_seconds or 0) / 60:.2f} min, "
        f"{total.hidden} issued with no estimate, {total.left} left after one"
    )
    standard_error = spread / len(shares) ** 0.5 if shares else 0.0
    commonest = max(actual, key=lambda name: actual[name]) if actual else "none"
    print(
        f"uncertainty: the mean daily share {100 * mean:.1f} % +/- {100 * 1.96 * standard_error:.1f} points "
        f"(95 %, from the day-to-day spread); announcing '{commonest}' to everyone would have been right "
        f"for {100 * actual.get(commonest, 0) / max(1, sum(actual.values())):.1f} %"
    )


if __name__ == "__main__":
    main()
