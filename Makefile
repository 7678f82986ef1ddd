# Two commands matter: `make demo` and `make test`. Each creates .venv with the pinned
# dependencies when it is missing, so each works alone on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt layers/ml/requirements*.txt | sha256sum | cut -c1-12)

.PHONY: help venv browser demo test test-unit test-integration test-e2e lint format validate checkov build serve invoke batch bench sam-local-test clean

help:
	@echo "make demo    train on the bundled data, publish to a local S3, serve predictions (VERBOSE=1: logs)"
	@echo "make test    the whole test suite (unit, integration against a moto server, e2e)"
	@echo "make lint    ruff check, ruff format --check, mypy"
	@echo "make format  apply ruff's formatting and safe fixes"
	@echo "make validate  sam validate, sam validate --lint and cfn-lint on template.yaml; asl-validator on statemachines/"
	@echo "make checkov   checkov on template.yaml (its own venv, no network; skips are inline)"
	@echo "make build   sam build (no Docker, no local python3.12 needed)"
	@echo "make serve   the template's API on http://127.0.0.1:3000 (PORT=...; Docker-free, moto S3)"
	@echo "make invoke FUNCTION=PredictFunction EVENT=events/predict.json   one cold invoke"
	@echo "make batch INPUT=file.csv   a batch transform job, locally (the state machine's definition, moto S3)"
	@echo "make bench   benchmarks; writes benchmarks/RESULTS.md"
	@echo "make sam-local-test   SAM CLI's own sam local invoke/start-api, no Docker (root)"

# How many packages are pinned (requirements-dev.txt and the files it includes), for the progress line.
PINNED = $(shell cat requirements-dev.txt layers/ml/requirements*.txt | grep -E '^[A-Za-z0-9]' | sort -u | wc -l)

$(STAMP): requirements-dev.txt layers/ml/requirements.txt layers/ml/requirements-lambda.txt
	@echo "==> setting up $(VENV) with the pinned dependencies (first run only: 2-4 minutes on a fresh machine)"
	@if test -x $(PY); then echo "==> [1/4] $(VENV) exists: reusing it"; \
	else echo "==> [1/4] creating $(VENV) with $$($(PYTHON) --version 2>&1)"; $(PYTHON) -m venv $(VENV); fi
	@echo "==> [2/4] upgrading pip"
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@echo "==> [3/4] installing $(PINNED) pinned packages and their dependencies (pip's progress follows)"
	@$(PY) -m pip install --disable-pip-version-check -r requirements-dev.txt | awk \
		'/^Collecting /{ print; fflush() } \
		/^Installing collected packages:/{ print "Installing " split($$0, p, ",") " packages ..."; fflush() } \
		/^Successfully installed /{ print "Successfully installed " NF - 2 " packages"; fflush() }'; \
		test $${PIPESTATUS[0]} -eq 0
	@echo "==> [4/4] making the shared package (layers/ml/sklambda) importable"
	@# The shared package lives in layers/ml (it ships in the Lambda layer); make it importable.
	@echo "$(CURDIR)/layers/ml" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/sklambda-dev.pth"
	@rm -f $(VENV)/.installed-*
	@touch $@
	@echo "==> $(VENV) is ready"

venv: $(STAMP)

# make demo VERBOSE=1: also the functions' logs (START/END/REPORT, JSON log lines, EMF metrics).
demo: venv
	$(if $(VERBOSE),VERBOSE=$(VERBOSE) )$(PY) -m tools.local.demo

test: venv
	$(PY) -m pytest --cov --cov-report=term:skip-covered

test-unit: venv
	$(PY) -m pytest -m unit

test-integration: venv
	$(PY) -m pytest -m integration

test-e2e: venv
	$(PY) -m pytest -m e2e

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: venv
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# SAM CLI must not phone home from CI or demos: no telemetry, and the venv's tools come first.
AWS_REGION ?= us-east-1
SAM_ENV := SAM_CLI_TELEMETRY=0 AWS_REGION=$(AWS_REGION) AWS_DEFAULT_REGION=$(AWS_REGION) PATH="$(CURDIR)/$(VENV)/bin:$$PATH"
FUNCTION ?= PredictFunction
EVENT ?= events/predict.json
PORT ?= 3000

# asl-validator (npm, pinned in tools/asl/package-lock.json; node_modules is git-ignored) checks
# statemachines/*.asl.json, which cfn-lint does not read (DefinitionUri). `npm ci` runs when the
# lock file changes; tools/asl/.npmrc turns off the update notifier, funding and audit calls.
ASL_NPM := NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false npm
ASL_VALIDATOR := tools/asl/node_modules/.bin/asl-validator
ASL_STAMP := tools/asl/node_modules/.installed-$(shell sha256sum tools/asl/package-lock.json | cut -c1-12)

$(ASL_STAMP): tools/asl/package-lock.json
	@command -v node >/dev/null || { echo "make validate: asl-validator needs Node.js (node, npm)"; exit 2; }
	$(ASL_NPM) ci --prefix tools/asl --silent
	@rm -f tools/asl/node_modules/.installed-*
	@touch $@

validate: venv $(ASL_STAMP)
	$(SAM_ENV) sam validate
	$(SAM_ENV) sam validate --lint
	$(VENV)/bin/cfn-lint template.yaml
	$(ASL_VALIDATOR) $(addprefix --json-path ,$(wildcard statemachines/*.asl.json))

# checkov in its own venv: its boto3 pin conflicts with SAM CLI's. Offline but for PyPI: no
# platform API key (so no upload), --skip-download and BC_SKIP_MAPPING (no policy metadata from
# the platform), CKV_SKIP_PACKAGE_UPDATE_CHECK (no version check). Each skip is in the template,
# with its reason, in the resource's Metadata (checkov: skip: [{id, comment}]).
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell sha256sum requirements-checkov.txt | cut -c1-12)
CHECKOV_ENV := env -u BC_API_KEY -u PRISMA_API_URL CKV_SKIP_PACKAGE_UPDATE_CHECK=true \
	BC_SKIP_MAPPING=TRUE LOG_LEVEL=WARNING

$(CHECKOV_STAMP): requirements-checkov.txt
	@echo "==> setting up $(CHECKOV_VENV) for checkov (first run only: about a minute)"
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@rm -f $(CHECKOV_VENV)/.installed-*
	@touch $@

checkov: $(CHECKOV_STAMP)
	$(CHECKOV_ENV) $(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation \
		--skip-download --compact --quiet

build: venv
	$(SAM_ENV) sam build

serve: venv
	$(PY) -m tools.local serve --port $(PORT)

invoke: venv
	$(PY) -m tools.local invoke $(FUNCTION) $(EVENT)

batch: venv
	@test -n "$(INPUT)" || { echo "usage: make batch INPUT=file.csv (CSV with a header row, or .jsonl)"; exit 2; }
	$(PY) -m tools.local.statemachine $(INPUT) --concurrency $(or $(CONCURRENCY),4)

bench: venv
	PYTHONPATH=functions/predict:functions/retrain $(PY) -m benchmarks

# Debian's chromium + chromium-driver for the browser tests (as root, with apt-get). `make test`
# alone installs them too, or skips those tests and says why; CI runs this first so that a
# missing browser fails the run instead of skipping the Swagger and model report tests.
browser: venv
	$(PY) -c 'import sys; from tests.browser import chromium_unavailable as u; r = u(); print("==> browser:", r or "chromium and chromedriver ready"); sys.exit(1 if r else 0)'

# SAM CLI's own `sam local invoke` / `start-api` on template.yaml and events/, with no Docker engine:
# podman + runc, a stand-in Lambda image built here, a Docker-API proxy. Needs root (CI is root);
# without root or a CPython 3.12 it says SKIPPED and why.
sam-local-test: venv
	timeout --signal=TERM --kill-after=60 1800 $(PY) -m tools.sam_local.check

clean:
	rm -rf .aws-sam .demo artifacts .pytest_cache .mypy_cache .ruff_cache .coverage
