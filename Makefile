# The front door on a fresh machine with Python 3.11+ (see README.md). Both are overridable:
#   make install PYTHON=/usr/bin/python3 VENV=/tmp/venv311
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What requirements.lock and requirements-dev.lock are resolved for: pyproject's requires-python.
LOCK_PYTHON := 3.11
UV_VERSION := 0.13.10

.PHONY: install compiled demo demo-class run test long check lint typecheck unit fast bench bench-scale clean lock

install: $(STAMP)

# The runtime lock (what the image installs) and the dev lock (tests, lint and types), both hash-pinned.
$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lab-auditor needs Python 3.11 or newer; $(PYTHON) is " + sys.version.split()[0] + ": install python3.11 and run make install PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# Resolve both locks again from pyproject.toml (uv, in a scratch virtualenv): the runtime lock from
# [project] dependencies, the dev lock from the dev extra less what the runtime lock pins. Versions
# already pinned are kept where they still fit; every file of each version is hashed.
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet uv==$(UV_VERSION)
	.venv-lock/bin/uv pip compile pyproject.toml --python-version $(LOCK_PYTHON) --generate-hashes \
		--quiet --custom-compile-command "make lock" --output-file requirements.lock
	.venv-lock/bin/uv pip compile pyproject.toml --extra dev --constraint requirements.lock \
		--python-version $(LOCK_PYTHON) --generate-hashes --quiet --custom-compile-command "make lock" \
		$$(sed -n 's/^\([A-Za-z0-9._-]*\)==.*/--no-emit-package \1/p' requirements.lock) \
		--output-file requirements-dev.lock

# The project's own modules compiled, once, for every process a command or a test starts: where
# PYTHONDONTWRITEBYTECODE is set (as on this project's CI machines) each process would compile them again
# (a twentieth of the test suite's CPU). A no-op when nothing changed.
compiled: install
	@$(BIN)/python -m compileall -q -j 0 auditor provisioner bench migrations

demo: compiled
	$(BIN)/auditor demo

# Students build the lab: a scripted class followed and graded (README, "When students build the lab").
demo-class: compiled
	$(BIN)/auditor demo --class

run: install
	$(BIN)/auditor daemon

lint: install
	$(BIN)/ruff check auditor provisioner lambda_src tests bench
	$(BIN)/ruff format --check auditor provisioner lambda_src tests bench

typecheck: install
	$(BIN)/mypy

# Every test but the long end-to-end suites (tests/conftest.py, LONG_SUITES), a worker a core; an idle
# worker takes tests from the other's share (worksteal). 3.5 to 4.7 min on a quiet 2-core machine.
unit: compiled
	$(BIN)/pytest -n auto --dist worksteal -q -m "not long"

# The long end-to-end suites: the daemon and its replicas over intervals, restarts and change events, a
# lab's whole life under hypothesis, the fault benchmark, the class demo. They mostly wait on intervals:
# test by test on 3 workers, but the two whose tests share one run of a module's fixture, each on one
# (tests/conftest.py, ONE_WORKER_SUITES; loadgroup). 2.25 to 2.6 min on a quiet 2-core machine.
long: compiled
	$(BIN)/pytest -n 3 --dist loadgroup -q -m long

# The tests that need no AWS emulator, no PostgreSQL, no browser and no process of their own (the rest
# is marked `slow`, see tests/conftest.py), a worker a core: about 30 s on a quiet 2-core machine.
fast: compiled
	AUDITOR_FAST_TIER=1 $(BIN)/pytest -n auto --dist loadfile -q -m "not slow"

# The whole suite (interface.md: lint and type checks included), in two runs distributed each its way.
test: lint typecheck unit long

# The quick loop while you work: lint, types and the fast tests.
check: lint typecheck fast

bench: install
	$(BIN)/python bench/run_all.py

# Issue 15's class: three daemon replicas on the PostgreSQL at 127.0.0.1:5432 over 10 intervals, one killed
# with SIGKILL mid-audit; then the report of 1,000 labs over 30 days (8.6 million runs: the load alone
# takes several minutes); then the daemon's cycles over 1,000 labs at 100 ms a request (provisioning
# them takes about 4 minutes, the first cycle, moto answering and its answers recorded, about 3, each
# later one, answers replayed, about 1 on a 2-core machine: 3 cycles here, not the issue's 50;
# SCALE_CYCLES=50 for the full run).
SCALE_CYCLES ?= 3
bench-scale: install
	$(BIN)/python -m bench.replicas_bench
	$(BIN)/python -m bench.report_bench --labs 1000 --repeat 2
	$(BIN)/python -m bench.daemon_scale_bench --labs 1000 --cycles $(SCALE_CYCLES)

clean:
	rm -rf $(VENV) .venv-lock .pytest_cache .mypy_cache .ruff_cache
