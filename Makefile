# Two entry points for a fresh machine: `make run` (the batch job on the embedded
# synthetic data) and `make test` (lint + the whole test suite). Both create the virtual
# environment and install the pinned stack on first use; pip's cache makes reinstalls fast.
# `make airflow` installs Apache Airflow into a venv of its own (its pins conflict with
# TensorFlow's) for the DAG's test: MTLREC_AIRFLOW_VENV=$PWD/.airflow-venv make test.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AIRFLOW_VENV ?= .airflow-venv

.PHONY: run test lint install airflow clean

$(STAMP): pyproject.toml
	command -v $(PYTHON) >/dev/null 2>&1 || { echo "needs $(PYTHON) (CPython 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

airflow:
	deploy/schedule/install_airflow.sh $(AIRFLOW_VENV)

run: $(STAMP)
	$(BIN)/mtlrec run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest -ra

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) mtlrec-work
