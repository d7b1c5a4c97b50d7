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

# One process: the embedded database starts once, migrations apply on start, the demo accounts
# are created, and the last lines printed are the URL and the logins.
serve: install
	$(PY) -m kundlinow serve --demo

test: install
	$(PY) -m pytest -q

bench-http: install
	$(PY) -m bench.http

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
