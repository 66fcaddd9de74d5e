# The README's promise: `make demo` runs everything, `make test` passes the tests.
# Both create .venv and install the project from its own pyproject extras.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export TF_CPP_MIN_LOG_LEVEL ?= 2
export EDGEFLEET_SHARED ?= $(abspath ../shared)

.PHONY: demo test lint typecheck pytest bench chromium axe libsodium venv clean help

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

# libsodium: the firmware's OTA signature checks run against it in the host tests (Ed25519, as on the chip).
libsodium:
	@if ldconfig -p 2>/dev/null | grep -q 'libsodium.so.23'; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian libsodium23 for the firmware's host tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsodium23 >/dev/null; \
	else echo "libsodium not found and cannot install it here: the firmware OTA tests will skip (and fail under CI)"; fi

# axe-core for the dashboard's accessibility checks, pinned in tests/dashboard/js/package-lock.json.
AXE_DIR := tests/dashboard/js
axe:
	@if ! command -v npm >/dev/null; then \
		echo "npm not found: the accessibility checks will skip (and fail under CI)"; \
	elif [ ! $(AXE_DIR)/node_modules/.installed -nt $(AXE_DIR)/package-lock.json ]; then \
		npm ci --prefix $(AXE_DIR) --no-audit --no-fund --silent && touch $(AXE_DIR)/node_modules/.installed; \
	fi

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# Two workers (pytest-xdist), a test file per worker at a time: most tests wait on processes, brokers
# and browsers, so two run in about 60 % of the time of one on a 2-core machine. PYTEST_WORKERS=0: serial.
PYTEST_WORKERS ?= 2
pytest: $(VENV)/.installed-dev chromium axe libsodium
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test: lint pytest

bench: $(VENV)/.installed-all
	@mkdir -p artifacts/bench
	@for name in $$($(BIN)/python -c 'from edgefleet.cli.bench_runner import list_benchmarks; print(" ".join(list_benchmarks()))'); do \
		echo "bench $$name"; $(BIN)/edgefleet bench $$name > artifacts/bench/$$name.json || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache artifacts src/*.egg-info $(AXE_DIR)/node_modules
