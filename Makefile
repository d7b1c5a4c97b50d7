# The two commands of the README: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install serve test lint bench-http

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(PY) -m kundlinow migrate
	$(PY) -m kundlinow seed-demo
	$(PY) -m kundlinow serve

test: install
	$(PY) -m pytest -q

bench-http: install
	$(PY) -m bench.http

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
