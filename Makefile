# Two commands matter: `make demo` and `make test`. Each creates .venv with the pinned
# dependencies when it is missing, so each works alone on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt layers/ml/requirements*.txt | sha256sum | cut -c1-12)

.PHONY: help venv demo test test-unit test-integration test-e2e lint format clean

help:
	@echo "make demo    train on the bundled data, publish to a local S3, serve predictions"
	@echo "make test    the whole test suite (unit, integration against a moto server, e2e)"
	@echo "make lint    ruff check, ruff format --check, mypy"
	@echo "make format  apply ruff's formatting and safe fixes"

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
	$(PY) -m training.local.demo

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

clean:
	rm -rf .aws-sam .demo artifacts .pytest_cache .mypy_cache .ruff_cache .coverage
