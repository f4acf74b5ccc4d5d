"""GET /metrics on the whole app in-process: figures equal /v1/kpis, counters and buckets are exact."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from tests.metrics.helpers import Samples, arrival, event, labelled, left, parse, started, value
from tests.running import RunningApp, running_app

PHONE_QUEUE = "metrics-a"
VISIT_QUEUE = "metrics-b"


async def scrape(api: RunningApp) -> Samples:
    response = await api.client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def scenario(now: float) -> list[dict[str, Any]]:
    base = float(int(now) - 600)  # whole seconds, so a wait of exactly 60 s stays exactly 60 s
    return [
        *(arrival("phone", f"p{i}", PHONE_QUEUE, base) for i in range(1, 6)),
        started("phone", "p1", PHONE_QUEUE, base, 60.0),  # exactly the target: within, and in le=60
        started("phone", "p2", PHONE_QUEUE, base, 60.4),  # whole-second bin 60, yet not within 60 s
        started("phone", "p3", PHONE_QUEUE, base, 10.0),
        left("phone", "p4", PHONE_QUEUE, base, 3.0),  # a short abandon
        left("phone", "p5", PHONE_QUEUE, base, 100.0),
        arrival("phone", "p6", PHONE_QUEUE, now - 200),  # waiting, already past the target
        arrival("phone", "p7", PHONE_QUEUE, now - 1),  # waiting, within the target so far
        arrival("visit", "v1", VISIT_QUEUE, base),
        arrival("visit", "v2", VISIT_QUEUE, base),
        started("visit", "v1", VISIT_QUEUE, base, 300.0),
        started("visit", "v2", VISIT_QUEUE, base, 300.5),
    ]


def expected_ratio(kpi: dict[str, Any]) -> float:
    """The offered formula from the KPI object's exact counts."""
    denominator = kpi["started"] + kpi["left_after_short_abandon"] + kpi["waiting_past_target"]
    ratio: float = kpi["started_within_target"] / denominator
    return ratio


async def test_live_gauges_equal_kpis_in_every_window(api: RunningApp, settings: Settings) -> None:
    assert (await api.post(scenario(time.time()))).status_code == 200
    samples = await scrape(api)
    for window in ("15m", "1h", "today"):
        kpis: Any = await api.kpis(window)
        for channel, queue in (("phone", PHONE_QUEUE), ("visit", VISIT_QUEUE)):
            kpi = kpis["channels"][channel]["queues"][queue]
            level = value(
                samples, "queuepulse_service_level_ratio", channel=channel, queue=queue, window=window
            )
            assert level == expected_ratio(kpi)
            assert round(level * 100, 2) == kpi["service_level_pct"]
            total = kpis["channels"][channel]["total"]
            channel_level = value(
                samples, "queuepulse_channel_service_level_ratio", channel=channel, window=window
            )
            assert round(channel_level * 100, 2) == total["service_level_pct"]
    labels = {"channel": "phone", "queue": PHONE_QUEUE}
    assert value(samples, "queuepulse_service_level_ratio", window="1h", **labels) == 2 / 5
    assert value(samples, "queuepulse_service_level_goal_ratio", **labels) == settings.phone_goal_pct / 100
    assert value(samples, "queuepulse_service_level_target_seconds", **labels) == 60
    assert value(samples, "queuepulse_contacts_waiting", **labels) == 2
    assert value(samples, "queuepulse_contacts_waiting_past_target", **labels) == 1
    longest = value(samples, "queuepulse_longest_wait_seconds", **labels)
    later: Any = await api.kpis("15m")
    assert (
        200 <= longest <= later["channels"]["phone"]["queues"][PHONE_QUEUE]["longest_wait_now_seconds"] + 0.05
    )
    assert value(samples, "queuepulse_contacts_waiting", channel="visit", queue=VISIT_QUEUE) == 0
    assert value(samples, "queuepulse_longest_wait_seconds", channel="visit", queue=VISIT_QUEUE) == 0


async def test_counters_and_exact_wait_buckets(api: RunningApp) -> None:
    assert (await api.post(scenario(time.time()))).status_code == 200
    samples = await scrape(api)
    phone = {"channel": "phone", "queue": PHONE_QUEUE}
    assert value(samples, "queuepulse_contacts_arrived_total", **phone) == 7
    assert value(samples, "queuepulse_contacts_started_total", **phone) == 3
    assert value(samples, "queuepulse_contacts_started_within_target_total", **phone) == 2
    assert value(samples, "queuepulse_contacts_left_total", **phone) == 2
    assert value(samples, "queuepulse_contacts_left_after_short_abandon_total", **phone) == 1

    def bucket(le: str, **labels: str) -> float:
        return value(samples, "queuepulse_wait_seconds_bucket", le=le, **labels)

    # 60.0 is within le=60, 60.4 is not: the bucket equals the exact within-target count.
    assert bucket("30", **phone) == 1
    assert bucket("60", **phone) == 2
    assert bucket("60", **phone) == value(samples, "queuepulse_contacts_started_within_target_total", **phone)
    assert bucket("90", **phone) == 3
    assert bucket("+Inf", **phone) == value(samples, "queuepulse_wait_seconds_count", **phone) == 3
    assert value(samples, "queuepulse_wait_seconds_sum", **phone) == pytest.approx(130.4)
    visit = {"channel": "visit", "queue": VISIT_QUEUE}
    assert bucket("240", **visit) == 0
    assert bucket("300", **visit) == 1
    assert bucket("300", **visit) == value(
        samples, "queuepulse_contacts_started_within_target_total", **visit
    )
    assert bucket("420", **visit) == 2
    bounds = [float(labels["le"]) for labels in labelled(samples, "queuepulse_wait_seconds_bucket")]
    assert {60.0, 300.0} <= set(bounds)


async def test_events_by_type_and_result_and_ingest_health(api: RunningApp) -> None:
    now = time.time()
    assert (await api.post(scenario(now))).status_code == 200
    # Retries repeat p1's arrival exactly (scenario's whole-second base): another time would be a conflict.
    base = float(int(now) - 600)
    assert (await api.post(arrival("phone", "p1", PHONE_QUEUE, base))).json() == {
        "accepted": 0,
        "duplicates": 1,
    }
    mixed = [arrival("phone", "p1", PHONE_QUEUE, base), arrival("phone", "p8", PHONE_QUEUE, now)]
    assert (await api.post(mixed)).json() == {"accepted": 1, "duplicates": 1}
    bad_queue = event("call.offered", "x1", "Not A Slug", now)
    assert (await api.post([bad_queue, bad_queue | {"type": "ticket.issued"}])).status_code == 422
    refused = await api.client.post(
        "/v1/events", content=b"not json", headers={"Authorization": "Bearer test-ingest-token"}
    )
    assert refused.status_code == 422
    assert (await api.client.post("/v1/events", json=bad_queue)).status_code == 401

    samples = await scrape(api)

    def events(event_type: str, result: str) -> float:
        return value(samples, "queuepulse_events_total", type=event_type, result=result)

    assert events("call.offered", "accepted") == 8
    assert events("call.offered", "duplicate") == 2
    assert events("call.answered", "accepted") == 3
    assert events("ticket.called", "accepted") == 2
    assert events("call.offered", "rejected") == 1
    assert events("ticket.issued", "rejected") == 1
    assert events("unknown", "rejected") == 1
    assert events("call.ended", "accepted") == 0  # every type and result exists from the start
    assert value(samples, "queuepulse_ingest_request_duration_seconds_count", status="200") == 3
    assert value(samples, "queuepulse_ingest_request_duration_seconds_count", status="422") == 2
    assert value(samples, "queuepulse_ingest_request_duration_seconds_count", status="401") == 1
    committed = value(samples, "queuepulse_commit_batch_events_sum")
    assert committed == len(scenario(now)) + 1 + 2
    assert value(samples, "queuepulse_commit_batch_events_count") >= 1
    assert value(samples, "queuepulse_commit_duration_seconds_count") == value(
        samples, "queuepulse_commit_batch_events_count"
    )
    assert value(samples, "queuepulse_database_errors_total") == 0
    assert value(samples, "queuepulse_ready") == 1
    assert value(samples, "queuepulse_replay_duration_seconds") == api.services.replay_seconds
    assert value(samples, "queuepulse_data_quality_issues", kind="duplicates") == 2
    (build,) = labelled(samples, "queuepulse_build_info")
    assert build["version"] == api.app.version


async def test_counters_survive_the_window_sliding(settings: Settings, clean_db: AsyncEngine) -> None:
    offset = [0.0]
    async with running_app(settings, clock=lambda: time.time() + offset[0]) as api:
        assert (await api.post(scenario(time.time()))).status_code == 200
        before = await scrape(api)
        offset[0] = 2 * 3600.0  # two hours on: the rolling windows hold none of these events
        after = await scrape(api)
        rolled: Any = await api.kpis("1h")
    phone = {"channel": "phone", "queue": PHONE_QUEUE}
    assert rolled["channels"]["phone"]["queues"][PHONE_QUEUE]["started"] == 0
    assert ("queuepulse_service_level_ratio", frozenset({**phone, "window": "1h"}.items())) in before
    counters = [
        name for name, _ in before if name.startswith("queuepulse_contacts_") and name.endswith("_total")
    ]
    assert len(set(counters)) == 8
    for name in counters:
        assert value(after, name, **phone) == value(before, name, **phone)
    assert value(after, "queuepulse_wait_seconds_bucket", le="60", **phone) == 2


async def test_exported_queues_are_capped(settings: Settings, clean_db: AsyncEngine) -> None:
    now = time.time()
    async with running_app(settings) as api:
        body = [arrival("phone", f"c{i}", f"queue-{i}", now) for i in range(3)]
        assert (await api.post(body)).status_code == 200
        assert len(labelled(await scrape(api), "queuepulse_contacts_arrived_total")) == 3
    async with running_app(settings.model_copy(update={"max_queues": 2})) as api:
        samples = await scrape(api)
    exported = labelled(samples, "queuepulse_contacts_arrived_total")
    assert sorted(labels["queue"] for labels in exported) == ["queue-0", "queue-1"]
    for name in (
        "queuepulse_service_level_goal_ratio",
        "queuepulse_contacts_waiting",
        "queuepulse_wait_seconds_count",
    ):
        assert len(labelled(samples, name)) == 2
    assert value(samples, "queuepulse_queues_not_exported") == 1
