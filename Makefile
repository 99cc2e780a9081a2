# The two commands of the README: `make demo` (deploy an example stack on real Docker hosts) and
# `make test` (the whole suite, with ruff and mypy). Both set up what they need and are idempotent.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps demo test lint typecheck unit bench lab-up lab-down clean

system-deps:
	@bash lab/install.sh

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

setup: system-deps $(STAMP)

demo: setup
	@bash scripts/demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check graphium lab tests benchmarks
	$(VENV)/bin/ruff format --check graphium
	$(VENV)/bin/lint-imports --no-cache

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# three workers, one test file each: the integration tests mostly wait on engines and containers,
# and every test names its own stacks and takes free ports, so files run side by side
test: setup lint typecheck
	$(VENV)/bin/pytest -q -p no:cacheprovider -n 3 --dist loadfile

unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit

bench: setup
	@bash benchmarks/run.sh

lab-up: setup
	$(PY) -m lab up

lab-down: $(STAMP)
	$(PY) -m lab down
