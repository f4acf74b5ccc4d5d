"""POST /v1/ingest/asterisk-queue-log against the whole app and a real database: the KPIs that come out
are the ones worked out by hand from the lines of `centre_log`."""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.asterisk.logs import CALLER_ID, DATED_ZONE, QueueLog, centre_log
from tests.running import INGEST_HEADERS, RunningApp, running_app

ROUTE = "/v1/ingest/asterisk-queue-log"
# The log spans 1300 s and ends 200 s ago: every line falls in the rolling hour.
LOG_AGE_SECONDS = 1500
COUNTED = (
    "arrived",
    "started",
    "started_within_target",
    "left",
    "left_after_short_abandon",
    "finished",
    "transferred",
    "waiting_now",
    "waiting_past_target",
    "service_level_pct",
    "avg_wait_seconds",
    "wait_p50_seconds",
    "wait_p90_seconds",
    "abandon_rate_pct",
    "avg_handle_seconds",
    "first_contact_resolution_pct",
)


async def post_log(api: RunningApp, body: str | bytes, **params: str) -> httpx.Response:
    headers = {**INGEST_HEADERS, "Content-Type": "text/plain"}
    return await api.client.post(ROUTE, content=body, headers=headers, params=params)


def counted(kpi: dict[str, Any]) -> dict[str, Any]:
    return {key: kpi[key] for key in COUNTED}


def phone_counts(kpis: dict[str, Any]) -> dict[str, dict[str, Any]]:
    phone = kpis["channels"]["phone"]
    return {"total": counted(phone["total"])} | {
        name: counted(queue) for name, queue in phone["queues"].items()
    }


async def test_kpis_equal_those_worked_out_by_hand_from_the_log(api: RunningApp, engine: AsyncEngine) -> None:
    log = centre_log(int(time.time()) - LOG_AGE_SECONDS)

    response = await post_log(api, log.text(), time_zone=DATED_ZONE)

    assert response.status_code == 200, response.text
    # 48 call lines (c1 3, c2 3, c3-c6 2 each, c7 3, c8 1, c9 2, c10 2, c11 3, c12 5, c13 2, c14 3,
    # c15 2, c16 2, c17-c19 3 each), 5 member lines (2 ADDMEMBER, PAUSE, UNPAUSE, REMOVEMEMBER: staff
    # events), 3 other recognised lines, one unknown verb, and the QUEUESTART that opens the log, which
    # ends no wait and no member session (nothing began before it).
    assert response.json() == {
        "lines": 58,
        "events": 53,
        "accepted": 53,
        "duplicates": 0,
        "ignored": {"CONFIGRELOAD": 1, "RINGCANCELED": 1, "RINGNOANSWER": 1},
        "unknown": {"WRAPUPSTART": 1},
        "errors": [],
    }

    kpis = await api.kpis("1h")
    phone: Any = kpis["channels"]["phone"]  # type: ignore[index]
    assert set(phone["queues"]) == {"borgerservice", "overflow", "pas-og-koerekort"}
    # Borgerservice: arrivals c1-c8, c10-c12 (c9's ENTERQUEUE is missing) = 11.
    # Answered c1 20 s, c2 85 s, c7 30 s, c9 40 s (from CONNECT's hold time), c11 10 s: 5, 4 within 60 s.
    # Left c3 3 s, c4 120 s, c5 300 s, c6 45 s, c10 15 s, c12 60 s: 6, of which 5 after the 5 s limit.
    # c8 is still waiting, for about 1100 s: past the threshold.
    # Service level 4 / (5 + 5 + 1) = 36.36 %. Waits 10, 20, 30, 40, 85: mean 37, median 30, p90 85.
    # Abandon rate 6 / 11. Handle c1 180, c2 300, c7 150, c9 100, c11 190: mean 184.
    # Finished 5, c7 transferred: the other 4 of 5 are resolved at first contact, 80 %.
    assert counted(phone["queues"]["borgerservice"]) == {
        "arrived": 11,
        "started": 5,
        "started_within_target": 4,
        "left": 6,
        "left_after_short_abandon": 5,
        "finished": 5,
        "transferred": 1,
        "waiting_now": 1,
        "waiting_past_target": 1,
        "service_level_pct": round(100 * 4 / 11, 2),
        "avg_wait_seconds": 37.0,
        "wait_p50_seconds": 30.0,
        "wait_p90_seconds": 85.0,
        "abandon_rate_pct": round(100 * 6 / 11, 2),
        "avg_handle_seconds": 184.0,
        "first_contact_resolution_pct": 80.0,
    }
    # Overflow: c12 enters after timing out of Borgerservice, answered after 20 s, talks 119 s.
    assert counted(phone["queues"]["overflow"]) == {
        "arrived": 1,
        "started": 1,
        "started_within_target": 1,
        "left": 0,
        "left_after_short_abandon": 0,
        "finished": 1,
        "transferred": 0,
        "waiting_now": 0,
        "waiting_past_target": 0,
        "service_level_pct": 100.0,
        "avg_wait_seconds": 20.0,
        "wait_p50_seconds": 20.0,
        "wait_p90_seconds": 20.0,
        "abandon_rate_pct": 0.0,
        "avg_handle_seconds": 119.0,
        "first_contact_resolution_pct": 100.0,
    }
    # Pas og Kørekort: arrivals c13-c19 = 7. Answered c14 15 s, c17 90 s (dated lines), c18 10 s,
    # c19 5 s: 4, 3 within. Left c13 2 s (short), c15 100 s and c16 30 s (no wait field: from the
    # ENTERQUEUE times): 3, 2 after the limit. Service level 3 / (4 + 2) = 50 %.
    # Waits 5, 10, 15, 90: mean 30, median 10, p90 90. Abandon rate 3 / 7.
    # Handle c14 100, c17 110, c18 60, c19 60: mean 82.5. c18 and c19 transferred: FCR 2 / 4.
    assert counted(phone["queues"]["pas-og-koerekort"]) == {
        "arrived": 7,
        "started": 4,
        "started_within_target": 3,
        "left": 3,
        "left_after_short_abandon": 2,
        "finished": 4,
        "transferred": 2,
        "waiting_now": 0,
        "waiting_past_target": 0,
        "service_level_pct": 50.0,
        "avg_wait_seconds": 30.0,
        "wait_p50_seconds": 10.0,
        "wait_p90_seconds": 90.0,
        "abandon_rate_pct": round(100 * 3 / 7, 2),
        "avg_handle_seconds": 82.5,
        "first_contact_resolution_pct": 50.0,
    }
    # All phone: 19 arrivals; 10 answered, 8 within; 9 left, 7 after the limit; 1 waiting past.
    # Service level 8 / (10 + 7 + 1). Waits sum 185 + 20 + 120 = 325. Handle 920 + 119 + 330 = 1369.
    # Resolved at first contact 4 + 1 + 2 of 10 served.
    total = counted(phone["total"])
    assert total == {
        "arrived": 19,
        "started": 10,
        "started_within_target": 8,
        "left": 9,
        "left_after_short_abandon": 7,
        "finished": 10,
        "transferred": 3,
        "waiting_now": 1,
        "waiting_past_target": 1,
        "service_level_pct": round(100 * 8 / 18, 2),
        "avg_wait_seconds": 32.5,
        "wait_p50_seconds": 20.0,
        "wait_p90_seconds": 85.0,
        "abandon_rate_pct": round(100 * 9 / 19, 2),
        "avg_handle_seconds": 136.9,
        "first_contact_resolution_pct": 70.0,
    }

    async with engine.connect() as connection:
        reasons: dict[str, int] = dict(
            (
                await connection.execute(
                    text("SELECT reason, count(*) FROM events WHERE type = 'call.abandoned' GROUP BY reason")
                )
            ).all()
        )
        sources = (await connection.execute(text("SELECT DISTINCT source FROM events"))).scalars().all()
        rows = (await connection.execute(text("SELECT row_to_json(events)::text FROM events"))).scalars()
        stored = "\n".join(rows)
    # ABANDON c3, c4, c10; EXITWITHTIMEOUT c5, c12, c15; EXITWITHKEY c6, c16; EXITEMPTY c13.
    assert reasons == {"ABANDON": 3, "EXITWITHTIMEOUT": 3, "EXITWITHKEY": 2, "EXITEMPTY": 1}
    assert sources == ["asterisk"]
    # Caller ids are dropped: none of the numbers in the ENTERQUEUE lines is stored anywhere.
    for line in log.lines:
        fields = line.split("|")
        if fields[4] == "ENTERQUEUE" and fields[6]:
            assert fields[6] not in stored
    assert CALLER_ID not in stored


async def test_reading_the_same_log_again_counts_nothing_twice(api: RunningApp) -> None:
    log = centre_log(int(time.time()) - LOG_AGE_SECONDS)
    first = await post_log(api, log.text(), time_zone=DATED_ZONE)
    # 48 call events and 5 member events.
    assert first.json()["accepted"] == 53
    before = await api.kpis("1h")
    staff_before = (await api.client.get("/v1/staff", params={"window": "1h"})).json()

    again = await post_log(api, log.text(), time_zone=DATED_ZONE)

    assert again.status_code == 200, again.text
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 53)
    after = await api.kpis("1h")
    staff_after = (await api.client.get("/v1/staff", params={"window": "1h"})).json()
    # Everything counted stays; only the live longest wait moves on with the clock.
    assert phone_counts(after) == phone_counts(before)
    assert after["data_quality"]["duplicates"] == 53  # type: ignore[index]
    # The agents' states now are the same (their seconds go on with the clock).
    now_fields = ("staffed", "available", "on_contact", "paused")
    phone_before, phone_after = staff_before["channels"]["phone"], staff_after["channels"]["phone"]
    assert {name: phone_after["total"][name] for name in now_fields} == {
        name: phone_before["total"][name] for name in now_fields
    }


async def test_kpis_come_back_the_same_after_a_restart(api: RunningApp, settings: Settings) -> None:
    log = centre_log(int(time.time()) - LOG_AGE_SECONDS)
    assert (await post_log(api, log.text(), time_zone=DATED_ZONE)).status_code == 200
    before = phone_counts(await api.kpis("1h"))

    async with running_app(settings) as restarted:
        after = phone_counts(await restarted.kpis("1h"))

    assert after == before
    assert set(after) == {"total", "borgerservice", "overflow", "pas-og-koerekort"}
    assert after["borgerservice"]["arrived"] == 11


async def test_lines_that_cannot_be_used_are_reported_and_the_others_stored(api: RunningApp) -> None:
    now = int(time.time())
    log = QueueLog(now - 100)
    log.add(0, f"{now}.1", "Borgerservice", "NONE", "ENTERQUEUE", "", "", 1)
    lines = [
        *log.lines,  # 1: used
        "this is not a queue_log line",  # 2
        f"{now - 90}|{now}.1|Borgerservice|SIP/anna|CONNECT|abc|{now}.9|3",  # 3
        f"yesterday|{now}.2|Borgerservice|NONE|ENTERQUEUE||99887766|1",  # 4
        f"{now + 3600}|{now}.3|Borgerservice|NONE|ENTERQUEUE|||1",  # 5: an hour in the future
        f"{now - 80}|{now}.4|Borgerservice|NONE|ABANDON|1|1|999999",  # 6: a wait of 11 days
        f"{now - 80}|{now}.5|Borgerservice|NONE|FOO|1",  # 7: unknown verb
        "",  # 8: blank
        f"{now - 80}|NONE|Borgerservice|NONE|ENTERQUEUE|||1",  # 9: no call id
        f"{now - 80}|{now}.\x006|Borgerservice|NONE|ENTERQUEUE|||1",  # 10: NUL in the call id
    ]
    body = "\n".join(lines).encode() + b"\n"
    # 11: an older system writing Latin-1: the queue name still reads as "Kørekort".
    body += f"{now - 70}|{now}.7|Kørekort|NONE|ENTERQUEUE|||1\n".encode("latin-1")

    response = await post_log(api, body)

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["lines"], result["events"], result["accepted"]) == (10, 2, 2)
    assert result["unknown"] == {"FOO": 1}
    reasons = {issue["line"]: issue["reason"] for issue in result["errors"]}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 9, 10]
    assert reasons[2] == "expected at least 5 |-separated fields, found 1"
    assert reasons[3] == "CONNECT: hold time: not a number"
    assert reasons[4] == "ENTERQUEUE: time: neither Unix seconds nor a date"
    assert reasons[5].startswith("occurred_at: is more than 300 seconds in the future")
    assert reasons[6].startswith("wait_seconds:")
    assert reasons[9] == "ENTERQUEUE: uniqueid: missing on a call line"
    assert reasons[10] == "contact_id: must not contain NUL characters"
    phone: Any = (await api.kpis("15m"))["channels"]["phone"]  # type: ignore[index]
    assert {name: queue["arrived"] for name, queue in phone["queues"].items()} == {
        "borgerservice": 1,
        "koerekort": 1,
    }


async def test_refusals_change_nothing(api: RunningApp) -> None:
    now = int(time.time())
    line = f"{now}|{now}.1|Borgerservice|NONE|ENTERQUEUE|||1\n"

    missing = await api.client.post(ROUTE, content=line)
    wrong = await api.client.post(ROUTE, content=line, headers={"Authorization": "Bearer nope"})
    zone = await post_log(api, line, time_zone="Mars/Olympus_Mons")
    too_many = await post_log(api, line * 10_001)
    too_big = await post_log(api, "x" * (api.services.settings.max_body_bytes + 1))

    assert [r.status_code for r in (missing, wrong, zone, too_many, too_big)] == [401, 403, 422, 413, 413]
    phone: Any = (await api.kpis("15m"))["channels"]["phone"]  # type: ignore[index]
    assert phone["total"]["arrived"] == 0


async def test_queues_beyond_the_limit_are_line_errors(settings: Settings, clean_db: AsyncEngine) -> None:
    now = int(time.time())
    log = QueueLog(now - 60)
    for n, queue in enumerate(["Alfa", "Beta", "Gamma", "Alfa", "Gamma"], start=1):
        log.add(n, f"{now}.{n}", queue, "NONE", "ENTERQUEUE", "", "", 1)

    async with running_app(settings.model_copy(update={"max_queues": 2})) as api:
        response = await post_log(api, log.text())
        phone: Any = (await api.kpis("15m"))["channels"]["phone"]  # type: ignore[index]

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["events"], result["accepted"]) == (3, 3)
    assert [issue["line"] for issue in result["errors"]] == [3, 5]
    assert result["errors"][0]["reason"].startswith("queue: at most 2 distinct queues")
    assert {name: queue["arrived"] for name, queue in phone["queues"].items()} == {"alfa": 2, "beta": 1}
