# nb_mistral — the two commands of a fresh machine:
#   make demo   set everything up, start the offline emulator, open JupyterLab on notebooks/
#   make test   every test: ruff, pytest on tests/ (unit, integration, kernel; then the browser
#               tests on their own, for their timing), nbval on the example notebooks
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EMULATOR_HOST ?= 127.0.0.1
EMULATOR_PORT ?= 8765
LAB_PORT ?= 8888

.PHONY: help setup demo test lint unit nbval notebooks browser

help:
	@echo "make setup      create $(VENV) (with $(PYTHON)) and install nb_mistral with its dev extras"
	@echo "make demo       JupyterLab on notebooks/, answered by the offline emulator when no key is set"
	@echo "make test       ruff + pytest tests/ (browser tests apart) + nbval on notebooks/, timed"
	@echo "make lint | unit | nbval | browser   one part of the tests"
	@echo "make notebooks  re-execute the example notebooks against the emulator (committed outputs)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Idempotent: reinstalls only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP)

# The emulator runs while JupyterLab runs and is stopped when it exits (trap). It answers only
# when neither MISTRAL_API_KEY nor MISTRAL_SERVER_URL is set: with those, the real (or your
# self-hosted) server answers.
demo: setup
	@set -euo pipefail; \
	emulator=""; \
	cleanup() { if [ -n "$$emulator" ]; then kill "$$emulator" 2>/dev/null || true; wait "$$emulator" 2>/dev/null || true; fi; }; \
	trap cleanup EXIT; trap 'exit 130' INT TERM; \
	listening() { (exec 3<>"/dev/tcp/$(EMULATOR_HOST)/$(EMULATOR_PORT)") 2>/dev/null; }; \
	if [ -z "$${MISTRAL_API_KEY:-}" ] && [ -z "$${MISTRAL_SERVER_URL:-}" ]; then \
	  url="http://$(EMULATOR_HOST):$(EMULATOR_PORT)"; \
	  if listening; then \
	    echo "== port $(EMULATOR_PORT) is taken: assuming an emulator already runs at $$url"; \
	  else \
	    $(BIN)/python -m nb_mistral.emulator --host $(EMULATOR_HOST) --port $(EMULATOR_PORT) \
	      --tokens-per-second 40 & emulator=$$!; \
	    for _ in $$(seq 150); do listening && break; sleep 0.2; done; \
	    listening || { echo "the emulator did not start" >&2; exit 1; }; \
	  fi; \
	  export MISTRAL_SERVER_URL="$$url"; \
	  echo "== no MISTRAL_API_KEY: replies come from the offline emulator at $$url"; \
	else \
	  echo "== replies come from $${MISTRAL_SERVER_URL:-https://api.mistral.ai}"; \
	fi; \
	echo "== JupyterLab on notebooks/: open the http://127.0.0.1:$(LAB_PORT)/lab?token=... URL below (Ctrl+C twice stops it)"; \
	root=""; [ "$$(id -u)" != 0 ] || root="--allow-root"; \
	$(BIN)/jupyter lab --no-browser $$root --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) \
	  --ServerApp.root_dir=notebooks --LabApp.news_url=None \
	  --LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate

# Runs every part even when one fails, prints how long each took, fails if any failed.
test: setup
	@failed=""; summary=""; total_start=$$(date +%s); \
	for part in lint unit browser nbval; do \
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

unit: setup
	@echo "== pytest tests/ (all but the browser tests)"
	$(BIN)/pytest tests/ --ignore=tests/test_browser.py --ignore=tests/test_browser_security.py

nbval: setup
	@echo "== nbval on notebooks/ (against the in-process emulator, see notebooks/conftest.py)"
	$(BIN)/pytest --nbval notebooks/ --nbval-sanitize-with notebooks/sanitize.cfg

browser: setup
	@echo "== browser tests (JupyterLab + Chromium)"
	$(BIN)/pytest -x tests/test_browser.py tests/test_browser_security.py

notebooks: setup
	$(BIN)/python notebooks/execute.py
