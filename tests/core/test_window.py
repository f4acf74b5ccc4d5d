"""The rolling window with a fake clock: boundaries, daylight-saving days and the feed's failure modes."""

from __future__ import annotations

from datetime import date

import pytest

from app.core.clock import day_intervals
from app.core.events import Channel
from app.core.kpis import Target
from app.core.window import Window
from tests.core.factory import CPH, ev, local, make_window, phone, snapshot_of

NOON = local(2026, 6, 15, 12)


def answered_call(
    window: Window, contact: str, offered: float, wait: float, now: float, **kw: object
) -> None:
    window.apply(ev("call.offered", contact, offered), now)
    window.apply(ev("call.answered", contact, offered + wait, agent="a1", **kw), now)  # type: ignore[arg-type]


# ---- formulas through the window -------------------------------------------------------------


def test_offered_formula_counts_late_abandons_and_long_waiters_as_misses() -> None:
    w = make_window()
    t = NOON - 600
    answered_call(w, "in", t, 30, NOON)  # within 60 s
    answered_call(w, "out", t, 61, NOON)  # a miss
    w.apply(ev("call.offered", "short", t), NOON)
    w.apply(ev("call.abandoned", "short", t + 5), NOON)  # exactly the short-abandon limit: left out
    w.apply(ev("call.offered", "long", t), NOON)
    w.apply(ev("call.abandoned", "long", t + 5.5), NOON)  # after the limit: a miss
    w.apply(ev("call.offered", "waiting", NOON - 61), NOON)  # waiting past 60 s: a miss
    w.apply(ev("call.offered", "fresh", NOON - 60), NOON)  # waiting exactly 60 s: not yet a miss
    k = phone(w, "1h", NOON)
    assert (k["started"], k["started_within_target"]) == (2, 1)
    assert (k["left"], k["left_after_short_abandon"]) == (2, 1)
    assert (k["waiting_now"], k["waiting_past_target"]) == (2, 1)
    assert k["service_level_pct"] == 25.0  # 1 / (2 + 1 + 1)
    assert k["status"] == "breach"
    assert k["abandon_rate_pct"] == 50.0
    assert k["longest_wait_now_seconds"] == 61.0


@pytest.mark.parametrize(
    ("formula", "expected"), [("offered", 25.0), ("answered", 50.0), ("abandons_excluded", 100 / 3)]
)
def test_formula_per_queue(formula: str, expected: float) -> None:
    w = make_window({(Channel.PHONE, "borgerservice"): Target(60.0, 50.0, formula)})  # type: ignore[arg-type]
    t = NOON - 600
    answered_call(w, "in", t, 30, NOON)
    answered_call(w, "out", t, 90, NOON)
    w.apply(ev("call.offered", "gone", t), NOON)
    w.apply(ev("call.abandoned", "gone", t + 20), NOON)
    w.apply(ev("call.offered", "waiting", NOON - 100), NOON)
    k = phone(w, "1h", NOON)
    assert k["service_level_pct"] == round(expected, 2)
    assert k["target"]["formula"] == formula
    assert k["status"] == ("ok" if expected >= 50 else "breach")
    # The channel total keeps the channel's default target.
    total = snapshot_of(w, "1h", NOON)["channels"]["phone"]["total"]
    assert total["target"] == {"threshold_seconds": 60.0, "goal_pct": 90.0, "formula": "offered"}


def test_status_ok_warning_breach_no_data() -> None:
    w = make_window()
    assert phone_total(w, NOON)["status"] == "no_data"
    for i in range(9):
        answered_call(w, f"ok{i}", NOON - 300, 10, NOON)
    answered_call(w, "slow", NOON - 300, 100, NOON)
    assert phone_total(w, NOON)["service_level_pct"] == 90.0
    assert phone_total(w, NOON)["status"] == "ok"
    answered_call(w, "slow2", NOON - 300, 100, NOON)  # 9/11 = 81.8 %: more than 5 points under 90
    assert phone_total(w, NOON)["status"] == "breach"
    for i in range(30):
        answered_call(w, f"more{i}", NOON - 300, 10, NOON)  # 39/41 = 95.1 %
    assert phone_total(w, NOON)["status"] == "ok"
    answered_call(w, "slow3", NOON - 300, 100, NOON)
    answered_call(w, "slow4", NOON - 300, 100, NOON)  # 39/43 = 90.7 %
    answered_call(w, "slow5", NOON - 300, 100, NOON)  # 39/44 = 88.6 %: under, by less than 5
    assert phone_total(w, NOON)["status"] == "warning"


def phone_total(w: Window, now: float) -> dict[str, object]:
    result: dict[str, object] = snapshot_of(w, "1h", now)["channels"]["phone"]["total"]
    return result


def test_visits_use_the_visit_threshold() -> None:
    w = make_window()
    w.apply(ev("ticket.issued", "v1", NOON - 900, ticket_number="A001"), NOON)
    w.apply(ev("ticket.called", "v1", NOON - 600), NOON)  # 300 s: within
    w.apply(ev("ticket.issued", "v2", NOON - 900, ticket_number="A002"), NOON)
    w.apply(ev("ticket.called", "v2", NOON - 599), NOON)  # 301 s: a miss
    k = snapshot_of(w, "1h", NOON)["channels"]["visit"]["queues"]["borgerservice"]
    assert (k["started"], k["started_within_target"], k["service_level_pct"]) == (2, 1, 50.0)
    assert k["target"]["threshold_seconds"] == 300.0


def test_percentiles_and_averages_through_the_window() -> None:
    w = make_window()
    for i, wait in enumerate([5, 10, 20, 40, 80]):
        answered_call(w, f"c{i}", NOON - 1000, wait, NOON)
        w.apply(ev("call.ended", f"c{i}", NOON - 1000 + wait + 100 * (i + 1), resolved=True), NOON)
    k = phone(w, "1h", NOON)
    assert k["avg_wait_seconds"] == 31.0
    assert k["wait_p50_seconds"] == 20.0
    assert k["wait_p90_seconds"] == 80.0
    assert k["avg_handle_seconds"] == 300.0
    assert k["finished"] == 5
    assert k["first_contact_resolution_pct"] == 100.0


# ---- window boundaries -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "width"), [("15m", 900), ("1h", 3600)])
def test_rolling_boundary_at_one_second(name: str, width: int) -> None:
    w = make_window()
    w.apply(ev("call.offered", "old", NOON - width), NOON)
    w.apply(ev("call.offered", "edge", NOON - width + 1), NOON)
    w.apply(ev("call.offered", "now", NOON), NOON)
    assert phone(w, name, NOON)["arrived"] == 2


@pytest.mark.parametrize(("name", "width"), [("15m", 900), ("1h", 3600)])
def test_outcome_slides_out_exactly_at_the_width(name: str, width: int) -> None:
    w = make_window()
    t = NOON
    w.apply(ev("call.offered", "c", t - 10), t)
    w.apply(ev("call.answered", "c", t), t)
    for age, started in [(0, 1), (1, 1), (width // 2, 1), (width - 1, 1), (width, 0), (width + 1, 0)]:
        k = phone(w, name, t + age)
        assert k["started"] == started, age
    # A second window jumping straight past the width agrees with one that slid second by second.
    jumped = make_window()
    jumped.apply(ev("call.offered", "c", t - 10), t)
    jumped.apply(ev("call.answered", "c", t), t)
    assert phone(jumped, name, t + width - 1)["started"] == 1
    assert phone(jumped, name, t + 5 * width)["started"] == 0


def test_fractional_seconds_fall_in_their_whole_second() -> None:
    w = make_window()
    w.apply(ev("call.offered", "c", NOON - 899.5), NOON)  # second NOON-900: out of 15m at NOON
    w.apply(ev("call.offered", "d", NOON - 898.5), NOON)  # second NOON-899: in
    assert phone(w, "15m", NOON + 0.9)["arrived"] == 1


def test_today_starts_at_local_midnight() -> None:
    midnight = local(2026, 6, 15, 0)
    now = local(2026, 6, 15, 3)
    w = make_window()
    w.apply(ev("call.offered", "yesterday", midnight - 1), now)
    w.apply(ev("call.offered", "today", midnight), now)
    w.apply(ev("call.offered", "later", now - 10), now)
    k = phone(w, "today", now)
    assert k["arrived"] == 2
    assert k["arrivals_per_hour"] == round(2 / 3, 2)
    assert w.data_quality["before_today"] == 1
    assert phone(w, "1h", now)["arrived"] == 1


def test_today_in_utc_midnight_differs_from_copenhagen() -> None:
    # 23:30 UTC on 14 June is 01:30 in Copenhagen on the 15th: today there, not in UTC.
    at = local(2026, 6, 15, 1, 30)
    w = make_window()
    w.apply(ev("call.offered", "c", at), at + 60)
    assert phone(w, "today", at + 60)["arrived"] == 1
    utc = make_window(time_zone="UTC")
    utc.apply(ev("call.offered", "c", at), at + 60)
    assert phone(utc, "today", at + 60)["arrived"] == 1
    assert phone(utc, "today", local(2026, 6, 15, 2, 30))["arrived"] == 0  # 00:30 UTC on the 15th


@pytest.mark.parametrize(
    ("day", "intervals", "elapsed_at_noon"),
    [(date(2026, 3, 29), 92, 11), (date(2026, 10, 25), 100, 13), (date(2026, 6, 15), 96, 12)],
)
def test_daylight_saving_days(day: date, intervals: int, elapsed_at_noon: int) -> None:
    assert len(day_intervals(day, CPH)) == intervals
    midnight = local(day.year, day.month, day.day, 0)
    noon = local(day.year, day.month, day.day, 12)
    assert noon - midnight == elapsed_at_noon * 3600
    w = make_window()
    # One arrival every 30 true minutes since midnight, and one just before it.
    count = elapsed_at_noon * 2
    for i in range(count):
        w.apply(ev("call.offered", f"c{i}", midnight + 1800 * i), noon)
    w.apply(ev("call.offered", "before", midnight - 1), noon)
    k = phone(w, "today", noon)
    assert k["arrived"] == count
    assert k["arrivals_per_hour"] == 2.0  # the true elapsed hours, not the wall-clock 12
    per_interval = w.intervals(Channel.PHONE, None, day)
    assert len(per_interval) == intervals
    assert sum(t.arrived for _, t in per_interval) == count
    assert [t.arrived for _, t in per_interval[:4]] == [1, 0, 1, 0]
    # The day's last interval ends at the next local midnight.
    next_midnight = local(2026, day.month, day.day + 1, 0)
    assert per_interval[-1][0] + 900 == next_midnight


def test_today_window_on_the_long_day_includes_the_repeated_hour() -> None:
    day_end = local(2026, 10, 25, 23, 59, 59)
    w = make_window()
    # 02:30 happens twice on 25 October; both are today.
    first = local(2026, 10, 25, 2, 30)
    w.apply(ev("call.offered", "first", first), day_end)
    w.apply(ev("call.offered", "second", first + 3600), day_end)
    assert phone(w, "today", day_end)["arrived"] == 2
    assert phone(w, "today", day_end)["arrivals_per_hour"] == round(2 / ((25 * 3600 - 1) / 3600), 2)


def test_outcomes_count_when_they_happen() -> None:
    day = date(2026, 6, 15)
    offered = local(2026, 6, 15, 9, 58)
    answered = local(2026, 6, 15, 10, 2)
    w = make_window()
    w.apply(ev("call.offered", "c", offered), answered)
    w.apply(ev("call.answered", "c", answered), answered)
    # In the 15-minute window at 10:14, the 10:02 answer is in and the 09:58 offer is out.
    k = phone(w, "15m", local(2026, 6, 15, 10, 14))
    assert (k["arrived"], k["started"], k["service_level_pct"]) == (0, 1, 0.0)
    w.apply(ev("call.ended", "c", local(2026, 6, 15, 10, 20), resolved=True), local(2026, 6, 15, 10, 20))
    by_start = dict(w.intervals(Channel.PHONE, "borgerservice", day))
    at_0945 = by_start[int(local(2026, 6, 15, 9, 45))]
    at_1000 = by_start[int(local(2026, 6, 15, 10, 0))]
    at_1015 = by_start[int(local(2026, 6, 15, 10, 15))]
    assert (at_0945.arrived, at_0945.started) == (1, 0)
    assert (at_1000.arrived, at_1000.started, at_1000.started_within) == (0, 1, 0)  # 240 s wait: a miss
    assert (at_1015.finished, at_1015.handled, at_1015.handle_sum) == (1, 1, 1080.0)


# ---- the feed's failure modes ----------------------------------------------------------------


def test_answer_before_offer_counts_once_the_offer_arrives() -> None:
    t = NOON - 300
    ordered = make_window()
    ordered.apply(ev("call.offered", "c", t), NOON)
    ordered.apply(ev("call.answered", "c", t + 42), NOON)
    reversed_ = make_window()
    reversed_.apply(ev("call.answered", "c", t + 42), NOON)
    before = snapshot_of(reversed_, "1h", NOON)["channels"]["phone"]["total"]
    assert (before["started"], before["arrived"], before["waiting_now"]) == (0, 0, 0)
    reversed_.apply(ev("call.offered", "c", t), NOON)
    for name in ("15m", "1h", "today"):
        assert snapshot_of(reversed_, name, NOON)["channels"] == snapshot_of(ordered, name, NOON)["channels"]
    assert phone(reversed_, "1h", NOON)["avg_wait_seconds"] == 42.0
    assert phone(reversed_, "1h", NOON)["waiting_now"] == 0
    assert reversed_.data_quality["out_of_order"] == 1
    assert ordered.data_quality["out_of_order"] == 0


def test_finish_before_start_before_arrival() -> None:
    t = NOON - 600
    w = make_window()
    w.apply(ev("call.ended", "c", t + 200, resolved=True), NOON)
    w.apply(ev("call.answered", "c", t + 20), NOON)
    w.apply(ev("call.offered", "c", t), NOON)
    k = phone(w, "1h", NOON)
    assert (k["arrived"], k["started"], k["finished"], k["waiting_now"]) == (1, 1, 1, 0)
    assert k["avg_handle_seconds"] == 180.0
    assert k["first_contact_resolution_pct"] == 100.0


def test_same_step_twice_counts_once() -> None:
    t = NOON - 300
    w = make_window()
    for _ in range(2):
        w.apply(ev("call.offered", "c", t), NOON)
        w.apply(ev("call.answered", "c", t + 10), NOON)
        w.apply(ev("call.ended", "c", t + 100, resolved=True), NOON)
    k = phone(w, "1h", NOON)
    assert (k["arrived"], k["started"], k["finished"]) == (1, 1, 1)
    assert w.data_quality["duplicates"] == 3
    w.note_duplicates(2)  # deliveries the store recognised by event_id
    assert snapshot_of(w, "1h", NOON)["data_quality"]["duplicates"] == 5


def test_late_events_are_counted_and_still_land_where_they_belong() -> None:
    w = make_window()
    w.apply(ev("call.offered", "on-time", NOON - 60), NOON)  # exactly the limit: not late
    w.apply(ev("call.offered", "late", NOON - 61), NOON)
    w.apply(ev("call.offered", "very-late", NOON - 1200), NOON)
    assert w.data_quality["late"] == 2
    assert phone(w, "15m", NOON)["arrived"] == 2
    assert phone(w, "1h", NOON)["arrived"] == 3


def test_start_without_arrival_is_an_orphan_after_max_wait() -> None:
    w = make_window(max_wait_seconds=600)
    w.apply(ev("call.answered", "orphan", NOON), NOON)
    assert snapshot_of(w, "1h", NOON)["channels"]["phone"]["total"]["started"] == 0
    assert snapshot_of(w, "1h", NOON + 600)["data_quality"]["orphans"] == 0
    assert snapshot_of(w, "1h", NOON + 601)["data_quality"]["orphans"] == 1
    assert snapshot_of(w, "1h", NOON + 601)["channels"]["phone"]["total"]["started"] == 0


def test_start_without_arrival_but_with_wait_seconds_counts_at_once() -> None:
    w = make_window(max_wait_seconds=600)
    w.apply(ev("call.answered", "measured", NOON, wait_seconds=75.0), NOON)
    w.apply(ev("call.abandoned", "gone", NOON, wait_seconds=3.0), NOON)
    k = phone(w, "1h", NOON)
    assert (k["started"], k["started_within_target"], k["avg_wait_seconds"]) == (1, 0, 75.0)
    assert (k["left"], k["left_after_short_abandon"]) == (1, 0)
    assert k["arrived"] == 0
    # Their arrival never came: both are reported as orphans once the limit passes, and still count.
    assert snapshot_of(w, "1h", NOON + 601)["data_quality"]["orphans"] == 2
    assert phone(w, "1h", NOON + 601)["started"] == 1


def test_wait_seconds_wins_over_the_timestamps() -> None:
    w = make_window()
    w.apply(ev("call.offered", "c", NOON - 100), NOON)
    w.apply(ev("call.answered", "c", NOON, wait_seconds=30.0), NOON)
    assert phone(w, "1h", NOON)["avg_wait_seconds"] == 30.0
    assert phone(w, "1h", NOON)["started_within_target"] == 1


def test_answer_stamped_before_its_offer_is_a_zero_wait_and_counted() -> None:
    w = make_window()
    w.apply(ev("call.offered", "c", NOON - 10), NOON)
    w.apply(ev("call.answered", "c", NOON - 12), NOON)
    assert phone(w, "1h", NOON)["avg_wait_seconds"] == 0.0
    assert w.data_quality["negative_waits"] == 1


def test_waiting_longer_than_max_wait_expires() -> None:
    w = make_window(max_wait_seconds=3600)
    w.apply(ev("call.offered", "lost", NOON), NOON)
    assert phone(w, "1h", NOON + 3600)["waiting_now"] == 1
    after = snapshot_of(w, "1h", NOON + 3601)
    assert after["channels"]["phone"]["queues"]["borgerservice"]["waiting_now"] == 0
    assert after["channels"]["phone"]["queues"]["borgerservice"]["longest_wait_now_seconds"] is None
    assert after["data_quality"]["expired"] == 1
    # Expired is the one thing said about it: it is neither an orphan nor also "unfinished".
    later = snapshot_of(w, "1h", NOON + 3 * 3600)["data_quality"]
    assert (later["expired"], later["orphans"], later["unfinished"]) == (1, 0, 0)


def test_expiry_with_arrival_received_a_moment_after_it_happened() -> None:
    w = make_window(max_wait_seconds=3600)
    w.apply(ev("call.offered", "lost", NOON - 0.5), NOON)
    snapshot_of(w, "1h", NOON + 3600)
    dq = snapshot_of(w, "1h", NOON + 7200)["data_quality"]
    assert (dq["expired"], dq["unfinished"], dq["orphans"]) == (1, 0, 0)


def test_arrival_older_than_max_wait_never_waits() -> None:
    w = make_window(max_wait_seconds=3600)
    w.apply(ev("call.offered", "ancient", NOON - 3601), NOON)
    k = phone(w, "today", NOON)
    assert (k["arrived"], k["waiting_now"]) == (1, 0)
    # Its outcome could still come: expired once it is forgotten with none (issue 12, 9b).
    assert w.data_quality["expired"] == 0
    later = snapshot_of(w, "today", NOON + 7200)["data_quality"]
    assert (later["expired"], later["unfinished"]) == (1, 0)


def test_started_but_never_finished_is_unfinished_after_max_wait() -> None:
    w = make_window(max_wait_seconds=600)
    w.apply(ev("call.offered", "c", NOON), NOON)
    w.apply(ev("call.answered", "c", NOON + 5), NOON + 5)
    dq = snapshot_of(w, "1h", NOON + 700)["data_quality"]
    assert (dq["unfinished"], dq["expired"], dq["orphans"]) == (1, 0, 0)


def test_transfers_and_no_shows() -> None:
    w = make_window()
    t = NOON - 900
    answered_call(w, "t", t, 10, NOON)
    w.apply(ev("call.transferred", "t", t + 70, to_queue="pas", resolved=True), NOON)
    w.apply(ev("ticket.issued", "n", t, ticket_number="B001"), NOON)
    w.apply(ev("ticket.called", "n", t + 60), NOON)
    w.apply(ev("ticket.no_show", "n", t + 180), NOON)
    k = phone(w, "1h", NOON)
    assert (k["finished"], k["transferred"]) == (1, 1)
    assert k["first_contact_resolution_pct"] == 0.0  # a transfer is never a first-contact resolution
    assert k["avg_handle_seconds"] == 60.0
    v = snapshot_of(w, "1h", NOON)["channels"]["visit"]["queues"]["borgerservice"]
    assert (v["started"], v["finished"], v["transferred"]) == (1, 1, 0)
    assert v["first_contact_resolution_pct"] is None  # a no-show was never served
    assert v["avg_handle_seconds"] is None
    assert v["waiting_now"] == 0


def test_first_contact_resolution() -> None:
    w = make_window()
    t = NOON - 1800
    for i, (kind, resolved) in enumerate(
        [
            ("call.ended", True),
            ("call.ended", True),
            ("call.ended", True),
            ("call.ended", False),
            ("call.ended", None),
            ("call.transferred", True),
        ]
    ):
        answered_call(w, f"c{i}", t, 20, NOON)
        extra = {"to_queue": "pas"} if kind == "call.transferred" else {}
        w.apply(ev(kind, f"c{i}", t + 200, resolved=resolved, **extra), NOON)
    k = phone(w, "1h", NOON)
    assert k["first_contact_resolution_pct"] == 50.0
    assert k["first_contact_resolution_status"] == "breach"
    assert k["first_contact_resolution_goal_pct"] == 80.0
    assert k["finished"] == 6
    visit = make_window()
    visit.apply(ev("ticket.issued", "v", t, ticket_number="A1"), NOON)
    visit.apply(ev("ticket.called", "v", t + 10), NOON)
    visit.apply(ev("ticket.completed", "v", t + 400, resolved=True), NOON)
    vk = snapshot_of(visit, "1h", NOON)["channels"]["visit"]["total"]
    assert (vk["first_contact_resolution_pct"], vk["first_contact_resolution_status"]) == (100.0, "ok")


def test_waiting_now_and_longest_wait_are_live_not_windowed() -> None:
    w = make_window()
    w.apply(ev("call.offered", "a", NOON - 2000), NOON)
    w.apply(ev("call.offered", "b", NOON - 100, queue="pas"), NOON)
    snap = snapshot_of(w, "15m", NOON)["channels"]["phone"]
    assert snap["queues"]["borgerservice"]["arrived"] == 0
    assert snap["queues"]["borgerservice"]["waiting_now"] == 1
    assert snap["total"]["waiting_now"] == 2
    assert snap["total"]["longest_wait_now_seconds"] == 2000.0
    assert snap["total"]["waiting_past_target"] == 2


def test_adopting_a_replayed_state_keeps_the_changes_the_rollup_has_not_taken() -> None:
    # A late event of yesterday changed an interval the replay of today no longer holds: the rollup
    # writer must still be told, or that interval keeps its old row for good.
    now = local(2026, 6, 15, 8)
    late = local(2026, 6, 14, 23, 50)
    w = make_window()
    w.apply(ev("call.offered", "a", now - 60), now)
    w.take_dirty(now)
    w.apply(ev("call.offered", "late", late), now)
    fresh = make_window()
    fresh.apply(ev("call.offered", "a", now - 60), now)
    w.adopt(fresh)
    taken = w.take_dirty(now)
    assert (Channel.PHONE, "borgerservice", int(late // 900 * 900)) in taken
    assert w.take_dirty(now) == set()
