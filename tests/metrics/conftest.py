"""Fixtures for the metrics tests: Prometheus's own binaries, installed from Debian when missing."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.metrics.promql import ROOT

ENSURE_APT = ROOT / "scripts" / "ensure-apt.sh"
APT_INSTALL_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class PrometheusTools:
    prometheus: Path
    promtool: Path


@pytest.fixture(scope="session")
def prometheus_tools() -> PrometheusTools:
    """The Debian `prometheus` package's binaries; `make test` installs them, this catches a bare pytest."""
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        subprocess.run(
            ["sh", str(ENSURE_APT), "prometheus:prometheus", "promtool:prometheus"],
            check=True,
            timeout=APT_INSTALL_TIMEOUT_SECONDS,
        )
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    assert prometheus, "the prometheus package did not install prometheus"
    assert promtool, "the prometheus package did not install promtool"
    return PrometheusTools(Path(prometheus), Path(promtool))
