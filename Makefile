# The single definition of every developer command: CI, the README and hooks call these targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run api worker exporter stack stack-down stack-status load status readme-settings \
	compose-up compose-down kube-rules dashboards test test-soak lint format typecheck bench clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "jobfleet needs Python >= 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)  ## Create .venv and install jobfleet with its dev tools

run: $(STAMP)  ## Start Redis (embedded if none), the API on :8000, a worker fleet and the queue exporter; Ctrl-C stops all
	$(BIN)/jobfleet run

api: $(STAMP)  ## Start only the API (granian)
	$(BIN)/jobfleet api

worker: $(STAMP)  ## Start only the worker fleet (dramatiq CLI)
	$(BIN)/jobfleet worker

exporter: $(STAMP)  ## Start only the queue exporter (/metrics on JOBFLEET_EXPORTER_PORT)
	$(BIN)/jobfleet exporter

# The local stack's email jobs go to the SMTP sink `make load` starts on this port (no root needed, unlike 25).
stack load: export JOBFLEET_SMTP_PORT ?= 2525

stack: $(STAMP)  ## Start the full native stack in the background (+ Prometheus, Alertmanager when installed)
	$(BIN)/jobfleet stack up

stack-down: $(STAMP)  ## Stop everything `make stack` started
	$(BIN)/jobfleet stack down

stack-status: $(STAMP)  ## What the native stack runs, with URLs
	$(BIN)/jobfleet stack status

load: $(STAMP)  ## Drive a realistic job mix (with failures) against the local API; LOAD_SECONDS=60 LOAD_RATE=5
	$(BIN)/jobfleet load --seconds $(or $(LOAD_SECONDS),60) --rate $(or $(LOAD_RATE),5)

status: $(STAMP)  ## Queues, lag, workers, dead letters and Redis durability at a glance
	$(BIN)/jobfleet status

COMPOSE ?= docker compose -f deploy/compose.yaml

compose-up:  ## Build the image and start the container stack (deploy/compose.yaml)
	$(COMPOSE) up -d --build

compose-down:  ## Stop the container stack (volumes are kept; add -v by hand to drop them)
	$(COMPOSE) down

kube-rules: $(STAMP)  ## Regenerate deploy/k8s/prometheusrule.yaml from prometheus/rules
	$(BIN)/python deploy/k8s/generate_prometheusrule.py

readme-settings: $(STAMP)  ## Regenerate README.md's configuration table from jobfleet/core/settings.py
	$(BIN)/python docs/readme_settings.py

dashboards: $(STAMP)  ## Regenerate grafana/dashboards/*.json from the generator
	$(BIN)/python grafana/generate_dashboards.py

test: $(STAMP)  ## The whole test suite (real redis-server, real worker processes)
	$(BIN)/pytest $(PYTEST_ARGS)

test-soak: $(STAMP)  ## The full-size soak (5,000+ jobs with faults)
	JOBFLEET_SOAK_FULL=1 $(BIN)/pytest -m soak $(PYTEST_ARGS)

bench: $(STAMP)  ## Benchmarks vs baselines from the same run (table + bench/results/*.json; BENCH_ARGS=--quick)
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: typecheck  ## ruff (lint + format check) and strict mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)  ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# mypy cannot follow the editable install's mapping of app/, workers/ and middleware/ into the `jobfleet` package
# (pyproject.toml), so it checks a view of links laid out as installed: .venv/typecheck/jobfleet/{app,...}.
TYPECHECK_VIEW := $(VENV)/typecheck/jobfleet

typecheck: $(STAMP)  ## Strict mypy only
	@rm -rf $(VENV)/typecheck && mkdir -p $(TYPECHECK_VIEW)
	@for f in jobfleet/*; do ln -s "$(CURDIR)/$$f" $(TYPECHECK_VIEW)/; done
	@for d in app workers middleware; do ln -s "$(CURDIR)/$$d" $(TYPECHECK_VIEW)/$$d; done
	$(BIN)/mypy

clean:  ## Remove the venv and local state (.jobfleet/)
	rm -rf $(VENV) .jobfleet .mypy_cache .ruff_cache .pytest_cache
