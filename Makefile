# loopml: `make demo` runs the fraud loop end to end; `make test` runs linters, type checks and the suite.
# Both create .venv on first use; only Python 3.11+ is needed.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
            command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
            && { command -v $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test docs lint typecheck imports venv clean help

help:
	@echo "make demo   create .venv, install loopml, run 'loopml demo fraud'"
	@echo "make test   install the test extras, run ruff, mypy, the import contracts, the docs build and the whole test suite"
	@echo "make docs   build the documentation site into build/site/ (mkdocs build --strict)"

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or newer is needed (python3.11 / python3.12 on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

venv: $(BIN)/python

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[serve,lgbm]'
	@touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test]'
	@touch $@ $(VENV)/.demo-installed $(VENV)/.docs-installed

demo: $(VENV)/.demo-installed
	$(BIN)/loopml demo fraud

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy

$(VENV)/.docs-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[docs]'
	@touch $@

# The documentation site (mkdocs.yml, docs/): --strict fails on a broken link or anchor and on a page
# missing from the nav; nothing is fetched (no web fonts, no plugin that downloads).
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

# The layer contracts of docs/architecture.md (import-linter, configured in pyproject.toml).
imports: $(VENV)/.test-installed
	$(BIN)/lint-imports --no-logo

# Two test processes (pytest-xdist); a file's tests stay in one process so its fixtures are built once.
PYTEST_WORKERS ?= 2

# The suite, then every docstring example of the package run as a doctest.
test: lint typecheck imports docs
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile
	$(BIN)/python -m pytest -q --doctest-modules src/loopml --ignore=src/loopml/store/migrations

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
