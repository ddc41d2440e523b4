# The two commands a new user runs:
#   make demo   set up (virtual environment + install), then record, train and evaluate end to end
#   make test   set up if needed and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test

$(BIN)/teleop: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch 2.13.0 first: a plain `torch` requirement would pull a multi-GB CUDA build on CPU-only machines.
	$(BIN)/pip install --quiet torch==2.13.0 || $(BIN)/pip install --quiet torch
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/teleop

setup: $(BIN)/teleop

demo: setup
	$(BIN)/teleop demo

# -n auto: one test process per core (at most 4); every test keeps its own files, displays and ports.
test: setup
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4
