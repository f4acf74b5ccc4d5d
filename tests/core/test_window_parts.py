"""The window's parts work together as the one class did: contacts close and are forgotten, the typed
snapshot and the JSON agree, and event types outside the contact family are left alone."""

from __future__ import annotations

from app.core.events import EVENT_SPECS, EVENT_TYPES, Family
from app.core.snapshot import snapshot_json
from tests.core.factory import ev, local, make_window, phone

NOON = local(2026, 6, 15, 12)


def test_a_closed_contact_is_forgotten_after_the_retention_and_its_id_counts_anew() -> None:
    w = make_window(closed_retention_seconds=600.0)
    w.apply(ev("call.offered", "c", NOON), NOON)
    # The answer comes last, so the step that counts the start also closes the contact.
    w.apply_many(
        [ev("call.ended", "c", NOON + 60, resolved=True), ev("call.answered", "c", NOON + 10)], NOON + 60
    )
    w.apply(ev("call.offered", "c", NOON + 300), NOON + 300)
    assert phone(w, "1h", NOON + 300)["arrived"] == 1  # still remembered: a repeat
    later = NOON + 60 + 601
    w.apply(ev("call.offered", "c", later), later)
    assert phone(w, "1h", later)["arrived"] == 2


def test_the_typed_snapshot_is_the_json_unrounded() -> None:
    w = make_window()
    w.apply_many(
        [
            ev("call.offered", "a", NOON - 100),
            ev("call.answered", "a", NOON - 30),
            ev("call.offered", "b", NOON - 90),
            ev("call.answered", "b", NOON - 80),
            ev("call.offered", "c", NOON - 70),
        ],
        NOON,
    )
    snapshot = w.snapshot("1h", NOON)
    figures = snapshot.channels["phone"].queues["borgerservice"]
    shown = snapshot_json(snapshot)["channels"]["phone"]["queues"]["borgerservice"]
    assert figures.service_level_pct is not None
    assert shown["service_level_pct"] == round(figures.service_level_pct, 2)
    assert figures.service_level_pct != shown["service_level_pct"]  # 1 of 3: the JSON rounds 33.33...
    assert (figures.arrived, figures.started, figures.waiting_now) == (3, 2, 1)
    assert w.waiting_now(*w.queues()[0]) == 1


def test_contact_types_are_steps_and_staff_types_have_none() -> None:
    contact = {name for name, spec in EVENT_SPECS.items() if spec.family is Family.CONTACT}
    assert set(EVENT_TYPES) == contact
    assert all(EVENT_SPECS[name].step is not None for name in contact)
    assert all(spec.step is None for spec in EVENT_SPECS.values() if spec.family is Family.STAFF)
    staff = {name for name in EVENT_SPECS if name.split(".")[0] in ("agent", "desk")}
    assert set(EVENT_SPECS) - contact == staff
