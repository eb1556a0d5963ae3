# The two commands: `make run` and `make test`. Each creates or reuses .venv and installs
# what the project needs (torch pinned to the CPU build 2.13.0) before it runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run train test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[server,dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m service

train: $(STAMP)
	$(BIN)/python -m gan_engine train --out checkpoints $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/service.py
	$(BIN)/python benchmarks/runner.py
	$(BIN)/python benchmarks/sweep.py
	$(BIN)/python benchmarks/load.py  # needs wrk (apt-get install -y wrk)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
