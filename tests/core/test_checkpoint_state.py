"""A window's state (and the wait ledger beside it) taken mid-day and restored goes on exactly as the
original: the same events after it give the same figures, staff and lobby estimates included."""

from __future__ import annotations

from typing import Any

import pytest

from app.core.checkpoint import dump_state, load_state
from app.core.snapshot import snapshot_json
from app.core.staff import staff_json
from app.core.waits import WaitLedger
from app.core.window import Window, WindowConfig
from loadtests.lobby_waits import QUEUE, simulate_day
from tests.core.factory import targets
from tests.core.test_staff import DAY, _day, _deliveries


def figures(window: Window, now: float) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in ("15m", "1h", "today"):
        found[f"kpis {name}"] = snapshot_json(window.snapshot(name, now))
        found[f"staff {name}"] = staff_json(window.staff(name, now))
    found["members"] = [
        (m.channel.value, m.subject, m.state, m.reason, m.queues, m.since) for m in window.staff_members(now)
    ]
    return found


def restored(window: Window, beside: object = None) -> tuple[Window, object]:
    """A fresh window given `window`'s state, then adopted into another as a joining instance does."""
    fresh = Window(window.config, window.targets)
    back = load_state(fresh, dump_state(window, beside))
    joined = Window(window.config, window.targets)
    joined.adopt(fresh)
    return joined, back


@pytest.mark.parametrize("seed", [1, 2])
def test_a_restored_window_goes_on_as_the_original_staff_included(seed: int) -> None:
    delivered = _deliveries(_day(seed), seed)
    config = WindowConfig(wrap_up_seconds=30.0)
    original = Window(config, targets())
    half = len(delivered) // 2
    for event, received in delivered[:half]:
        original.apply(event, float(received))
    midday = float(delivered[half][1])
    copy, _ = restored(original)
    # Agents are on calls, paused and logged in at the moment the state is taken.
    taken = figures(original, midday)
    assert taken["staff today"]["channels"]["phone"]["total"]["staffed"] > 0
    assert figures(copy, midday) == taken
    for event, received in delivered[half:]:
        original.apply(event, float(received))
        copy.apply(event, float(received))
    for now in (DAY + 12 * 3600, DAY + 16 * 3600, float(delivered[-1][1])):
        assert figures(copy, now) == figures(original, now)


def test_the_wait_ledger_beside_the_window_goes_on_as_the_original() -> None:
    events = simulate_day(3, start=DAY)
    original = WaitLedger(4 * 3600.0)
    half = len(events) // 2
    original.apply_many(events[:half])
    _, back = restored(Window(WindowConfig(), targets()), original)
    assert isinstance(back, WaitLedger)
    assert back is not original
    for event in events[half:]:
        original.apply(event)
        back.apply(event)
        if event.type == "ticket.issued":
            assert back.estimate(QUEUE, event.at) == original.estimate(QUEUE, event.at)
    day = (DAY, DAY + 86400)
    assert back.score(*day) == original.score(*day)
    assert original.score(*day)[QUEUE].scored > 100
