# Two commands matter: `make demo` and `make test`. Each creates .venv with the pinned
# dependencies when it is missing, so each works alone on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt layers/ml/requirements*.txt | sha256sum | cut -c1-12)

.PHONY: help venv demo test test-unit test-integration test-e2e lint format validate build serve invoke bench sam-local-test clean

help:
	@echo "make demo    train on the bundled data, publish to a local S3, serve predictions"
	@echo "make test    the whole test suite (unit, integration against a moto server, e2e)"
	@echo "make lint    ruff check, ruff format --check, mypy"
	@echo "make format  apply ruff's formatting and safe fixes"
	@echo "make validate  sam validate, sam validate --lint and cfn-lint on template.yaml"
	@echo "make build   sam build (no Docker, no local python3.12 needed)"
	@echo "make serve   the template's API on http://127.0.0.1:3000 (Docker-free, moto S3)"
	@echo "make invoke FUNCTION=PredictFunction EVENT=events/predict.json   one cold invoke"
	@echo "make bench   benchmarks; writes benchmarks/RESULTS.md"
	@echo "make sam-local-test   SAM CLI's own sam local invoke/start-api, no Docker (root)"

$(STAMP): requirements-dev.txt layers/ml/requirements.txt layers/ml/requirements-lambda.txt
	@echo "==> creating $(VENV) with the pinned dependencies (first run only, about a minute)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@# The shared package lives in layers/ml (it ships in the Lambda layer); make it importable.
	@echo "$(CURDIR)/layers/ml" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/sklambda-dev.pth"
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

demo: venv
	$(PY) -m tools.local.demo

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

validate: venv
	$(SAM_ENV) sam validate
	$(SAM_ENV) sam validate --lint
	$(VENV)/bin/cfn-lint template.yaml

build: venv
	$(SAM_ENV) sam build

serve: venv
	$(PY) -m tools.local serve

invoke: venv
	$(PY) -m tools.local invoke $(FUNCTION) $(EVENT)

bench: venv
	PYTHONPATH=functions/predict:functions/retrain $(PY) -m benchmarks

# SAM CLI's own `sam local invoke` / `start-api` on template.yaml and events/, with no Docker engine:
# podman + runc, a stand-in Lambda image built here, a Docker-API proxy. Needs root (CI is root);
# without root or a CPython 3.12 it says SKIPPED and why.
sam-local-test: venv
	timeout --signal=TERM --kill-after=60 1800 $(PY) -m tools.sam_local.check

clean:
	rm -rf .aws-sam .demo artifacts .pytest_cache .mypy_cache .ruff_cache .coverage
