# rtvbp-bridge — everything a fresh machine needs goes through these targets.
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
TOOLS     := .tools/bin
HELM      := $(TOOLS)/helm
PROMTOOL  := $(TOOLS)/promtool
ASYNCAPI_SCHEMA := .tools/asyncapi/3.0.0.json
HOST      ?= 127.0.0.1
PORT      ?= 8080
PYTEST_ARGS ?=

export BRIDGE_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/

.PHONY: help venv run test test-cluster promtool check lint typecheck unit helm-tool asyncapi-schema node-agent contract-tools contract-types go-deps rabbitmq demo bench bench-full clean

help:
	@echo "make run    - bootstrap the venv and serve on ws://$(HOST):$(PORT)/ against a local RabbitMQ"
	@echo "make test   - lint, type-check and run the whole test suite"
	@echo "make unit   - every test that needs no RabbitMQ (no broker started)"
	@echo "make test-cluster - start a 3-node RabbitMQ cluster with TLS here; failover and AMQPS tests"
	@echo "make demo   - broker + bridge + example agent + simulated call, then print the timeline"
	@echo "make bench  - quick benchmark (bridge vs I/O floor); bench-full for the whole curve"

CONSUMER  := clients/python

# The consumer library (its own distribution) goes into the same venv, editable, with its Pipecat extra.
$(STAMP): pyproject.toml $(CONSUMER)/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v 'is ignored' || true
	$(BIN)/python -m pip install -q -e '.[dev]' -e './$(CONSUMER)[pipecat]' 2>&1 | grep -v 'is ignored' || true
	$(BIN)/python -c "import bridge, websockets, aio_pika, msgpack, jwt, pydantic_settings"
	$(BIN)/python -c "import rtvbp_consumer, rtvbp_consumer.pipecat"
	touch $(STAMP)

venv: $(STAMP)

rabbitmq:
	@scripts/ensure-rabbitmq.sh

run: venv rabbitmq
	BRIDGE_HOST=$(HOST) BRIDGE_PORT=$(PORT) $(BIN)/rtvbp-bridge serve

# Helm is not in any registry this project reaches as a Debian/PyPI package; the AWS CDK kubectl
# layer on npm bundles the real static binary (scripts/fetch-helm.sh).
$(HELM):
	scripts/fetch-helm.sh $(TOOLS)

helm-tool: $(HELM)

# promtool checks and unit-tests the chart's alert rules; Debian's `prometheus` package ships it
# (unpacked only, the server is neither installed nor started: scripts/fetch-promtool.sh).
$(PROMTOOL):
	scripts/fetch-promtool.sh $(TOOLS)

promtool: $(PROMTOOL)

# The official AsyncAPI 3.0.0 meta-schema, to validate schemas/asyncapi.yaml (npm: @asyncapi/specs).
$(ASYNCAPI_SCHEMA):
	scripts/fetch-asyncapi-schema.sh $(ASYNCAPI_SCHEMA)

asyncapi-schema: $(ASYNCAPI_SCHEMA)

# The Node.js consumer example (and its test) needs its npm packages, pinned by the lockfile.
NODE_AGENT := examples/node-agent
NODE_STAMP := $(NODE_AGENT)/node_modules/.installed

$(NODE_STAMP): $(NODE_AGENT)/package.json $(NODE_AGENT)/package-lock.json
	npm ci --prefix $(NODE_AGENT) --no-audit --no-fund
	touch $(NODE_STAMP)

node-agent: $(NODE_STAMP)

# Contract tooling, pinned by its lockfile: the official AsyncAPI parser (what generators see of
# schemas/), json-schema-to-typescript and tsc.
CONTRACT_TOOLS := scripts/contract
CONTRACT_STAMP := $(CONTRACT_TOOLS)/node_modules/.installed

$(CONTRACT_STAMP): $(CONTRACT_TOOLS)/package.json $(CONTRACT_TOOLS)/package-lock.json
	npm ci --prefix $(CONTRACT_TOOLS) --no-audit --no-fund
	touch $(CONTRACT_STAMP)

contract-tools: $(CONTRACT_STAMP)

# Regenerate the committed types from schemas/ (tests fail while a committed copy is stale).
contract-types: $(CONTRACT_STAMP) venv go-deps
	node $(CONTRACT_TOOLS)/gen-ts.mjs schemas $(NODE_AGENT)/contract.d.ts
	$(BIN)/python scripts/gen_go_types.py schemas examples/go-agent/contract_types.go

# The Go example agent builds from Debian packages (toolchain, amqp091-go, msgpack/v5), no module proxy.
go-deps:
	@scripts/ensure-go.sh

lint: venv
	$(BIN)/ruff check bridge tests bench examples $(CONSUMER)
	$(BIN)/ruff format --check bridge $(CONSUMER)

typecheck: venv
	$(BIN)/mypy bridge
	$(BIN)/mypy $(CONSUMER)/src

check: lint typecheck

# Every test that needs no RabbitMQ (tests that do are marked `broker`, see tests/conftest.py).
unit: venv $(HELM) $(PROMTOOL) $(ASYNCAPI_SCHEMA)
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(BIN)/pytest -q -p no:cacheprovider -m "not broker" $(PYTEST_ARGS)

test: check rabbitmq go-deps $(HELM) $(PROMTOOL) $(ASYNCAPI_SCHEMA) $(NODE_STAMP) $(CONTRACT_STAMP)
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Own RabbitMQ nodes (own names, ports, data dirs) beside the machine's broker, which stays untouched;
# rabbitmq (the target) only makes sure the RabbitMQ package is installed and epmd runs.
test-cluster: venv rabbitmq
	$(BIN)/pytest -q -p no:cacheprovider tests/cluster $(PYTEST_ARGS)

demo: venv rabbitmq
	$(BIN)/python -m bridge.demo

bench: venv rabbitmq
	$(BIN)/python -m bench.run --quick

bench-full: venv rabbitmq
	$(BIN)/python -m bench.run --full

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache $(NODE_AGENT)/node_modules $(CONTRACT_TOOLS)/node_modules
