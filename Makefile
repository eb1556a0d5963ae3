# The two commands: `make run` and `make test`. Each creates or reuses .venv and installs
# what it needs before it runs: `make run` the service (curvegan[server], torch pinned to the
# CPU build 2.13.0), `make test` that plus the dev tools (pytest, ruff, hadolint, playwright)
# and Debian's chromium for the browser tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVER_STAMP := $(VENV)/.installed-server
DEV_STAMP := $(VENV)/.installed-dev
PIP := $(BIN)/pip install --quiet --disable-pip-version-check

# PyPI's torch==2.13.0 is the CUDA build (GBs of nvidia-* wheels); PyTorch's CPU index has
# 2.13.0+cpu (~200 MB), which pip prefers (a local version sorts higher) and which still
# matches the pin. The Dockerfile names the same index. The index is added only when it
# answers within 5 s: an unreachable one (offline, a local mirror, a firewall) would cost
# pip's retries on every request, while `--retries 0` would make the real 200 MB download
# fail on one dropped connection. Without it pip takes torch from wherever it is configured
# to look (a local wheel, a mirror) or, with plain PyPI, the CUDA build.
CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH_INDEX = $$($(BIN)/python -c "import urllib.request as u; u.urlopen('$(CPU_INDEX)/torch/', timeout=5)" 2>/dev/null \
	&& echo --extra-index-url $(CPU_INDEX) \
	|| echo "note: $(CPU_INDEX) unreachable; torch comes from pip's configured indexes" >&2)

.PHONY: run train test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(SERVER_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) $(TORCH_INDEX) -e '.[server]'
	touch $(SERVER_STAMP)

$(DEV_STAMP): $(SERVER_STAMP)
	$(PIP) $(TORCH_INDEX) -e '.[server,dev]'
	touch $(DEV_STAMP)

run: $(SERVER_STAMP)
	$(BIN)/python -m service

train: $(SERVER_STAMP)
	$(BIN)/python -m gan_engine train --out checkpoints $(ARGS)

# The browser tests drive Debian's chromium: installed with apt when missing and run as root.
test: $(DEV_STAMP)
	sh scripts/ensure_chromium.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2 --dist loadscope $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/service.py
	$(BIN)/python benchmarks/runner.py
	$(BIN)/python benchmarks/sweep.py
	$(BIN)/python benchmarks/population.py
	$(BIN)/python benchmarks/load.py  # needs wrk (apt-get install -y wrk)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
