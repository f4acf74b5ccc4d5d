"""The shipped Prometheus config, rules and Grafana dashboard: valid, and asking only for real metrics."""

from __future__ import annotations

import subprocess
import time

from tests.metrics.conftest import PrometheusTools
from tests.metrics.helpers import event, names, parse
from tests.metrics.promql import (
    DASHBOARD,
    PROMETHEUS_CONFIG,
    RULES,
    SYNTHETIC,
    dashboard,
    dashboard_expressions,
    metric_names,
    recorded_names,
    rule_expressions,
)
from tests.metrics.test_endpoint import scenario
from tests.running import RunningApp


def test_promtool_accepts_the_rules_and_the_config(prometheus_tools: PrometheusTools) -> None:
    rules = subprocess.run(
        [str(prometheus_tools.promtool), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = subprocess.run(
        [str(prometheus_tools.promtool), "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert config.returncode == 0, config.stdout + config.stderr


def test_metric_names_are_found_in_promql() -> None:
    expr = (
        'sum by (channel, queue) (increase(a_total{queue=~"$queue", x="b c"}[$__range])) / on (channel) '
        "group_left (queue) max without (le) (b:rec offset 5m) + rate(c_bucket[1m:10s]) > bool 0 and d == 1e3"
    )
    assert metric_names(expr) == {"a_total", "b:rec", "c_bucket", "d"}


def test_the_rules_cover_what_the_issue_asks() -> None:
    alerts = {name: expr for name, expr in rule_expressions() if name not in recorded_names()}
    assert "queuepulse_service_level_goal_ratio" in metric_names(alerts["QueuepulseServiceLevelBelowGoal"])
    assert "queuepulse:opening_hours" in metric_names(alerts["QueuepulseNoEvents"])
    assert "queuepulse_database_errors_total" in metric_names(alerts["QueuepulseIngestErrors"])
    titles = " ".join(panel["title"] for panel in dashboard()["panels"]).lower()
    for topic in ("service level vs goal", "waiting now", "longest", "arrivals", "abandon", "ingest"):
        assert topic in titles, topic


async def test_every_metric_in_rules_and_dashboard_is_exported(api: RunningApp) -> None:
    assert (await api.post(scenario(time.time()))).status_code == 200
    # An agent logged in a minute ago, so the staff series have samples too.
    login = event("agent.logged_in", "deploy-a1", "metrics-a", time.time() - 60, agent="deploy-a1")
    del login["contact_id"]
    assert (await api.post([login])).status_code == 200
    response = await api.client.get("/metrics")
    exported = names(parse(response.text))
    available = exported | recorded_names() | SYNTHETIC
    used: dict[str, set[str]] = {}
    for source, expressions in ((RULES.name, rule_expressions()), (DASHBOARD.name, dashboard_expressions())):
        for where, expr in expressions:
            for name in metric_names(expr):
                used.setdefault(name, set()).add(f"{source}: {where}")
    missing = {name: sorted(places) for name, places in used.items() if name not in available}
    assert not missing, missing
    # The extraction found the queries' metrics, not nothing.
    assert len(used) >= 20
    assert {name for name in used if name.startswith("queuepulse_")} <= exported
