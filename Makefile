# ucp: two commands do all the set-up on a fresh machine.
#   make run   - local stack + Functions host + sample data flowing through; Ctrl-C stops everything
#   make test  - the test suite against real Azurite and the Cosmos emulator (started and stopped by the tests)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NPM := node_modules/.installed

.PHONY: run test setup browser bench bench-setup clean check-tools stack

check-tools:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python 3.11 (or run make PYTHON=/path/to/python3.11)"; exit 1; }
	@command -v node >/dev/null || { echo "error: node not found: install Node.js 20 and npm (Debian: apt-get install nodejs npm)"; exit 1; }
	@command -v npm >/dev/null || { echo "error: npm not found: install npm (Debian: apt-get install npm)"; exit 1; }

$(STAMP_PY): requirements.txt requirements-dev.txt pyproject.toml | check-tools
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

$(STAMP_NPM): package.json package-lock.json | check-tools
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's Chromium for the dashboard's browser test (no browser download); skipped where apt is not ours.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: chromium not installed; the dashboard browser test will be skipped"; }

setup: $(STAMP_PY) $(STAMP_NPM)

run: setup
	$(PY) -m devstack.run

test: setup browser
	$(PY) -m pytest $(PYTEST_ARGS)

stack: setup
	$(PY) -m devstack.stack up

# Bench-only packages (Splink for bench/splink_baseline.py); CI installs requirements-dev.txt only.
bench-setup: setup
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt

bench: bench-setup
	$(PY) -m bench

clean:
	rm -rf .devstack .pytest_cache out test-artifacts
