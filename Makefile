# Two entry points for a fresh machine (see README.md):
#   make demo   set up, then run the main job on the embedded default (no cloud, no cluster)
#   make test   set up, then run every check and test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-deps

.PHONY: setup system-deps demo test lint unit bench clean schema

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Dependencies are reinstalled only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[deploy,dev]' --config-settings editable_mode=strict
	touch $(STAMP)

# The strict editable install links each source file into build/; relinking picks up files
# added since, and takes a second.
setup: $(STAMP)
	$(BIN)/pip install --quiet --no-deps -e . --config-settings editable_mode=strict

# Every example workload locally (RabbitMQ for the queue example: installed if missing, a
# private node started for the run), then the minikube stack rendered and checked offline.
demo: setup
	bash scripts/deps/rabbitmq.sh
	$(BIN)/workstack demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p workstack -p stacks
	$(BIN)/lint-imports

# Debian packages the integration tests run for real (see scripts/deps/).
system-deps:
	scripts/install-system-deps

unit: setup system-deps
	$(BIN)/pytest

test: lint unit

# Pulumi.yaml's config block is generated from the settings models.
schema: setup
	$(BIN)/python -m stacks.schema --write

# Benchmarks compare ratios measured in one run and rewrite docs/benchmarks.md.
bench: setup system-deps
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
