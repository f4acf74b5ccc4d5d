from __future__ import annotations

from datetime import UTC, datetime

from tests.running import RunningApp


async def test_posted_event_shows_in_kpis_at_once(api: RunningApp) -> None:
    now = datetime.now(UTC).isoformat()
    response = await api.post(
        {
            "event_id": "e1",
            "type": "call.offered",
            "contact_id": "c1",
            "queue": "borgerservice",
            "occurred_at": now,
        }
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0}
    kpis = await api.kpis("15m")
    phone = kpis["channels"]["phone"]  # type: ignore[index]
    assert phone["queues"]["borgerservice"]["arrived"] == 1
    assert phone["queues"]["borgerservice"]["waiting_now"] == 1
