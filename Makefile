# Two entry points for a fresh clone (README): `make demo` and `make test`.
# Both create the virtualenv first; nothing else needs installing by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EVENTS ?= 40

.PHONY: venv lock demo down test lint bench clean

# requirements-dev.txt is the lock: every transitive dependency pinned with its sha256 hashes
# (pip-compile from requirements.in + requirements-dev.in; docs/dependencies.md). pip refuses any
# file whose hash is not listed, pip itself included.
$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements-dev.txt
	$(PY) -m pip check
	touch $@

venv: $(VENV)/.installed

## Re-resolve the lock after editing requirements*.in (needs the package indexes).
lock: venv
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --output-file=requirements-dev.txt requirements-dev.in

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
