# cloudsql-backups: every command a user or CI runs. Needs only python3, git and make.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
# Use the uv on PATH if there is one; otherwise bootstrap a pinned uv into .tools/.
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := python3
RUN := $(UV) run --frozen --no-sync
STACKS := staging prod
STACK ?= staging

.PHONY: help setup check test lint bench export smoke restore-drill policy-docs clean

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	@touch $@

# The policy pack runs in its own virtualenv, where `pulumi preview --policy-pack policies` expects it.
policies/venv/.installed: policies/requirements.txt | $(UV)
	$(UV) venv --quiet --allow-existing policies/venv
	$(UV) pip install --quiet --python policies/venv/bin/python -r policies/requirements.txt
	@touch $@

setup: .venv/.synced policies/venv/.installed ## Install the project and policy-pack virtualenvs (offline once cached)

check: setup ## Render staging and prod offline and run the policy gate over them
	$(RUN) python -m tools.render $(STACKS)

test: setup ## Run the whole test suite (offline)
	$(RUN) pytest

lint: setup ## ruff, mypy, workflow schema and zizmor checks
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy infra/cloudsql_backups infra/__main__.py ops tools tests benchmarks
	MYPYPATH=policies $(RUN) mypy --python-executable policies/venv/bin/python policies
	$(RUN) check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(RUN) zizmor --offline .github/workflows

bench: setup ## Benchmarks: policy gate, restore and export verification throughput
	$(RUN) python -m benchmarks

export: setup ## Run the logical export by hand against a stack's outputs: make export STACK=prod
	$(RUN) python -m ops.export.manual --stack $(STACK)

smoke: setup ## Post-deploy smoke test of a stack (runs its export job, checks alerts): make smoke STACK=staging
	$(RUN) python -m ops.smoke --stack $(STACK) $(ARGS)

restore-drill: setup ## The quarterly restore drill (see DR_RUNBOOK.md): make restore-drill ARGS="..."
	$(RUN) python -m ops.restore_drill $(ARGS)

policy-docs: setup ## Regenerate policies/README.md from the pack
	$(RUN) python -m tools.policy_docs

clean: ## Remove virtualenvs and caches
	rm -rf .venv .tools policies/venv .pytest_cache .mypy_cache .ruff_cache
