"""Which target applies to a channel and queue: per-queue overrides over the channel defaults."""

from __future__ import annotations

from app.core.events import Channel
from app.core.kpis import Target


class TargetBook:
    def __init__(self, defaults: dict[Channel, Target], overrides: dict[tuple[Channel, str], Target]) -> None:
        self.defaults = dict(defaults)
        self.overrides = dict(overrides)

    def __call__(self, channel: Channel, queue: str | None) -> Target:
        if queue is not None:
            target = self.overrides.get((channel, queue))
            if target is not None:
                return target
        return self.defaults[channel]

    def set(self, channel: Channel, queue: str, target: Target) -> None:
        self.overrides[(channel, queue)] = target
