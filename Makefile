# The two commands of the README. Each sets itself up on a fresh machine: it creates
# .venv if missing and installs the project (with its test tools) into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.meshedge-installed

.PHONY: demo test lint typecheck clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/meshedge demo

lint: $(STAMP)
	$(VENV)/bin/ruff check meshedge tests examples benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict meshedge

test: lint typecheck
	$(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
