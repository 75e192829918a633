# nb_mistral — the two commands of a fresh machine:
#   make demo   set everything up, start the offline emulator, open JupyterLab on workspace/
#               (copies of the example notebooks in notebooks/)
#   make test   every test: ruff, mypy --strict, pytest on tests/ (unit, integration, kernel; then the browser
#               tests on their own, for their timing), nbval on the example notebooks (live against
#               the emulator, and again replayed from notebooks/replies.jsonl with no emulator)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EMULATOR_HOST ?= 127.0.0.1
EMULATOR_PORT ?= 8765
LAB_PORT ?= 8888

.PHONY: help setup demo test lint unit unit-lowest nbval nbval-replay notebooks replies browser

help:
	@echo "make setup      create $(VENV) (with $(PYTHON)) and install nb_mistral with its dev extras"
	@echo "make demo       JupyterLab on workspace/ (copies of notebooks/), answered by the offline emulator when no key is set"
	@echo "make test       ruff + mypy + pytest tests/ (browser tests apart) + nbval on notebooks/, timed"
	@echo "make lint | unit | nbval | browser   one part of the tests"
	@echo "make unit-lowest  the unit tests at the lowest dependency versions pyproject.toml allows (CI)"
	@echo "make notebooks  re-execute the example notebooks against the emulator (committed outputs)"
	@echo "make replies    re-execute them and record their replies in notebooks/replies.jsonl"
	@echo "make nbval-replay  nbval with every reply from notebooks/replies.jsonl (cache only, no emulator)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Idempotent: reinstalls only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP)

# JupyterLab on workspace/ (copies of notebooks/, made on first run), answered by the offline
# emulator when neither MISTRAL_API_KEY nor MISTRAL_SERVER_URL is set; the emulator lives
# exactly as long as JupyterLab (binder/demo.sh says how).
demo: setup
	@BIN=$(BIN) EMULATOR_HOST=$(EMULATOR_HOST) EMULATOR_PORT=$(EMULATOR_PORT) LAB_PORT=$(LAB_PORT) \
	  bash binder/demo.sh

# Runs every part even when one fails, prints how long each took, fails if any failed.
test: setup
	@failed=""; summary=""; total_start=$$(date +%s); \
	for part in lint unit browser nbval nbval-replay; do \
	  start=$$(date +%s); \
	  $(MAKE) --no-print-directory $$part || failed="$$failed $$part"; \
	  summary="$$summary\n  $$part: $$(( $$(date +%s) - start )) s"; \
	done; \
	echo -e "== timings:$$summary\n  total: $$(( $$(date +%s) - total_start )) s"; \
	if [ -n "$$failed" ]; then echo "== FAILED:$$failed"; exit 1; fi; \
	echo "== all tests passed"

lint: setup
	@echo "== ruff check"
	$(BIN)/ruff check .
	@echo "== mypy --strict nb_mistral"
	$(BIN)/mypy --strict nb_mistral

unit: setup
	@echo "== pytest tests/ (all but the browser tests)"
	$(BIN)/pytest tests/ --ignore=tests/test_browser.py --ignore=tests/test_browser_security.py

# exactly the committed example notebooks (a scratch notebook in notebooks/ is not collected)
EXAMPLES = $(or $(shell git ls-files 'notebooks/*.ipynb' 2>/dev/null),$(wildcard notebooks/*.ipynb))

nbval: setup
	@echo "== nbval on the example notebooks (against the in-process emulator, see notebooks/conftest.py)"
	$(BIN)/pytest --nbval $(EXAMPLES) --nbval-sanitize-with notebooks/sanitize.cfg

# The unit tests again at the lowest versions pyproject.toml allows (`.ci/lowest.py` pins
# them), so its lower bounds are tested; what needs Jupyter, a browser or the official SDK
# (dev-only tools) or matplotlib / Pillow (dev extras) runs in the main environment only; pandas,
# which map and the store take when given, is there (unpinned).
LOWEST := .venv-lowest
NEEDS_DEV_TOOLS := test_demo test_differential_sdk test_context $(basename $(notdir $(wildcard \
  tests/test_browser*.py tests/test_*kernel*.py tests/test_bench_*.py)))

unit-lowest:
	@echo "== pytest tests/ at the lowest dependency versions: $$($(PYTHON) .ci/lowest.py | tr '\n' ' ')"
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet $$($(PYTHON) .ci/lowest.py) \
	  'pytest>=8' 'pytest-timeout>=2.3' 'hypothesis>=6.100' 'pandas>=2'
	$(LOWEST)/bin/python -m pip install --quiet --no-deps -e .
	$(LOWEST)/bin/python -m pytest tests -q -p no:cacheprovider \
	  $(foreach name,$(NEEDS_DEV_TOOLS),--ignore=tests/$(name).py)

browser: setup
	@echo "== browser tests (JupyterLab + Chromium)"
	@command -v chromium >/dev/null || [ -x "$${NB_MISTRAL_CHROMIUM:-}" ] || { \
	  echo "the browser tests need Debian's chromium: apt-get install chromium" \
	    "(or set NB_MISTRAL_CHROMIUM to a Chromium binary)" >&2; exit 1; }
	$(BIN)/pytest -x tests/test_browser.py tests/test_browser_security.py

notebooks: setup
	$(BIN)/python notebooks/execute.py

# The notebooks that only talk through the notebook layer, replayed from the reply store
# (RECORDED_URL in notebooks/execute.py: a request key includes the server URL; nothing
# listens there). Cells tagged nb-mistral-live-only are left to the live run.
REPLAYED = notebooks/01-quickstart.ipynb notebooks/02-python-api.ipynb notebooks/03-chat-widget.ipynb \
  notebooks/06-context-and-structure.ipynb
RECORDED_URL = http://127.0.0.1:8765

replies: setup
	$(BIN)/python notebooks/execute.py --record notebooks/replies.jsonl $(notdir $(REPLAYED))

nbval-replay: setup
	@echo "== nbval on the example notebooks, every reply from notebooks/replies.jsonl (cache mode only)"
	@store=$$(mktemp -d) && trap 'rm -rf "$$store"' EXIT && \
	  NB_MISTRAL_STORE=$$store/replies.sqlite3 $(BIN)/python -m nb_mistral.store import notebooks/replies.jsonl && \
	  NB_MISTRAL_STORE=$$store/replies.sqlite3 NB_MISTRAL_CACHE=only MISTRAL_SERVER_URL=$(RECORDED_URL) \
	    $(BIN)/pytest --nbval $(REPLAYED) --nbval-sanitize-with notebooks/sanitize.cfg
