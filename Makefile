# recipezoo developer commands. `make` prints this help.
.DEFAULT_GOAL := help
PY ?= python

help:  ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install:  ## install recipezoo with the dev extras (editable)
	$(PY) -m pip install -e ".[dev]"

train:  ## train the default recipe on the embedded digits
	$(PY) train.py

recipes:  ## list the recipes
	$(PY) train.py list

test:  ## the default test suite (offline, CPU)
	$(PY) -m pytest

test-slow:  ## only the slow tests
	$(PY) -m pytest -m slow

test-all:  ## every test, slow ones included (GPU tests skip without a GPU)
	$(PY) -m pytest -m ""

lint:  ## ruff lint and format check
	ruff check src tests scripts train.py && ruff format --check src tests scripts train.py

ci:  ## what CI runs: a fresh venv, install, tests
	bash .ci/run

.PHONY: help install train recipes test test-slow test-all lint ci
