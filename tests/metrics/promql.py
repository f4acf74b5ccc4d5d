"""What the shipped rules and dashboard ask Prometheus for: their PromQL and the metric names in it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "queuepulse-rules.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "queuepulse.json"

# Words that look like identifiers in PromQL but are not metric names.
KEYWORDS = frozenset({"and", "or", "unless", "bool", "inf", "nan", "by", "without", "on", "ignoring"})
# Series Prometheus makes itself for every scrape target.
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
# Values for Grafana's variables, so a dashboard query can be sent to Prometheus as it would be.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$__interval": "15s",
    "$channel": ".*",
    "$queue": ".*",
}


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def rule_expressions() -> Iterator[tuple[str, str]]:
    """(name, expr) of every recording and alerting rule."""
    for group in rule_groups():
        for rule in group["rules"]:
            yield rule.get("record") or rule["alert"], rule["expr"]


def recorded_names() -> set[str]:
    return {rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    """(panel title, expr) of every panel query, and the metric each template variable reads."""
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["definition"])
            assert match, variable["definition"]
            yield f"variable {variable['name']}", match.group(1)


def with_grafana_variables(expr: str) -> str:
    for name, value in sorted(GRAFANA_VARIABLES.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(name, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and label names left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\b(?:group_left|group_right)\b", " ", text)
    text = re.sub(r"\boffset\s+-?\S+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function call
        if match.group().lower() in KEYWORDS:
            continue
        names.add(match.group())
    return names
