"""Issue 12, defect 2: one ingest client must not fill the queue cap for everybody, for good.

Only committed events admit a queue (a 422, a 503 or a failed commit holds nothing), each ingest token may
take at most QUEUEPULSE_MAX_QUEUES_PER_SOURCE of the cap, and an admin can retire a junk queue (API and
CLI): that frees its place and takes it out of /v1/kpis, /metrics and /v1/reports, across restarts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cli import main
from app.settings import Settings
from tests.metrics.helpers import labelled, parse, value
from tests.running import ADMIN_HEADERS, INGEST_HEADERS, RunningApp, running_app


def _event(event_id: str, queue: str, at: float | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "call.offered",
        "contact_id": event_id,
        "queue": queue,
        "occurred_at": datetime.fromtimestamp(at if at is not None else time.time(), UTC).isoformat(),
        **fields,
    }


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _post(app: RunningApp, body: object, headers: dict[str, str] = INGEST_HEADERS) -> httpx.Response:
    return await app.client.post("/v1/events", json=body, headers=headers)


async def _phone_queues(app: RunningApp) -> list[str]:
    kpis: Any = await app.kpis("today")
    return sorted(kpis["channels"]["phone"]["queues"])


async def _registered(engine: AsyncEngine) -> dict[str, tuple[str | None, bool]]:
    async with engine.connect() as connection:
        rows = (
            await connection.execute(text("SELECT queue, admitted_by, retired_at IS NOT NULL FROM queues"))
        ).all()
    return {row[0]: (row[1], row[2]) for row in rows}


@pytest.fixture
def capped(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_queues": 3, "max_queues_per_source": 3})


@pytest.fixture
async def small(capped: Settings, clean_db: AsyncEngine) -> AsyncIterator[RunningApp]:
    async with running_app(capped) as running:
        yield running


async def test_205_junk_queues_from_one_token_leave_room_for_a_real_queue_from_another(
    settings: Settings, clean_db: AsyncEngine
) -> None:
    from app.db.tokens import create_token

    junk = await create_token(clean_db, "junk-feed")
    async with running_app(settings) as app:
        answers = [await _post(app, _event(f"junk-{n}", f"junk-{n}"), _bearer(junk)) for n in range(205)]
        statuses = [answer.status_code for answer in answers]
        # The default per-source cap is half of QUEUEPULSE_MAX_QUEUES: the junk source gets 100, no more.
        assert statuses == [200] * 100 + [422] * 105
        refused = answers[-1].json()["detail"]
        assert [(issue["index"], issue["field"]) for issue in refused] == [(None, "queue")]
        assert "per ingest source" in refused[0]["message"]
        assert "'junk-feed'" in refused[0]["message"]
        # Another source (here the default token) still has room: its real queue is admitted.
        assert (await _post(app, _event("real-1", "borgerservice"))).status_code == 200
        queues = await _phone_queues(app)
        assert "borgerservice" in queues
        assert len(queues) == 101
    registered = await _registered(clean_db)
    assert registered["borgerservice"] == ("default", False)
    assert registered["junk-0"] == ("junk-feed", False)
    assert "junk-150" not in registered


async def test_the_cap_for_all_still_holds_across_sources(settings: Settings, clean_db: AsyncEngine) -> None:
    from app.db.tokens import create_token

    limits = settings.model_copy(update={"max_queues": 3, "max_queues_per_source": 2})
    other = await create_token(clean_db, "other")
    async with running_app(limits) as app:
        assert (await _post(app, [_event("a", "a"), _event("b", "b")])).status_code == 200
        over_own = await _post(app, _event("c", "c"))
        assert over_own.status_code == 422
        assert "per ingest source" in over_own.json()["detail"][0]["message"]
        assert (await _post(app, _event("c2", "c"), _bearer(other))).status_code == 200
        over_all = await _post(app, _event("d", "d"), _bearer(other))
        assert over_all.status_code == 422
        assert "at most 3 distinct queues" in over_all.json()["detail"][0]["message"]
        samples = parse((await app.client.get("/metrics")).text)
        # c, refused for the default source, was then admitted for "other": only d is left out.
        assert value(samples, "queuepulse_queues_not_exported") == 1
        assert value(samples, "queuepulse_queues", state="admitted") == 3


async def test_a_request_refused_with_422_reserves_nothing(small: RunningApp, clean_db: AsyncEngine) -> None:
    future = time.time() + 3600
    refused = await _post(small, [_event("x1", "x"), _event("bad", "y", at=future)])
    assert refused.status_code == 422
    assert [issue["index"] for issue in refused.json()["detail"]] == [1]
    assert (await _post(small, [_event("a", "a"), _event("b", "b"), _event("c", "c")])).status_code == 200
    assert (await _post(small, _event("x2", "x"))).status_code == 422
    assert sorted(await _registered(clean_db)) == ["a", "b", "c"]


async def test_a_request_refused_with_503_reserves_nothing(capped: Settings, clean_db: AsyncEngine) -> None:
    async with running_app(capped.model_copy(update={"writer_queue_limit": 2})) as app:
        full = await _post(app, [_event("x1", "x"), _event("y1", "y"), _event("z1", "z")])
        assert full.status_code == 503
        assert (await _post(app, [_event("a", "a"), _event("b", "b")])).status_code == 200
        assert (await _post(app, _event("c", "c"))).status_code == 200
        assert sorted(await _phone_queues(app)) == ["a", "b", "c"]


async def test_a_failed_commit_reserves_nothing(small: RunningApp, clean_db: AsyncEngine) -> None:
    async with clean_db.begin() as connection:
        await connection.execute(
            text(
                "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.queue = 'boom' THEN RAISE EXCEPTION 'boom refused'; END IF; RETURN NEW; END $$"
            )
        )
        await connection.execute(
            text(
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON events "
                "FOR EACH ROW EXECUTE FUNCTION refuse_boom()"
            )
        )
    try:
        failed = await _post(small, [_event("boom-1", "boom"), _event("n1", "n")])
        assert failed.status_code == 503
    finally:
        async with clean_db.begin() as connection:
            await connection.execute(text("DROP TRIGGER refuse_boom ON events"))
            await connection.execute(text("DROP FUNCTION refuse_boom()"))
    assert (await _post(small, [_event("a", "a"), _event("b", "b"), _event("c", "c")])).status_code == 200
    assert (await _post(small, _event("boom-2", "boom"))).status_code == 422
    assert sorted(await _registered(clean_db)) == ["a", "b", "c"]


async def test_concurrent_requests_never_take_more_than_the_cap(
    small: RunningApp, clean_db: AsyncEngine
) -> None:
    answers = await asyncio.gather(*(_post(small, _event(f"q{n}", f"q{n}")) for n in range(12)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * 3 + [422] * 9
    assert len(await _registered(clean_db)) == 3
    assert len(await _phone_queues(small)) == 3


async def _report_queues(app: RunningApp) -> set[str | None]:
    response = await app.client.get("/v1/reports", params={"granularity": "day", "channel": "phone"})
    response.raise_for_status()
    return {row["queue"] for row in response.json()["rows"]}


async def _metric_queues(app: RunningApp) -> set[str]:
    samples = parse((await app.client.get("/metrics")).text)
    return {labels["queue"] for labels in labelled(samples, "queuepulse_contacts_waiting")}


async def test_retiring_a_queue_frees_the_cap_and_hides_it_everywhere_for_good(
    small: RunningApp, capped: Settings, clean_db: AsyncEngine
) -> None:
    assert (await _post(small, [_event("a", "a"), _event("b", "b"), _event("c", "c")])).status_code == 200
    assert (await _post(small, _event("d1", "d"))).status_code == 422
    assert small.services.rollup is not None
    await small.services.rollup.flush()
    assert {"a", "b", "c"} <= await _report_queues(small)
    assert await _metric_queues(small) == {"a", "b", "c"}

    retired = await small.client.post("/v1/queues/phone/c/retire", headers=ADMIN_HEADERS)
    assert retired.status_code == 200, retired.text
    assert retired.json()["state"] == "retired"
    assert (await small.client.post("/v1/queues/phone/c/retire", headers=INGEST_HEADERS)).status_code == 403

    later = await _post(small, _event("c2", "c"))
    assert later.status_code == 422
    assert later.json()["detail"][0]["field"] == "queue"
    assert "retired" in later.json()["detail"][0]["message"]
    now = int(time.time())
    from_asterisk = await small.client.post(
        "/v1/ingest/asterisk-queue-log",
        content=f"{now}|{now}.7|c|NONE|ENTERQUEUE|||1\n",
        headers={**INGEST_HEADERS, "Content-Type": "text/plain"},
    )
    assert from_asterisk.status_code == 200, from_asterisk.text
    assert from_asterisk.json()["accepted"] == 0
    assert from_asterisk.json()["errors"][0]["line"] == 1
    assert "retired" in from_asterisk.json()["errors"][0]["reason"]
    assert (await _post(small, _event("d2", "d"))).status_code == 200
    assert await _phone_queues(small) == ["a", "b", "d"]
    kpis: Any = await small.kpis("today")
    assert kpis["channels"]["phone"]["total"]["arrived"] == 3
    assert "c" not in await _metric_queues(small)
    await small.services.rollup.flush()
    reported = await _report_queues(small)
    assert "c" not in reported
    assert {"a", "b", "d"} <= reported
    listed = (await small.client.get("/v1/queues", headers=ADMIN_HEADERS)).json()
    states = {item["queue"]: item["state"] for item in listed["queues"]}
    assert states == {"a": "admitted", "b": "admitted", "c": "retired", "d": "admitted"}

    # A target change rebuilds the window from every stored event, c's too: c stays hidden.
    target = {"threshold_seconds": 30, "goal_pct": 80}
    assert (
        await small.client.put("/v1/targets/phone/a", json=target, headers=ADMIN_HEADERS)
    ).status_code == 200
    assert await _phone_queues(small) == ["a", "b", "d"]
    assert "c" not in await _metric_queues(small)

    async with running_app(capped) as restarted:
        assert await _phone_queues(restarted) == ["a", "b", "d"]
        assert "c" not in await _metric_queues(restarted)
        assert (await _post(restarted, _event("c3", "c"))).status_code == 422
        assert (await _post(restarted, _event("e1", "e"))).status_code == 422
        # Full again (a, b, d): a restore must wait for a place.
        full = await restarted.client.post("/v1/queues/phone/c/restore", headers=ADMIN_HEADERS)
        assert full.status_code == 409
        assert (
            await restarted.client.post("/v1/queues/phone/d/retire", headers=ADMIN_HEADERS)
        ).status_code == 200
        restored = await restarted.client.post("/v1/queues/phone/c/restore", headers=ADMIN_HEADERS)
        assert restored.status_code == 200
        assert restored.json()["state"] == "admitted"
        # Its stored history comes back with it.
        assert await _phone_queues(restarted) == ["a", "b", "c"]
        kpis = await restarted.kpis("today")
        assert kpis["channels"]["phone"]["queues"]["c"]["arrived"] == 1
        assert (await _post(restarted, _event("c4", "c"))).status_code == 200
    unknown = await small.client.post("/v1/queues/phone/nowhere/retire", headers=ADMIN_HEADERS)
    assert unknown.status_code == 404


async def test_the_cli_lists_retires_and_restores(
    small: RunningApp, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.api.queues import refresh_sources

    assert (await _post(small, [_event("a", "a"), _event("b", "b"), _event("c", "c")])).status_code == 200
    monkeypatch.setenv("QUEUEPULSE_DATABASE_URL", database_url)
    monkeypatch.setenv("QUEUEPULSE_MAX_QUEUES", "3")
    capsys.readouterr()
    assert main(["queues", "list"]) == 0
    listing = capsys.readouterr().out
    assert "3 of at most 3 queues admitted" in listing
    assert "phone/c" in listing
    assert "default" in listing

    assert main(["queues", "retire", "phone/c"]) == 0
    assert main(["queues", "retire", "phone/nowhere"]) == 1
    # The service takes up what another process changed at its next refresh (every few seconds).
    await refresh_sources(small.services)
    assert await _phone_queues(small) == ["a", "b"]
    assert (await _post(small, _event("c2", "c"))).status_code == 422
    assert (await _post(small, _event("d1", "d"))).status_code == 200
    capsys.readouterr()
    assert main(["queues", "list"]) == 0
    assert "retired" in capsys.readouterr().out

    assert main(["queues", "restore", "phone/c"]) == 1  # a, b and d are in force
    assert main(["queues", "retire", "phone/d"]) == 0
    assert main(["queues", "restore", "phone/c"]) == 0
    await refresh_sources(small.services)
    assert await _phone_queues(small) == ["a", "b", "c"]
    assert (await _post(small, _event("c3", "c"))).status_code == 200
    assert (await _post(small, _event("d2", "d"))).status_code == 422


async def test_a_retired_ticket_queue_leaves_the_lobby(api: RunningApp) -> None:
    now = time.time()
    tickets = [
        {**_event(f"{queue}-issued", queue, at=now - 60), "type": "ticket.issued", "contact_id": queue}
        for queue in ("pas", "junk")
    ] + [
        {
            **_event(f"{queue}-called", queue, at=now - 30),
            "type": "ticket.called",
            "contact_id": queue,
            "desk": "3",
            "ticket_number": f"{queue.upper()}1",
        }
        for queue in ("pas", "junk")
    ]
    assert (await _post(api, tickets)).status_code == 200
    lobby = (await api.client.get("/v1/lobby")).json()
    assert sorted(call["queue"] for call in lobby["recent_calls"]) == ["junk", "pas"]
    assert (await api.client.post("/v1/queues/visit/junk/retire", headers=ADMIN_HEADERS)).status_code == 200
    lobby = (await api.client.get("/v1/lobby")).json()
    assert [call["queue"] for call in lobby["recent_calls"]] == ["pas"]
    assert [row["queue"] for row in lobby["waiting"]] == ["pas"]
    kpis: Any = await api.kpis("today")
    assert sorted(kpis["channels"]["visit"]["queues"]) == ["pas"]
    assert kpis["channels"]["visit"]["total"]["started"] == 1
