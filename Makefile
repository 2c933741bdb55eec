# Two commands on a fresh machine (README "Quick start"):
#   make app    set everything up in .venv, then serve the Streamlit app on the shipped zoo
#   make test   the same set-up, then exactly what CI runs (.ci/run calls `make test`)
# Both are idempotent: the set-up runs again only when pyproject.toml or scripts/setup.sh change
# (stamp file .venv/.crmn-viz-setup); `make setup` alone, `make clean` removes .venv.
#
# Variables: PORT (8501), CRMN_VIZ_DATA_DIR (data folder, default ./data), CRMN_VIZ_DEVICE (auto,
# cpu, cuda), VENV (.venv), PYTHON (python3, used to make the venv), TORCH_PACKAGES.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PORT ?= 8501
VENV ?= .venv
PYTHON ?= python3
TORCH_PACKAGES ?= torch==2.14.1 torchvision==0.29.1

STAMP := $(VENV)/.crmn-viz-setup
NODE_STAMP := tests/app/node_modules/.crmn-viz-npm-ci
# Commands from the virtual environment first (tests start `python`, `crmn-viz`, `streamlit`).
IN_VENV := PATH="$(abspath $(VENV))/bin:$$PATH" VIRTUAL_ENV="$(abspath $(VENV))"

.PHONY: help setup app test lint check-fresh-clone clean

help:
	@echo "make app    set up .venv and start the app on http://localhost:$(PORT) (PORT=..., CRMN_VIZ_DATA_DIR=...)"
	@echo "make test   set up .venv and run what CI runs: ruff, pytest, crmn-viz bench --quick"
	@echo "make setup  only the set-up; make check-fresh-clone; make clean (removes $(VENV))"

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	VENV="$(VENV)" PYTHON="$(PYTHON)" TORCH_PACKAGES="$(TORCH_PACKAGES)" bash scripts/setup.sh
	touch $@

# playwright-core for the browser test (tests/app); the test skips where Node.js is missing.
$(NODE_STAMP): tests/app/package-lock.json
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
	    if npm ci --prefix tests/app --no-audit --no-fund --silent; then touch $@; \
	    else echo "[setup] npm ci failed: the browser test will skip"; fi; \
	else echo "[setup] no Node.js/npm: the browser test will skip"; fi

app: setup
	@data="$${CRMN_VIZ_DATA_DIR:-./data}"; \
	if [ -d "$$data" ]; then echo "[app] data folder: $$data"; \
	else echo "[app] data folder $$data not found: statistics over test images are off (set CRMN_VIZ_DATA_DIR)"; fi
	@command -v chromium >/dev/null 2>&1 || [ -n "$${BROWSER_PATH:-}" ] || \
	    echo "[app] no Chromium: figure exports fall back to HTML (see the set-up's note)"
	@echo "[app] http://localhost:$(PORT)  (Ctrl-C stops it)"
	$(IN_VENV) exec streamlit run app.py --server.port=$(PORT) --server.headless=true

lint: setup
	$(IN_VENV) python -m ruff check .
	$(IN_VENV) python -m ruff format --check .

# Exactly CI: .ci/run is `make test`.
test: setup $(NODE_STAMP)
	$(IN_VENV) python -m ruff check .
	$(IN_VENV) python -m ruff format --check .
	$(IN_VENV) python -m pytest -q
	$(IN_VENV) crmn-viz bench --quick --repeats 1 > /dev/null

# Clone this repository into a new folder, run `make app` there, wait for it to be healthy, stop it.
check-fresh-clone:
	bash scripts/check_fresh_clone.sh

clean:
	rm -rf $(VENV) $(NODE_STAMP)
