"""QUEUESTART: Asterisk (re)started, so the callers queued or talking before it were cut off. Their waits
end without counting as abandons and are counted as `cleared`; waits that began after it go on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.events import Channel
from app.settings import Settings
from tests.asterisk.logs import QueueLog
from tests.asterisk.test_ingest_route import post_log
from tests.asterisk.test_reentry import Clock
from tests.core.factory import ev, make_window, snapshot_of
from tests.running import RunningApp, running_app

QUEUE = "Borgerservice"
SLUG = "borgerservice"
RESTART_AT = 100
READ_AT = 300
COUNTED = (
    "arrived",
    "started",
    "left",
    "finished",
    "waiting_now",
    "waiting_past_target",
    "longest_wait_now_seconds",
    "abandon_rate_pct",
    "avg_handle_seconds",
)
# At READ_AT: c1 (waiting) and c2 (talking) were cleared by the restart at 100 s, c3 had hung up before
# it; c4 (entered in the restart's second) and c5 wait on, for 200 s and 190 s, both past the 60 s target.
EXPECTED = {
    "arrived": 5,
    "started": 1,
    "left": 1,
    "finished": 0,
    "waiting_now": 2,
    "waiting_past_target": 2,
    "longest_wait_now_seconds": 200.0,
    "abandon_rate_pct": 50.0,
    "avg_handle_seconds": None,
}


def noon_days_ago(settings: Settings, days: int) -> int:
    zone = ZoneInfo(settings.time_zone)
    midnight = datetime.combine(datetime.now(zone).date() - timedelta(days=days), datetime.min.time(), zone)
    return int((midnight + timedelta(hours=12)).timestamp())


def restart_log(base: int) -> tuple[QueueLog, QueueLog]:
    """The lines before Asterisk restarted, and the QUEUESTART with the lines after it."""
    before, after = QueueLog(base), QueueLog(base)
    before.add(0, f"{base}.1", QUEUE, "NONE", "ENTERQUEUE", "", "004511111111", 1)
    before.add(10, f"{base}.2", QUEUE, "NONE", "ENTERQUEUE", "", "004522222222", 2)
    before.add(30, f"{base}.2", QUEUE, "SIP/anna", "CONNECT", 20, f"{base}.20", 3)
    before.add(20, f"{base}.3", QUEUE, "NONE", "ENTERQUEUE", "", "004533333333", 3)
    before.add(40, f"{base}.3", QUEUE, "NONE", "ABANDON", 2, 3, 20)
    after.add(RESTART_AT, "NONE", "NONE", "NONE", "QUEUESTART", "")
    after.add(RESTART_AT, f"{base}.4", QUEUE, "NONE", "ENTERQUEUE", "", "004544444444", 1)
    after.add(110, f"{base}.5", QUEUE, "NONE", "ENTERQUEUE", "", "004555555555", 2)
    return before, after


async def queue_counts(api: RunningApp) -> tuple[dict[str, Any], dict[str, int]]:
    kpis: Any = await api.kpis("1h")
    queue = kpis["channels"]["phone"]["queues"][SLUG]
    return {key: queue[key] for key in COUNTED}, kpis["data_quality"]


async def test_a_restart_in_the_same_request_clears_the_waits_before_it(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    base = noon_days_ago(settings, 3)
    before, after = restart_log(base)

    async with running_app(settings, Clock(base + READ_AT)) as api:
        response = await post_log(api, before.text() + after.text())
        kpis, quality = await queue_counts(api)

    assert response.status_code == 200, response.text
    # 7 call lines and a clear for each of c1 and c2.
    assert (response.json()["lines"], response.json()["events"], response.json()["accepted"]) == (8, 9, 9)
    assert response.json()["ignored"] == {}
    assert kpis == EXPECTED
    assert quality.get("cleared") == 2
    query = "SELECT contact_id, extract(epoch FROM occurred_at) FROM events WHERE type = 'call.cleared'"
    async with clean_db.connect() as connection:
        cleared = (await connection.execute(text(query))).all()
    assert sorted((contact, float(at)) for contact, at in cleared) == [
        (f"{base}.1@{SLUG}", float(base + RESTART_AT)),
        (f"{base}.2@{SLUG}", float(base + RESTART_AT)),
    ]


async def test_a_restart_in_a_later_request_clears_what_the_window_holds_open(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    base = noon_days_ago(settings, 3)
    before, after = restart_log(base)
    clock = Clock(base + 50)

    async with running_app(settings, clock) as api:
        assert (await post_log(api, before.text())).json()["accepted"] == 5
        # Another telephony system's caller, posted as plain events: an Asterisk restart is not its end.
        other = {
            "event_id": "other-1",
            "type": "call.offered",
            "contact_id": "other-1",
            "queue": "other-pbx",
            "occurred_at": datetime.fromtimestamp(base + 5, UTC).isoformat(),
            "source": "other-pbx",
        }
        assert (await api.post([other])).status_code == 200
        waiting_before, _ = await queue_counts(api)
        clock.now = base + READ_AT
        restarted = await post_log(api, after.text())
        kpis, quality = await queue_counts(api)
        phone: Any = (await api.kpis("1h"))["channels"]["phone"]  # type: ignore[index]

    assert waiting_before["waiting_now"] == 1
    assert (restarted.json()["events"], restarted.json()["accepted"]) == (4, 4)
    assert kpis == EXPECTED
    assert quality.get("cleared") == 2
    assert phone["queues"]["other-pbx"]["waiting_now"] == 1


async def test_cleared_waits_stay_cleared_across_a_restart_and_a_re_sent_log(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    base = noon_days_ago(settings, 3)
    before, after = restart_log(base)
    clock = Clock(base + 50)

    async with running_app(settings, clock) as api:
        await post_log(api, before.text())
        clock.now = base + READ_AT
        await post_log(api, after.text())
        again = await post_log(api, before.text() + after.text())
        alone = await post_log(api, after.lines[0] + "\n")
        kpis, quality = await queue_counts(api)

    # The log again: its 7 call lines are duplicates, and the window knows c1 and c2 are over, so the
    # restart clears nothing anew.
    assert (again.json()["events"], again.json()["accepted"], again.json()["duplicates"]) == (7, 0, 7)
    # The QUEUESTART alone finds nothing open before it any more.
    assert (alone.json()["events"], alone.json()["accepted"]) == (0, 0)
    assert kpis == EXPECTED
    assert quality.get("cleared") == 2

    async with running_app(settings, clock) as restarted:
        kpis, quality = await queue_counts(restarted)
    assert kpis == EXPECTED
    assert quality.get("cleared") == 2


async def test_cleared_contacts_are_neither_expired_nor_unfinished_later(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    base = noon_days_ago(settings, 3)
    before, after = restart_log(base)
    clock = Clock(base + READ_AT)

    async with running_app(settings, clock) as api:
        await post_log(api, before.text() + after.text())
        # Past MAX_WAIT_SECONDS: only the waits that began after the restart were lost hang-ups.
        clock.now = base + api.services.settings.max_wait_seconds + 3600
        quality: Any = (await api.kpis("today"))["data_quality"]

    assert (quality["cleared"], quality["expired"], quality["unfinished"]) == (2, 2, 0)


async def test_a_call_asterisk_still_writes_about_after_the_restart_is_not_cleared(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    base = noon_days_ago(settings, 3)
    log = QueueLog(base)
    log.add(0, f"{base}.6", QUEUE, "NONE", "ENTERQUEUE", "", "004566666666", 1)
    log.add(0, f"{base}.7", QUEUE, "NONE", "ENTERQUEUE", "", "004577777777", 2)
    log.add(RESTART_AT, "NONE", "NONE", "NONE", "QUEUESTART", "")
    # c6 is answered after the QUEUESTART: it was not cut off. c7 was.
    log.add(RESTART_AT + 20, f"{base}.6", QUEUE, "SIP/anna", "CONNECT", RESTART_AT + 20, f"{base}.60", 1)
    lines = log.lines
    clock = Clock(base + READ_AT)

    async with running_app(settings, clock) as api:
        whole = await post_log(api, log.text())
        # Sent again in two requests, the QUEUESTART last in the first: c6's CONNECT is stored by now.
        first = await post_log(api, "".join(line + "\n" for line in lines[:3]))
        kpis, quality = await queue_counts(api)

    # Three call lines and one clear, for c7.
    assert (whole.json()["events"], whole.json()["accepted"]) == (4, 4)
    assert (first.json()["events"], first.json()["duplicates"]) == (2, 2)
    assert (kpis["arrived"], kpis["started"], kpis["waiting_now"]) == (2, 1, 0)
    assert quality["cleared"] == 1


# ---- the clear step in the window (app/core), which the route's clears go through -------------------


def test_a_clear_ends_a_wait_or_a_service_without_an_outcome_and_only_once() -> None:
    start = 1_780_000_000.0
    window = make_window()
    for event in (
        ev("call.offered", "waiting", start, source="asterisk"),
        ev("call.offered", "talking", start, source="asterisk"),
        ev("call.answered", "talking", start + 10, wait_seconds=10.0),
        ev("call.offered", "done", start, source="asterisk"),
        ev("call.abandoned", "done", start + 5),
        ev("ticket.issued", "lobby", start, ticket_number="A001", source="asterisk"),
    ):
        window.apply(event, start + 20)
    assert window.open_contacts(Channel.PHONE, "asterisk", start + 30) == [
        ("talking", "borgerservice"),
        ("waiting", "borgerservice"),
    ]
    assert window.open_contacts(Channel.PHONE, "asterisk", start) == []
    assert window.open_contacts(Channel.PHONE, "other", start + 30) == []

    for contact in ("waiting", "talking", "done", "waiting"):
        window.apply(ev("call.cleared", contact, start + 30), start + 30)
    snapshot = snapshot_of(window, "1h", start + 40)

    phone = snapshot["channels"]["phone"]["queues"]["borgerservice"]
    assert (phone["arrived"], phone["started"], phone["left"], phone["finished"]) == (3, 1, 1, 0)
    assert phone["waiting_now"] == 0
    # Two clears ended something; the one for the contact that had hung up already ended nothing, and
    # the second for "waiting" is a repeat.
    assert (snapshot["data_quality"]["cleared"], snapshot["data_quality"]["duplicates"]) == (2, 1)
    assert window.open_contacts(Channel.PHONE, "asterisk", start + 60) == []
    assert snapshot["channels"]["visit"]["queues"]["borgerservice"]["waiting_now"] == 1


def test_a_clear_received_before_the_arrival_keeps_the_contact_out_of_waiting() -> None:
    start = 1_780_000_000.0
    window = make_window()
    window.apply(ev("ticket.cleared", "t1", start + 30), start + 40)
    window.apply(ev("ticket.issued", "t1", start, ticket_number="A002"), start + 40)

    snapshot = snapshot_of(window, "1h", start + 50)

    visit = snapshot["channels"]["visit"]["queues"]["borgerservice"]
    assert (visit["arrived"], visit["waiting_now"], visit["left"]) == (1, 0, 0)
    assert snapshot["data_quality"]["cleared"] == 1
