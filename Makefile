# The README's promise: `make demo` runs everything, `make test` passes the tests.
# Both create .venv and install the project from its own pyproject extras.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export TF_CPP_MIN_LOG_LEVEL ?= 2
export EDGEFLEET_SHARED ?= $(abspath ../shared)

.PHONY: demo test lint typecheck pytest bench chromium venv clean help

help:
	@echo "make demo   - install .[all] into $(VENV) and run 'edgefleet demo'"
	@echo "make test   - install .[all,dev], chromium if missing, then ruff, mypy and pytest"
	@echo "make lint   - ruff check + format check, mypy strict"
	@echo "make bench  - run every benchmark in bench/, JSON into artifacts/bench/"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "edgefleet needs Python >= 3.11; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps: reinstall only when pyproject.toml changes.
$(VENV)/.installed-all: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[all]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	@touch $@ $(VENV)/.installed-all

venv: $(VENV)/.installed-dev

demo: $(VENV)/.installed-all
	$(BIN)/edgefleet demo

# Debian's chromium for the browser tests (Playwright's own download does not work offline).
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium not found and cannot install it here: browser tests will skip (and fail under CI)"; fi

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev chromium
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint pytest

bench: $(VENV)/.installed-all
	@mkdir -p artifacts/bench
	@for name in $$($(BIN)/python -c 'from edgefleet.cli.bench_runner import list_benchmarks; print(" ".join(list_benchmarks()))'); do \
		echo "bench $$name"; $(BIN)/edgefleet bench $$name > artifacts/bench/$$name.json || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache artifacts src/*.egg-info
