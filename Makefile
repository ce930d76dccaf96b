# Two entry points for a fresh clone (README): `make demo` and `make test`.
# Both create the virtualenv first; nothing else needs installing by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EVENTS ?= 40

.PHONY: venv demo down test lint bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

## The main job: stage data, train (or reuse) a model, start local services, run the workflow.
demo: venv
	$(PY) -m local up
	$(PY) -m local run --events $(EVENTS)

down: venv
	$(PY) -m local down

## The test suite CI runs (.ci/run calls this target).
test: venv
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: venv
	$(PY) -m ruff check .

bench: venv
	$(PY) -m local up
	$(PY) -m benchmarks

clean: down
	rm -rf $(VENV) .scones build
