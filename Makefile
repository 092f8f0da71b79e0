# lernflow — run `make help` for the targets.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
LERNFLOW := $(VENV)/bin/lernflow
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Install Debian packages (Redis, JDK 17, Maven, Pango) and the Python venv, if missing
	@./scripts/setup.sh

.PHONY: up
up: setup ## Start Kafka, Cassandra and Redis on 127.0.0.1 (idempotent) and wait until they answer
	@$(LERNFLOW) stack up

.PHONY: down
down: ## Stop the servers the stack started (data kept; `make wipe` deletes it)
	@$(LERNFLOW) stack down

.PHONY: wipe
wipe: ## Stop the stack and delete its data
	@$(LERNFLOW) stack down --wipe

.PHONY: status
status: ## Show each server of the stack
	@$(LERNFLOW) stack status

.PHONY: schema
schema: up ## Create the Sunbird keyspaces, tables and <env>.* topics (idempotent)
	@$(LERNFLOW) schema apply

.PHONY: demo
demo: schema ## Run the pipeline end to end on the local stack and print the results
	@$(LERNFLOW) demo

.PHONY: test
test: up ## Run every test (unit + integration on the real stack)
	@$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: conformance
conformance: up ## Run our code against Sunbird's own test files (../shared/fixtures or LERNFLOW_SUNBIRD_FIXTURES)
	@$(PY) -m pytest tests/conformance $(PYTEST_ARGS)

.PHONY: faults
faults: setup ## Fault and fuzz suite on its own second stack (ports 19xxx, .stack-faults); table in out/faults/results.md
	@$(PY) -m pytest tests/faults $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: setup ## Run the unit tests only (no servers needed)
	@$(PY) -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: lint
lint: setup ## ruff check + format check + the import contract (layers, no cycles) + dead code (vulture)
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports
	@$(VENV)/bin/vulture config lernflow flows sources sinks certificates reports \
		scripts/vulture_whitelist.py --min-confidence 60

.PHONY: format
format: setup ## Format the code with ruff
	@$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

.PHONY: typecheck
typecheck: setup ## mypy --strict on the packages (relaxed for tests/ and bench/)
	@$(VENV)/bin/mypy lernflow tests bench

.PHONY: check
check: lint typecheck test ## Lint, typecheck and test

.PHONY: bench
bench: schema ## Run the benchmarks and print a table (BENCH_ARGS="--json out.jsonl --workload realistic")
	@$(PY) -m bench $(BENCH_ARGS)
