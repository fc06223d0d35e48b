# Two entry points for a fresh machine (see README.md):
#   make demo   set up, then run the main job on the embedded default (no cloud, no cluster)
#   make test   set up, then run every check and test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-deps

.PHONY: setup source-view system-deps demo test lint unit bench clean schema examples

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# A plain editable install: the sources are used where they are, so files added later need
# nothing. Dependencies are reinstalled only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[deploy,dev]'
	touch $(STAMP)

# checkov gets a virtualenv of its own: its pins conflict with the project's (pyproject.toml,
# [tool.workstack]).
CHECKOV_STAMP := $(VENV)/.installed-checkov
$(CHECKOV_STAMP): pyproject.toml | $(BIN)/python
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install --quiet "$$($(BIN)/python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["tool"]["workstack"]["checkov"])')"
	touch $(CHECKOV_STAMP)

setup: $(STAMP) $(CHECKOV_STAMP)

# mypy and lint-imports cannot run the editable install's import hook that maps cli/,
# components/ and sdk/ onto workstack.*: they read build/src, a tree of links laid out by
# import name, rewritten before every run (scripts/source-view says why and how).
VIEW := build/src
source-view:
	$(BIN)/python scripts/source-view --out $(VIEW)

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

lint: setup source-view
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MYPYPATH=$(VIEW) $(BIN)/mypy -p workstack -p stacks
	PYTHONPATH=$(VIEW) $(BIN)/lint-imports

# Debian packages the integration tests run for real (see scripts/deps/).
system-deps:
	scripts/install-system-deps

unit: setup system-deps examples
	$(BIN)/pytest

test: lint unit

# Pulumi.yaml's config block is generated from the settings models.
schema: setup
	$(BIN)/python -m stacks.schema --write

# Benchmarks compare ratios measured in one run and rewrite docs/benchmarks.md.
bench: setup system-deps
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) $(EXAMPLES_VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
