from __future__ import annotations

import json
import re
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


async def test_openapi_describes_the_event_body_and_every_reference_resolves(api: RunningApp) -> None:
    document = (await api.client.get("/openapi.json")).json()
    body = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    single, batch = body["oneOf"]
    # contact_id is required of contact events only (staff events name their agent or desk instead): the
    # validator enforces it per type, with a 422 naming the field.
    assert single["required"] == ["event_id", "type", "queue", "occurred_at"]
    assert "contact_id" in single["properties"]
    assert single["additionalProperties"] is False
    assert batch["items"] == single
    references = set(re.findall(r'"\$ref": "([^"]+)"', json.dumps(document)))
    assert references
    assert references <= {f"#/components/schemas/{name}" for name in document["components"]["schemas"]}
