# Set-up is idempotent: the virtual environment is made once, the project is reinstalled only
# when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hrl-installed
# The program sets its own thread pools (hrl_runtime/threads.py); nothing here renders.
export MUJOCO_GL ?= disable

.PHONY: demo test bench lint clean setup

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	# The CPU build of torch first: a looser request would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,ray]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hrl demo --out runs/demo

test: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --check --no-cache .
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/hrl bench

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) runs .pytest_cache
