# The front door on a fresh machine with Python 3.11+ (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo run test lint typecheck unit bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: install
	$(BIN)/auditor demo

run: install
	$(BIN)/auditor daemon

lint: install
	$(BIN)/ruff check auditor provisioner lambda_src tests bench
	$(BIN)/ruff format --check auditor provisioner lambda_src tests bench

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -n auto --dist loadfile -q

test: lint typecheck unit

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
