# Two entry points for a fresh machine (see README.md):
#   make demo   set up, then run the main job on the embedded default (no cloud, no cluster)
#   make test   set up, then run every check and test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-deps

.PHONY: setup system-deps demo test lint unit bench clean examples

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

# Examples with an environment of their own: asreview-makita needs pandas < 3, which the dev
# environment's Dask extra does not allow. Reinstalled when its requirements change.
EXAMPLES_VENV := .venv-asreview
$(EXAMPLES_VENV)/.installed: workloads/asreview-makita/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(EXAMPLES_VENV)
	$(EXAMPLES_VENV)/bin/pip install --quiet --upgrade pip
	$(EXAMPLES_VENV)/bin/pip install --quiet -e '.[queue]' -r workloads/asreview-makita/requirements.txt
	touch $@

examples: $(EXAMPLES_VENV)/.installed

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

unit: setup system-deps examples
	$(BIN)/pytest

test: lint unit

# Benchmarks compare ratios measured in one run and rewrite docs/benchmarks.md.
bench: setup system-deps
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) $(EXAMPLES_VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
