"""Qmatic Orchestra event bodies shaped as its orchestra-events module posts them.

Its WebhookService POSTs Jackson's serialisation of a `QPEvent`: the getters `eventName`, `eventTime`,
`eventType`, `unitId` and `parameters` (the `parameterNames` getter is @JsonIgnore'd), with
`Content-Type: application/json`. The parameters are the ones its StatService reads (`visitId` Long,
`branchId` Integer, `queueId` Long, `queueName`, `service`, `serviceIntName`, `queueServiceLevel`,
`waitingTime` Integer seconds, `servicePointName`, `workProfile`, ...) and `ticket`, `firstName`,
`branchName` that its notification module uses.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


def qp_event(name: str, at: datetime, unit: int | None, **parameters: Any) -> dict[str, Any]:
    event_type = "VISIT" if name.startswith("VISIT_") else "SERVICE_POINT"
    return {
        "eventName": name,
        # Orchestra's local time, with an offset.
        "eventTime": at.astimezone().isoformat(timespec="milliseconds"),
        "eventType": event_type,
        "unitId": unit,
        "parameters": {"branchId": 1, "branchName": "Borgerservice City", **parameters},
    }


class Lobby:
    """Visits of one branch: each call's waitingTime is the time from VISIT_CREATE to that call."""

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start or datetime.now(UTC) - timedelta(minutes=40)

    def at(self, seconds: float) -> datetime:
        return self.start + timedelta(seconds=seconds)

    def create(self, visit: int, t: float, queue: int = 3) -> dict[str, Any]:
        return qp_event(
            "VISIT_CREATE",
            self.at(t),
            90,
            visitId=visit,
            queueId=queue,
            queueName="Pas og kørekort",
            service=11,
            serviceIntName="Pas",
            serviceTargetTransTime=600,
            queueServiceLevel=300,
            ticket=f"A{visit:03d}",
        )

    def call(self, visit: int, t: float, created: float, desk: int = 7, queue: int = 3) -> dict[str, Any]:
        return qp_event(
            "VISIT_CALL",
            self.at(t),
            desk,
            visitId=visit,
            queueId=queue,
            queueName="Pas og kørekort",
            service=11,
            queueServiceLevel=300,
            waitingTime=int(t - created),
            servicePointName=f"Skranke {desk}",
            firstName="Anna",
            ticket=f"A{visit:03d}",
        )

    def end(
        self, visit: int, t: float, created: float, desk: int = 7, name: str = "VISIT_END"
    ) -> dict[str, Any]:
        return qp_event(name, self.at(t), desk, visitId=visit, waitingTime=int(t - created))

    def remove(self, visit: int, t: float, queue: int = 3) -> dict[str, Any]:
        return qp_event("VISIT_REMOVE", self.at(t), 90, visitId=visit, queueId=queue, service=11)

    def move(self, name: str, visit: int, t: float, queue: int = 4) -> dict[str, Any]:
        return qp_event(name, self.at(t), 7, visitId=visit, queueId=queue, queueServiceLevel=300)

    def service_point(self, name: str, t: float, desk: int = 7, user: int | None = 21) -> dict[str, Any]:
        extra: dict[str, Any] = {"servicePointName": f"Skranke {desk}", "workProfile": 2}
        if user is not None:
            extra["userId"] = user
        return qp_event(name, self.at(t), desk, **extra)

    def visit(self, visit: int, t: float, wait: float = 120, service: float = 300) -> list[dict[str, Any]]:
        """A whole visit: issued at t, called after `wait`, ended `service` later."""
        return [self.create(visit, t), self.call(visit, t + wait, t), self.end(visit, t + wait + service, t)]
