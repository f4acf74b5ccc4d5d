PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run migrate test lint typecheck clean

# Every dependency comes from a lock file with hashes (`make lock` refreshes them from pyproject.toml);
# the project itself is then installed without resolving anything. Reinstalls only when a lock changes.
LOCKS := requirements/run.lock requirements/dev.lock requirements/bench.lock
UV_VERSION := 0.13.9

$(STAMP): requirements/dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# `make lock`: resolve pyproject.toml's dependencies anew (newest versions PyPI has) into the three locks.
.PHONY: lock
lock: $(STAMP)
	$(BIN)/pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 \
		-o requirements/run.lock
	$(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 --extra dev \
		-o requirements/dev.lock
	$(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 --extra dev \
		--extra bench -o requirements/bench.lock

$(VENV): $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/queuepulse run

migrate: $(STAMP)
	$(BIN)/queuepulse migrate

lint: $(STAMP)
	$(BIN)/ruff check app tests migrations loadtests
	$(BIN)/ruff format --check app tests migrations loadtests

typecheck: $(STAMP)
	$(BIN)/mypy app tests loadtests

# The Prometheus tests run Debian's prometheus and promtool; installed only when missing.
.PHONY: prometheus-tools
prometheus-tools:
	sh scripts/ensure-apt.sh prometheus:prometheus promtool:prometheus

# `make bench`: wrk from Debian, Locust and py-spy from the bench extra; writes loadtests/RESULTS.md.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): requirements/bench.lock $(STAMP)
	$(BIN)/pip install --quiet --require-hashes -r requirements/bench.lock
	touch $(BENCH_STAMP)

.PHONY: bench
bench: $(BENCH_STAMP)
	sh scripts/ensure-apt.sh wrk:wrk
	$(BIN)/python -m loadtests.bench

# The load-balancer test runs Debian's HAProxy with deploy/haproxy/haproxy.cfg; installed only when missing.
.PHONY: lb-tools
lb-tools:
	sh scripts/ensure-apt.sh /usr/sbin/haproxy:haproxy

# The browser tests drive Debian's Chromium through Playwright (never a downloaded browser).
.PHONY: browser-tools
browser-tools:
	sh scripts/ensure-apt.sh /usr/bin/chromium:chromium

test: lint typecheck prometheus-tools browser-tools lb-tools
	$(BIN)/pytest -q

# The embedded PostgreSQL that `make run` leaves running is stopped first: its binaries live in .venv.
clean:
	if [ -x $(BIN)/queuepulse ]; then $(BIN)/queuepulse db stop; fi
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .benchmarks
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
