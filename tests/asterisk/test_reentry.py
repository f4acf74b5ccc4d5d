"""A caller who enters the same queue again (transferred back, or sent on by a timeout and routed back)
makes one contact per visit, however the lines are split over requests, and across a restart of the
service; a re-sent line stays a duplicate."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.asterisk.visits import Stored, resolve, visit_number
from app.core.events import Event
from app.settings import Settings
from tests.asterisk.logs import CALLER_ID, QueueLog
from tests.asterisk.test_ingest_route import post_log
from tests.running import RunningApp, running_app

QUEUE = "Borgerservice"
SLUG = "borgerservice"
LOG_AGE_SECONDS = 600


def transfer_back_and_fall_over(base: int) -> tuple[QueueLog, str, str]:
    """Two channels that each visit Borgerservice twice; the uniqueids of both."""
    log = QueueLog(base)
    back, over = f"{base}.41", f"{base}.44"
    # Anna answers after 20 s and blind-transfers the caller back into the queue after 60 s of talk;
    # bo answers the second visit after 30 s, and the caller hangs up after 120 s.
    log.add(0, back, QUEUE, "NONE", "ENTERQUEUE", "", CALLER_ID, 1)
    log.add(20, back, QUEUE, "SIP/anna", "CONNECT", 20, f"{base}.42", 4)
    log.add(80, back, QUEUE, "SIP/anna", "BLINDTRANSFER", 2100, "from-internal", 20, 60, 1)
    log.add(81, back, QUEUE, "NONE", "ENTERQUEUE", "", CALLER_ID, 2)
    log.add(111, back, QUEUE, "SIP/bo", "CONNECT", 30, f"{base}.43", 3)
    log.add(231, back, QUEUE, "SIP/bo", "COMPLETECALLER", 30, 120, 2)
    # The queue's 60 s timeout sends the second caller on; the dialplan puts the channel straight back
    # into the queue in the same second, and the caller hangs up there after 25 s.
    log.add(10, over, QUEUE, "NONE", "ENTERQUEUE", "", "004512121212", 2)
    log.add(70, over, QUEUE, "NONE", "EXITWITHTIMEOUT", 1, 2, 60)
    log.add(70, over, QUEUE, "NONE", "ENTERQUEUE", "", "004512121212", 1)
    log.add(95, over, QUEUE, "NONE", "ABANDON", 1, 1, 25)
    return log, back, over


# Four visits: answered after 20 s and 30 s (both within 60 s), left after 60 s and 25 s; the first
# visit of the first channel transferred after 60 s of talk, its second completed after 120 s.
EXPECTED = {
    "arrived": 4,
    "started": 2,
    "started_within_target": 2,
    "left": 2,
    "left_after_short_abandon": 2,
    "finished": 2,
    "transferred": 1,
    "waiting_now": 0,
    "avg_wait_seconds": 25.0,
    "avg_handle_seconds": 90.0,
    "abandon_rate_pct": 50.0,
}


async def counts(api: RunningApp, window: str = "1h") -> dict[str, Any]:
    queue: dict[str, Any] = (await api.kpis(window))["channels"]["phone"]["queues"][SLUG]  # type: ignore[index]
    return {key: queue[key] for key in EXPECTED}


async def stored_contacts(engine: AsyncEngine) -> dict[str, list[str]]:
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT contact_id, type FROM events ORDER BY id"))).all()
    contacts: dict[str, list[str]] = {}
    for contact_id, event_type in rows:
        contacts.setdefault(contact_id, []).append(event_type)
    return contacts


def expected_contacts(back: str, over: str) -> dict[str, list[str]]:
    return {
        f"{back}@{SLUG}": ["call.offered", "call.answered", "call.transferred"],
        f"{back}@{SLUG}#2": ["call.offered", "call.answered", "call.ended"],
        f"{over}@{SLUG}": ["call.offered", "call.abandoned"],
        f"{over}@{SLUG}#2": ["call.offered", "call.abandoned"],
    }


async def test_each_enterqueue_opens_a_visit_of_its_own(api: RunningApp, engine: AsyncEngine) -> None:
    log, back, over = transfer_back_and_fall_over(int(time.time()) - LOG_AGE_SECONDS)

    response = await post_log(api, log.text())

    assert response.status_code == 200, response.text
    assert (response.json()["events"], response.json()["accepted"]) == (10, 10)
    assert await counts(api) == EXPECTED
    assert {key: sorted(types) for key, types in (await stored_contacts(engine)).items()} == {
        key: sorted(types) for key, types in expected_contacts(back, over).items()
    }


async def test_a_visit_split_over_requests_is_put_together(api: RunningApp, engine: AsyncEngine) -> None:
    log, back, over = transfer_back_and_fall_over(int(time.time()) - LOG_AGE_SECONDS)

    # The hardest split: every line in a request of its own, as a follower with --batch-lines 1 sends.
    for line in log.lines:
        response = await post_log(api, line + "\n")
        assert (response.status_code, response.json()["accepted"]) == (200, 1), response.text

    assert await counts(api) == EXPECTED
    assert await stored_contacts(engine) == expected_contacts(back, over)


async def test_a_visit_goes_on_across_a_restart_of_the_service(
    api: RunningApp, settings: Settings, engine: AsyncEngine
) -> None:
    log, back, over = transfer_back_and_fall_over(int(time.time()) - LOG_AGE_SECONDS)
    lines = log.lines
    # Up to the first channel's second ENTERQUEUE: what follows it must find that visit in the store.
    cut = lines.index(next(line for line in lines if line.startswith(f"{log.base + 81}|")))
    first = await post_log(api, "\n".join(lines[: cut + 1]) + "\n")
    assert first.json()["accepted"] == cut + 1

    async with running_app(settings) as restarted:
        rest = await post_log(restarted, "\n".join(lines[cut + 1 :]) + "\n")
        assert (rest.status_code, rest.json()["accepted"]) == (200, len(lines) - cut - 1), rest.text
        assert await counts(restarted) == EXPECTED
    assert await stored_contacts(engine) == expected_contacts(back, over)


async def test_re_sent_lines_stay_duplicates(api: RunningApp, engine: AsyncEngine) -> None:
    log, back, over = transfer_back_and_fall_over(int(time.time()) - LOG_AGE_SECONDS)
    assert (await post_log(api, log.text())).json()["accepted"] == 10

    whole = await post_log(api, log.text())
    one_by_one = [await post_log(api, line + "\n") for line in log.lines]
    # The first visits' lines again, now that the second visits are stored.
    first_visits = await post_log(api, "".join(line + "\n" for line in log.lines[:4]))

    assert (whole.json()["accepted"], whole.json()["duplicates"]) == (0, 10)
    assert [(r.json()["accepted"], r.json()["duplicates"]) for r in one_by_one] == [(0, 1)] * 10
    assert (first_visits.json()["accepted"], first_visits.json()["duplicates"]) == (0, 4)
    assert await counts(api) == EXPECTED
    assert await stored_contacts(engine) == expected_contacts(back, over)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_return_near_the_hour_counts_as_many_finished_as_started(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    """The first visit ends, the caller comes back to the queue just under an hour later, and the second
    visit's end is received just over an hour after the first visit closed."""
    zone = ZoneInfo(settings.time_zone)
    midnight = datetime.combine(datetime.now(zone).date() - timedelta(days=3), datetime.min.time(), zone)
    base = int((midnight + timedelta(hours=12)).timestamp())
    uid = f"{base}.7"
    log = QueueLog(base)
    log.add(0, uid, QUEUE, "NONE", "ENTERQUEUE", "", CALLER_ID, 1)
    log.add(10, uid, QUEUE, "SIP/anna", "CONNECT", 10, f"{base}.8", 3)
    # Anna hands the caller to a colleague, who talks for most of an hour and sends the caller back.
    log.add(70, uid, QUEUE, "SIP/anna", "ATTENDEDTRANSFER", "BRIDGE", f"{base}.9", 10, 60, 1)
    log.add(3550, uid, QUEUE, "NONE", "ENTERQUEUE", "", CALLER_ID, 1)
    log.add(3570, uid, QUEUE, "SIP/bo", "CONNECT", 20, f"{base}.10", 2)
    log.add(3700, uid, QUEUE, "SIP/bo", "COMPLETEAGENT", 20, 130, 1)
    lines = log.lines
    clock = Clock(base + 71)

    async with running_app(settings, clock) as api:
        sent = [await post_log(api, "".join(line + "\n" for line in lines[:3]))]
        clock.now = base + 3571
        sent.append(await post_log(api, "".join(line + "\n" for line in lines[3:5])))
        clock.now = base + 3701
        sent.append(await post_log(api, lines[5] + "\n"))
        today = await counts(api, "today")

    assert [response.json()["accepted"] for response in sent] == [3, 2, 1]
    assert (today["arrived"], today["started"], today["finished"]) == (2, 2, 2)
    assert today["avg_handle_seconds"] == (60 + 130) / 2


class NothingLive:
    def open_before(self, at: float) -> list[tuple[str, str]]:
        return []

    def over_by(self, contact_id: str, at: float) -> bool:
        return False


NOTHING_LIVE = NothingLive()


def offered(event_id: str, at: float, base: str = "1.1@q") -> Event:
    return Event(event_id, "call.offered", base, "q", at, source="asterisk")


def test_a_line_belongs_to_the_latest_visit_entered_at_or_before_it() -> None:
    stored = Stored(arrivals={"1.1@q": [("1.1@q", 100.0), ("1.1@q#2", 200.0)]})
    later = offered("e3", 300.0)
    lines: list[tuple[int, Any]] = [
        (1, Event("a1", "call.answered", "1.1@q", "q", 150.0)),  # between the stored visits: the first
        (2, Event("a2", "call.abandoned", "1.1@q", "q", 250.0)),  # after the second
        (3, later),  # a third visit
        (4, Event("a4", "call.answered", "1.1@q", "q", 310.0)),
        (5, Event("a5", "call.answered", "9.9@q", "q", 50.0)),  # no visit known: the first
    ]

    resolution = resolve(lines, stored, NOTHING_LIVE)

    assert [event.contact_id for _, event in resolution.events] == [
        "1.1@q",
        "1.1@q#2",
        "1.1@q#3",
        "1.1@q#3",
        "9.9@q",
    ]


def test_a_stored_line_keeps_its_stored_contact_and_ids_that_are_no_visits_are_left_out() -> None:
    stored = Stored(
        arrivals={"1.1@q": [("1.1@q", 100.0), ("1.1@q#2", 200.0), ("1.1@q#x", 250.0), ("1.1@q#02", 260.0)]},
        contacts={"e2": "1.1@q#2"},
    )

    resolution = resolve([(1, offered("e2", 200.0)), (2, offered("e9", 400.0))], stored, NOTHING_LIVE)

    assert [event.contact_id for _, event in resolution.events] == ["1.1@q#2", "1.1@q#3"]
    assert [visit_number("1.1@q", c) for c in ("1.1@q", "1.1@q#2", "1.1@q#x", "1.1@q#02", "1.1@qq")] == [
        1,
        2,
        None,
        None,
        None,
    ]
