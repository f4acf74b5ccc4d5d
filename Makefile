PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run migrate test lint typecheck clean

# Reinstall only when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(VENV): $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/queuepulse run

migrate: $(STAMP)
	$(BIN)/queuepulse migrate

lint: $(STAMP)
	$(BIN)/ruff check app tests migrations loadtests

typecheck: $(STAMP)
	$(BIN)/mypy app

# The Prometheus tests run Debian's prometheus and promtool; installed only when missing.
.PHONY: prometheus-tools
prometheus-tools:
	sh scripts/ensure-apt.sh prometheus:prometheus promtool:prometheus

# `make bench`: wrk from Debian, Locust and py-spy from the bench extra; writes loadtests/RESULTS.md.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

.PHONY: bench
bench: $(BENCH_STAMP)
	sh scripts/ensure-apt.sh wrk:wrk
	$(BIN)/python -m loadtests.bench

# The browser tests drive Debian's Chromium through Playwright (never a downloaded browser).
.PHONY: browser-tools
browser-tools:
	sh scripts/ensure-apt.sh /usr/bin/chromium:chromium

test: lint typecheck prometheus-tools browser-tools
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .benchmarks
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
