"""The KPI formulas on hand-made tallies: service-level variants, status, nulls and percentiles."""

from __future__ import annotations

import pytest

from app.core.kpis import Tally, Target, kpi, service_level, status, wait_percentile


def tally(starts: list[tuple[float, bool]], left: int = 0, left_after_short: int = 0) -> Tally:
    result = Tally(left=left, left_after_short=left_after_short)
    for wait, within in starts:
        result.add_start(wait, within)
    return result


def kpi_of(t: Tally, target: Target, waiting_now: int = 0, past: int = 0) -> dict[str, object]:
    return kpi(
        t,
        target,
        waiting_now=waiting_now,
        waiting_past_threshold=past,
        longest_wait_now=None,
        window_hours=1.0,
        fcr_goal_pct=80.0,
        warning_margin_pct=5.0,
    )


# 8 started (6 within), 3 left of whom 2 after the short-abandon limit, 2 still waiting past the threshold.
EIGHT_STARTED = [(10.0, True)] * 6 + [(90.0, False)] * 2


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("offered", 100.0 * 6 / (8 + 2 + 2)),
        ("answered", 100.0 * 6 / 8),
        ("abandons_excluded", 100.0 * 6 / (8 + 2)),
    ],
)
def test_the_three_service_level_formulas(formula: str, expected: float) -> None:
    t = tally(EIGHT_STARTED, left=3, left_after_short=2)
    assert service_level(t, 2, formula) == pytest.approx(expected)  # type: ignore[arg-type]
    shown = kpi_of(t, Target(60, 90, formula), waiting_now=3, past=2)  # type: ignore[arg-type]
    assert shown["service_level_pct"] == round(expected, 2)
    assert shown["target"] == {"threshold_seconds": 60, "goal_pct": 90, "formula": formula}


def test_still_waiting_past_threshold_is_a_miss_only_in_formulas_that_count_it() -> None:
    t = tally([(10.0, True)])
    assert service_level(t, 0, "offered") == 100.0
    assert service_level(t, 1, "offered") == 50.0
    assert service_level(t, 1, "abandons_excluded") == 50.0
    assert service_level(t, 1, "answered") == 100.0


def test_only_waiting_contacts_past_threshold_give_zero_not_null() -> None:
    assert service_level(Tally(), 3, "offered") == 0.0
    assert service_level(Tally(), 3, "answered") is None


@pytest.mark.parametrize("formula", ["offered", "answered", "abandons_excluded"])
def test_nothing_to_divide_is_null_and_no_data(formula: str) -> None:
    shown = kpi_of(Tally(), Target(60, 90, formula))  # type: ignore[arg-type]
    for name in (
        "service_level_pct",
        "avg_wait_seconds",
        "wait_p50_seconds",
        "wait_p90_seconds",
        "abandon_rate_pct",
        "avg_handle_seconds",
        "first_contact_resolution_pct",
        "longest_wait_now_seconds",
    ):
        assert shown[name] is None, name
    assert shown["status"] == "no_data"
    assert shown["first_contact_resolution_status"] == "no_data"
    assert shown["arrived"] == shown["started"] == shown["waiting_now"] == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "no_data"),
        (100.0, "ok"),
        (90.0, "ok"),
        (89.99, "warning"),
        (85.01, "warning"),
        (85.0, "warning"),  # exactly the margin below the goal: "within 5 points" (issue 12, 9d)
        (0.0, "breach"),
    ],
)
def test_status_against_goal_and_warning_margin(value: float | None, expected: str) -> None:
    assert status(value, 90.0, 5.0) == expected


def test_status_uses_the_configured_margin() -> None:
    assert status(80.0, 90.0, 5.0) == "breach"
    assert status(80.0, 90.0, 10.5) == "warning"


def test_abandons_short_limit_in_offered_formula() -> None:
    # 1 started within; 4 left, only 1 after the short-abandon limit: the short hang-ups are left out.
    t = tally([(3.0, True)], left=4, left_after_short=1)
    shown = kpi_of(t, Target(60, 90))
    assert shown["service_level_pct"] == 50.0
    assert shown["abandon_rate_pct"] == 80.0  # abandon rate counts every abandon: 4 / (1 + 4)
    assert shown["left_after_short_abandon"] == 1


def test_wait_percentiles_nearest_rank_on_whole_seconds() -> None:
    t = tally([(float(w) + 0.7, True) for w in range(1, 11)])
    shown = kpi_of(t, Target(60, 90))
    assert shown["wait_p50_seconds"] == 5.0
    assert shown["wait_p90_seconds"] == 9.0
    assert shown["avg_wait_seconds"] == 6.2
    assert wait_percentile(t.wait_bins, t.started, 1.0) == 10.0
    assert wait_percentile(t.wait_bins, t.started, 0.01) == 1.0
    assert wait_percentile({}, 0, 0.5) is None


def test_percentile_of_one_wait_and_of_skewed_waits() -> None:
    one = tally([(7.9, True)])
    assert wait_percentile(one.wait_bins, 1, 0.5) == 7.0
    assert wait_percentile(one.wait_bins, 1, 0.9) == 7.0
    skewed = tally([(1.0, True)] * 9 + [(500.0, False)])
    assert wait_percentile(skewed.wait_bins, 10, 0.9) == 1.0
    skewed.add(tally([(500.0, False)]))
    assert wait_percentile(skewed.wait_bins, 11, 0.9) == 500.0


def test_tallies_subtract_back_to_empty() -> None:
    a = tally([(3.0, True), (70.0, False)], left=2, left_after_short=1)
    b = Tally()
    b.add(a)
    b.add(a, -1)
    assert b == Tally()
    assert b.is_empty()


def test_fcr_and_handle_time_and_arrivals_per_hour() -> None:
    t = Tally(
        arrived=12, finished=5, served=4, resolved_first_contact=3, transferred=1, handled=4, handle_sum=410.0
    )
    shown = kpi(
        t,
        Target(60, 90),
        waiting_now=0,
        waiting_past_threshold=0,
        longest_wait_now=None,
        window_hours=0.25,
        fcr_goal_pct=80.0,
        warning_margin_pct=5.0,
    )
    assert shown["first_contact_resolution_pct"] == 75.0
    assert shown["first_contact_resolution_status"] == "warning"  # exactly the margin under (issue 12, 9d)
    assert shown["avg_handle_seconds"] == 102.5
    assert shown["arrivals_per_hour"] == 48.0
    assert shown["transferred"] == 1
