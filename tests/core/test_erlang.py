"""Erlang C and Erlang A against the published vectors, and the properties that must hold everywhere."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.core.erlang import erlang_a, erlang_b, erlang_c, required_agents

# The reference: 100 calls per 30 minutes, 180 s handle time, 80 % within 20 s.
RATE = 100 / 1800
HANDLE = 180.0
THRESHOLD = 20.0


def test_erlang_c_reproduces_the_published_vector_for_14_agents() -> None:
    result = erlang_c(14, RATE, HANDLE, THRESHOLD)
    assert result.service_level == pytest.approx(0.888, abs=1e-3)
    assert result.p_wait == pytest.approx(0.174, abs=1e-3)
    # Published to two decimals (7.84); the exact figure is 7.8359, within half the last digit.
    assert result.asa_seconds == pytest.approx(7.84, abs=5e-3)
    assert result.asa_seconds == pytest.approx(7.84, rel=1e-3)
    assert result.occupancy == pytest.approx(0.714, abs=1e-3)


def test_erlang_c_reproduces_the_published_vector_for_13_agents() -> None:
    assert erlang_c(13, RATE, HANDLE, THRESHOLD).service_level == pytest.approx(0.796, abs=1e-3)


def test_erlang_a_reproduces_the_published_vector_with_five_minutes_patience() -> None:
    result = erlang_a(13, RATE, HANDLE, 300.0, THRESHOLD)
    # Abandons are misses: the share of ALL arrivals answered within 20 s.
    assert result.service_level == pytest.approx(0.858, abs=1e-3)
    assert result.p_abandon == pytest.approx(0.025, abs=1e-3)


def test_required_agents_for_the_reference_target() -> None:
    erlang_c_need = required_agents(RATE, HANDLE, THRESHOLD, 80, "answered", None, 85)
    assert erlang_c_need.agents == 14
    assert erlang_c_need.bound == "service_level"
    # Patience lets 13 agents meet 80 % when abandons count as misses (0.858 above).
    assert required_agents(RATE, HANDLE, THRESHOLD, 80, "offered", 300.0, 85).agents == 13
    # Without a known patience the offered formula is read by Erlang C too.
    assert required_agents(RATE, HANDLE, THRESHOLD, 80, "offered", None, 85).agents == 14


def test_the_occupancy_cap_binds_when_the_service_level_alone_would_allow_fewer() -> None:
    # 10 Erlangs at most 70 % busy needs at least 15 agents (10/14 = 71.4 %), more than SL needs.
    capped = required_agents(RATE, HANDLE, THRESHOLD, 80, "answered", None, 70)
    assert capped.agents == 15
    assert capped.bound == "occupancy"
    assert capped.performance is not None
    assert capped.performance.occupancy <= 0.70


def test_erlang_b_is_stable_for_hundreds_of_agents() -> None:
    # A factorial-based formula overflows here (1000! has 2568 digits).
    blocking = erlang_b(1000, 950.0)
    assert 0 < blocking < 0.05
    large = erlang_c(1000, 950 / 180, 180.0, 20.0)
    assert 0 < large.p_wait < 1
    assert 0 < large.service_level < 1
    assert math.isfinite(large.asa_seconds)


def test_erlang_a_is_finite_for_hundreds_of_agents_and_below_the_load() -> None:
    result = erlang_a(400, 500 / 180, 180.0, 120.0, 60.0)
    assert 0 < result.service_level < 1
    assert 0 < result.p_abandon < 1
    # At most 400 of the 500 Erlangs can be carried: at least a fifth abandon.
    assert result.p_abandon >= 0.2 - 1e-9


def test_erlang_c_without_enough_agents_never_answers_in_time() -> None:
    overloaded = erlang_c(10, RATE, HANDLE, THRESHOLD)
    assert overloaded.service_level == 0.0
    assert overloaded.asa_seconds == math.inf


def test_a_goal_of_100_pct_is_refused() -> None:
    with pytest.raises(ValueError, match="100 %"):
        required_agents(RATE, HANDLE, THRESHOLD, 100, "answered", None, 85)


def test_no_arrivals_need_no_agents() -> None:
    assert required_agents(0.0, HANDLE, THRESHOLD, 80, "offered", 300.0, 85).agents == 0


rates = st.floats(min_value=0.001, max_value=0.5)
handles = st.floats(min_value=20.0, max_value=900.0)
patiences = st.floats(min_value=10.0, max_value=3600.0)
thresholds = st.floats(min_value=0.0, max_value=600.0)


@settings(max_examples=60, deadline=None)
@given(rate=rates, handle=handles, threshold=thresholds, extra=st.integers(min_value=1, max_value=30))
def test_erlang_c_service_level_rises_with_agents(
    rate: float, handle: float, threshold: float, extra: int
) -> None:
    agents = math.floor(rate * handle) + extra
    fewer = erlang_c(agents, rate, handle, threshold)
    more = erlang_c(agents + 1, rate, handle, threshold)
    assert more.service_level >= fewer.service_level - 1e-12
    assert more.p_wait <= fewer.p_wait + 1e-12
    assert more.asa_seconds <= fewer.asa_seconds + 1e-9
    assert 0.0 <= fewer.p_wait <= 1.0
    assert 0.0 <= fewer.service_level <= 1.0


@settings(max_examples=40, deadline=None)
@given(
    rate=st.floats(min_value=0.001, max_value=0.2),
    handle=handles,
    patience=patiences,
    threshold=st.floats(min_value=0.0, max_value=300.0),
    agents=st.integers(min_value=1, max_value=60),
)
def test_erlang_a_service_level_rises_with_agents_and_abandons_fall(
    rate: float, handle: float, patience: float, threshold: float, agents: int
) -> None:
    fewer = erlang_a(agents, rate, handle, patience, threshold)
    more = erlang_a(agents + 1, rate, handle, patience, threshold)
    assert more.service_level >= fewer.service_level - 1e-9
    assert more.p_abandon <= fewer.p_abandon + 1e-9
    assert more.occupancy <= fewer.occupancy + 1e-9
    # Probabilities stay probabilities; answered within t never exceeds answered at all.
    assert 0.0 <= fewer.p_abandon <= 1.0
    assert 0.0 <= fewer.service_level <= 1.0 - fewer.p_abandon + 1e-9
    # P(abandon) = θ·E[wait of all]: the identity the live patience estimator rests on.
    assert fewer.p_abandon == pytest.approx(fewer.mean_wait_seconds / patience, rel=1e-9, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(rate=rates, handle=handles, threshold=thresholds, extra=st.integers(min_value=1, max_value=20))
def test_erlang_a_tends_to_erlang_c_as_patience_grows(
    rate: float, handle: float, threshold: float, extra: int
) -> None:
    agents = math.floor(rate * handle) + extra
    spare = 1.0 - rate * handle / agents
    assume(agents * spare >= 0.05)
    # Patience long against the queue's own scale: the states that matter (about 30 / spare of them)
    # then lose a negligible share of their service rate to abandons.
    patience = 3e7 * handle / (agents * spare * spare)
    c = erlang_c(agents, rate, handle, threshold)
    a = erlang_a(agents, rate, handle, patience, threshold)
    assert a.service_level == pytest.approx(c.service_level, abs=1e-4)
    assert a.p_wait == pytest.approx(c.p_wait, abs=1e-4)
    assert a.asa_seconds == pytest.approx(c.asa_seconds, rel=1e-3, abs=1e-3)
    assert a.p_abandon < 1e-3


@settings(max_examples=30, deadline=None)
@given(
    rate=st.floats(min_value=0.001, max_value=0.2),
    handle=handles,
    patience=patiences,
    agents=st.integers(min_value=1, max_value=40),
)
def test_erlang_a_with_threshold_zero_is_the_share_answered_at_once(
    rate: float, handle: float, patience: float, agents: int
) -> None:
    result = erlang_a(agents, rate, handle, patience, 0.0)
    assert result.service_level == pytest.approx(1.0 - result.p_wait, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    rate=st.floats(min_value=0.001, max_value=0.1),
    handle=handles,
    patience=patiences,
    threshold=st.floats(min_value=0.0, max_value=300.0),
    goal=st.floats(min_value=50.0, max_value=95.0),
    cap=st.floats(min_value=60.0, max_value=100.0),
)
def test_required_agents_is_the_fewest_meeting_goal_and_cap(
    rate: float, handle: float, patience: float, threshold: float, goal: float, cap: float
) -> None:
    need = required_agents(rate, handle, threshold, goal, "offered", patience, cap)
    met = erlang_a(need.agents, rate, handle, patience, threshold)
    assert met.service_level >= goal / 100 - 1e-9
    assert met.occupancy <= cap / 100 + 1e-9
    if need.agents > 1:
        fewer = erlang_a(need.agents - 1, rate, handle, patience, threshold)
        assert fewer.service_level < goal / 100 or fewer.occupancy > cap / 100
