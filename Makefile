# Driftline: `make up` runs the platform locally, `make test` passes the tests. Both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: help install tools up test lint format bench lock postgres redis clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install the locked dependency set (idempotent)

# Bytecode is compiled at install: uv does not by default, and where PYTHONDONTWRITEBYTECODE is
# set every process (each CLI call, each Ray worker) compiles its imports again (status: 1.05 s).
$(STAMP): requirements/lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements/lock.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

tools: install ## helm, kubectl, promtool and checkov into .tools/bin (idempotent; fast when present)
	UV=$(CURDIR)/$(BIN)/uv scripts/install-tools.sh

lock: ## re-resolve requirements/lock.txt from requirements/*.in
	$(BIN)/uv pip compile requirements/base.in requirements/dev.in -p 3.11 --no-header \
	  --annotation-style line -o requirements/lock.txt

up: install ## train if no model exists, serve, watch drift, stream predictions, print the URLs
	$(BIN)/driftline up

postgres: ## start the local PostgreSQL 15 and create the test role
	scripts/postgres.sh >/dev/null

redis: ## install (if missing) and start a Redis on 127.0.0.1:6379 for the shared rate limiter
	scripts/redis.sh >/dev/null

lint: install ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install tools postgres redis lint ## lint, then the whole suite against a real PostgreSQL and Redis
	DRIFTLINE_TEST_DATABASE_URL="$$(scripts/postgres.sh)" DRIFTLINE_TEST_REDIS_URL="$$(scripts/redis.sh)" \
	  $(BIN)/pytest $(PYTEST_ARGS)

bench: install ## run the benchmarks side by side; figures go to benchmarks/results/
	UV=$(CURDIR)/$(BIN)/uv scripts/install-tools.sh bench
	$(BIN)/python -m benchmarks

clean: ## remove local state (models, databases, Ray logs); keeps .venv
	rm -rf .driftline .pytest_cache .mypy_cache .ruff_cache
