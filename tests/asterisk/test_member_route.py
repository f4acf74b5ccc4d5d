"""Member lines through POST /v1/ingest/asterisk-queue-log into GET /v1/staff, on a real database: members
in several queues, an agent-pool login, PAUSEALL, re-sent lines, and a QUEUESTART that ends every session."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.asterisk.logs import QueueLog
from tests.asterisk.test_ingest_route import post_log
from tests.asterisk.test_queuestart import noon_days_ago
from tests.asterisk.test_reentry import Clock
from tests.running import ADMIN_HEADERS, RunningApp, running_app

BS, PAS = "Borgerservice", "Pas og Kørekort"
READ_AT = 400
NOW_FIELDS = ("staffed", "available", "ringing", "on_contact", "after_contact_work", "paused")


def morning(base: int) -> QueueLog:
    """anna joins two queues, bo one; Agent/1001 logs in to the agent pool (queue NONE) and is placed by
    the call it answers; bo pauses everywhere (PAUSEALL, then one PAUSE per queue he is in)."""
    log = QueueLog(base)
    log.add(0, "NONE", "NONE", "NONE", "QUEUESTART", "")
    log.add(10, "MANAGER", BS, "PJSIP/anna", "ADDMEMBER", "")
    log.add(10, "MANAGER", PAS, "PJSIP/anna", "ADDMEMBER", "")
    log.add(20, f"{base}.90", BS, "PJSIP/bo", "ADDMEMBER", "")
    log.add(30, f"{base}.91", "NONE", "Agent/1001", "AGENTLOGIN", "PJSIP/1001-0000005b")
    log.add(100, f"{base}.1", BS, "NONE", "ENTERQUEUE", "", "004511111111", 1)
    log.add(110, f"{base}.1", BS, "PJSIP/anna", "CONNECT", 10, f"{base}.2", 3)
    log.add(290, f"{base}.1", BS, "PJSIP/anna", "COMPLETECALLER", 10, 180, 1)
    log.add(120, f"{base}.3", BS, "NONE", "ENTERQUEUE", "", "004522222222", 1)
    log.add(125, f"{base}.3", BS, "Agent/1001", "CONNECT", 5, f"{base}.4", 2)
    log.add(200, "NONE", "NONE", "PJSIP/bo", "PAUSEALL", "")
    log.add(200, "NONE", BS, "PJSIP/bo", "PAUSE", "Frokost")
    return log


async def staff(api: RunningApp, **params: str) -> dict[str, Any]:
    response = await api.client.get("/v1/staff", params={"window": "15m", **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def now_counts(figures: dict[str, Any]) -> dict[str, Any]:
    return {name: figures[name] for name in NOW_FIELDS} | {"paused_by_reason": figures["paused_by_reason"]}


def counts(*values: int, reasons: dict[str, int] | None = None) -> dict[str, Any]:
    return dict(zip(NOW_FIELDS, values, strict=True)) | {"paused_by_reason": reasons or {}}


async def test_members_in_several_queues_from_asterisk_lines(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    base = noon_days_ago(settings, 1)
    clock = Clock(base + READ_AT)
    log = morning(base)

    async with running_app(settings, clock) as api:
        first = await post_log(api, log.text())
        again = await post_log(api, log.text())
        shown = await staff(api, channel="phone")

        # 5 call events; anna 2 logins, bo 1 and a pause, Agent/1001 1 login (in Borgerservice, where
        # the request's CONNECT places him). PAUSEALL is only a marker.
        assert first.status_code == 200, first.text
        assert first.json()["errors"] == []
        assert (first.json()["events"], first.json()["accepted"]) == (10, 10)
        assert first.json()["ignored"] == {"PAUSEALL": 1}
        # Every line again: the same event ids, stored once.
        assert (again.json()["events"], again.json()["accepted"], again.json()["duplicates"]) == (10, 0, 10)

        phone = shown["channels"]["phone"]
        assert set(shown["channels"]) == {"phone"}
        # At 400 s: anna free again (her call ended at 290 s), Agent/1001 talking, bo paused for lunch.
        assert now_counts(phone["queues"]["borgerservice"]) == counts(
            3, 1, 0, 1, 0, 1, reasons={"Frokost": 1}
        )
        assert now_counts(phone["queues"]["pas-og-koerekort"]) == counts(1, 1, 0, 0, 0, 0)
        # anna is in two queues and counted once in the total.
        assert now_counts(phone["total"]) == counts(3, 1, 0, 1, 0, 1, reasons={"Frokost": 1})
        total = phone["total"]
        # Seconds since each joined: anna 390, bo 380, Agent/1001 370. Available: anna 100 + 110,
        # bo 180, Agent/1001 95; handling: anna 180, Agent/1001 275; paused: bo 200.
        assert (total["staffed_seconds"], total["available_seconds"]) == (1140.0, 485.0)
        assert (total["handling_seconds"], total["paused_seconds"]) == (455.0, 200.0)
        assert total["occupancy"] == round(455 / (455 + 485), 4)
        # Per-person figures are off by default.
        assert "members" not in shown

        # Asterisk restarts at 500 s: every session begun before it ends, in every queue, and the call
        # Agent/1001 was on is cleared.
        clock.now = base + 600
        restart = QueueLog(base)
        restart.add(500, "NONE", "NONE", "NONE", "QUEUESTART", "")
        cut = await post_log(api, restart.text())
        assert (cut.json()["events"], cut.json()["accepted"]) == (5, 5)
        assert (await post_log(api, restart.text())).json()["accepted"] == 0
        assert now_counts((await staff(api))["channels"]["phone"]["total"]) == counts(0, 0, 0, 0, 0, 0)

        # Agent/1001 logs in again: the window knows his queue now, without a line placing him there.
        pool = QueueLog(base)
        pool.add(550, f"{base}.95", "NONE", "Agent/1001", "AGENTLOGIN", "PJSIP/1001-0000005c")
        login = await post_log(api, pool.text())
        assert (login.json()["events"], login.json()["errors"]) == (1, [])
        shown = await staff(api, queue="borgerservice")
        assert list(shown["channels"]["phone"]["queues"]) == ["borgerservice"]
        assert now_counts(shown["channels"]["phone"]["queues"]["borgerservice"]) == counts(1, 1, 0, 0, 0, 0)

        pool.add(580, f"{base}.95", "NONE", "Agent/1001", "AGENTLOGOFF", "PJSIP/1001-0000005c", 30)
        logoff = await post_log(api, pool.text())
        assert (logoff.json()["events"], logoff.json()["accepted"]) == (2, 1)
        assert now_counts((await staff(api))["channels"]["phone"]["total"]) == counts(0, 0, 0, 0, 0, 0)
        # A logoff with nothing open (sent alone once more) is counted as ignored, not as an error.
        alone = QueueLog(base)
        alone.add(590, f"{base}.96", "NONE", "Agent/2002", "AGENTLOGOFF", "PJSIP/2002-0000005d", 30)
        assert (await post_log(api, alone.text())).json()["ignored"] == {"AGENTLOGOFF": 1}

    # After a restart of the service, the replayed window shows the same.
    async with running_app(settings, clock) as api:
        replayed = await staff(api)
        assert now_counts(replayed["channels"]["phone"]["total"]) == counts(0, 0, 0, 0, 0, 0)
        assert replayed["channels"]["phone"]["total"]["staffed_seconds"] > 0


async def test_staff_route_shows_members_only_with_the_setting(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    base = noon_days_ago(settings, 1)
    log = QueueLog(base)
    log.add(10, "MANAGER", BS, "PJSIP/anna", "ADDMEMBER", "PAUSED")
    settings.per_agent_figures = True

    async with running_app(settings, Clock(base + 100)) as api:
        assert (await post_log(api, log.text())).json()["accepted"] == 2
        shown = await staff(api)
        bad = await api.client.get("/v1/staff", params={"window": "2h"})

    assert shown["members"] == [
        {
            "channel": "phone",
            "subject": "PJSIP/anna",
            "state": "paused",
            "reason": None,
            "queues": ["borgerservice"],
            "since": shown["members"][0]["since"],
        }
    ]
    assert now_counts(shown["channels"]["phone"]["total"]) == counts(
        1, 0, 0, 0, 0, 1, reasons={"unspecified": 1}
    )
    assert bad.status_code == 422


async def test_staff_route_needs_the_read_token_when_one_is_set(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    settings.read_token = "test-read-token"
    async with running_app(settings) as api:
        refused = await api.client.get("/v1/staff")
        allowed = await api.client.get("/v1/staff", headers={"Authorization": "Bearer test-read-token"})

    assert refused.status_code == 401
    assert allowed.status_code == 200
    assert isinstance(allowed.json()["channels"], dict)


async def test_a_retired_queue_takes_no_session_events(settings: Settings, clean_db: AsyncEngine) -> None:
    """Agent/1001 is a member of Borgerservice and Pension; Pension is retired: his next login leaves it
    out (a line error), and the rest of the request is stored."""
    base = noon_days_ago(settings, 1)
    clock = Clock(base + 100)
    log = QueueLog(base)
    log.add(10, "MANAGER", BS, "Agent/1001", "ADDMEMBER", "")
    log.add(10, "MANAGER", "Pension", "Agent/1001", "ADDMEMBER", "")
    async with running_app(settings, clock) as api:
        assert (await post_log(api, log.text())).json()["accepted"] == 2
        retire = await api.client.post("/v1/queues/phone/pension/retire", headers=ADMIN_HEADERS)
        assert retire.status_code == 200, retire.text
        later = QueueLog(base)
        later.add(50, "NONE", "NONE", "NONE", "QUEUESTART", "")
        later.add(60, f"{base}.9", "NONE", "Agent/1001", "AGENTLOGIN", "PJSIP/1001-00000009")
        clock.now = base + 120
        response = await post_log(api, later.text())

    body = response.json()
    assert response.status_code == 200, response.text
    assert (body["events"], body["accepted"]) == (2, 2)
    # The restart ends the Borgerservice session only (retiring Pension dropped its sessions from the
    # window); the login opens Borgerservice and reports Pension.
    assert [(issue["line"], issue["reason"]) for issue in body["errors"]] == [
        (2, "queue: 'pension' is retired")
    ]
