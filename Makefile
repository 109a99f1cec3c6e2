# The front door. Two commands matter on a fresh machine: `make demo` and `make test`.
# Everything is installed by these targets: uv into .tools/, Python deps into .venv/ from
# uv.lock, Kafka jars from Maven Central into $(MICROSTRUCTURE_HOME)/kafka/.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
RUN := $(UV) run --frozen
export MICROSTRUCTURE_HOME ?= $(CURDIR)/var
# Numba's on-disk cache, shared by CLI, Dagster runs and tests.
export NUMBA_CACHE_DIR ?= $(CURDIR)/var/numba-cache

.PHONY: help sync fmt lint type test test-fast test-kafka test-vertica cov-kernels demo dev dev-demo \
        kafka-up kafka-down mcp bench up down udx-install compose-check clean

help:
	@echo "make demo         install, start Kafka, replay a real day end to end, query it over MCP"
	@echo "make test         install, start what the tests need, run lint and the whole suite"
	@echo "make dev          Dagster UI (http://127.0.0.1:3000) on the local state in ./var"
	@echo "make kafka-up     start the local Kafka broker (kafka-down stops it)"
	@echo "make mcp          MCP server over streamable HTTP on 127.0.0.1:8765 (needs MCP_AUTH_TOKEN)"
	@echo "make bench        every benchmark, figures printed"
	@echo "make test-vertica the warehouse contract suite against VERTICA_HOST etc."
	@echo "make lint|fmt|type|cov-kernels|compose-check|clean"

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: the dependencies' .pyc are written once here, because this environment
# (and many containers) sets PYTHONDONTWRITEBYTECODE, and every process would otherwise
# compile mcp, pydantic, numpy, ... from source at each start (the MCP server: ~5 s -> ~2 s).
sync: $(UV)
	$(UV) sync --frozen --compile-bytecode

fmt: sync
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

lint: sync
	$(UV) lock --check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

type: sync
	$(RUN) pyright

# The suite starts its own Kafka broker (tests/conftest.py); jars are fetched once here.
test: sync lint
	$(RUN) microstructure kafka fetch
	CI=$${CI:-1} $(RUN) pytest

test-fast: sync
	$(RUN) pytest -m "not kafka" -x -q

test-kafka: sync
	$(RUN) pytest -m kafka

test-vertica: sync
	$(RUN) pytest -m vertica -p no:randomly

cov-kernels: sync
	MICRO_DISABLE_NUMBA=1 NUMBA_DISABLE_JIT=1 $(RUN) pytest tests/udx --cov=udx/kernels --cov-report=term-missing

demo: sync
	$(RUN) microstructure demo

dev: sync
	mkdir -p $(MICROSTRUCTURE_HOME)/dagster
	DAGSTER_HOME=$(MICROSTRUCTURE_HOME)/dagster $(RUN) dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

kafka-up: sync
	$(RUN) microstructure kafka up

kafka-down: sync
	$(RUN) microstructure kafka down

mcp: sync
	$(RUN) microstructure serve-mcp --http

bench: sync
	$(RUN) microstructure bench kernels
	$(RUN) microstructure bench load
	$(RUN) microstructure bench stream
	$(RUN) microstructure bench mcp
	$(RUN) microstructure bench serve

udx-install:
	@echo "see udx/vertica/README.md: run udx/vertica/build_depends.sh on the Vertica initiator, then vsql -f udx/vertica/install.sql"

compose-check: sync
	$(RUN) pytest tests/test_docker.py -q

up:
	docker compose -f docker/compose.yaml up -d

down:
	docker compose -f docker/compose.yaml down

clean:
	-$(RUN) microstructure kafka down
	rm -rf var .pytest_cache

# The Dagster UI on the state `make demo` leaves in var/demo (its runs, assets, partitions).
dev-demo: sync
	MICROSTRUCTURE_HOME=$(CURDIR)/var/demo MICROSTRUCTURE_KAFKA_PORT=19192 \
	DAGSTER_HOME=$(CURDIR)/var/demo/dagster \
	$(RUN) dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000
