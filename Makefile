# snapkeep developer entry points. Every target creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOME_DIR ?= $(CURDIR)/var
HOST ?= 127.0.0.1
PORT ?= 3035
DATA ?=
SIZE ?= 2G

.PHONY: run test test-fast bench bench-load bench-nodes reliability lint format servers lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Install the locked versions (requirements*.lock, made by `make lock`), then the project itself
# without resolving again, and check that the lock satisfies pyproject.toml; reinstall when the
# project metadata or a lock file changes.
$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check || { echo 'requirements.lock does not fit pyproject.toml: make lock'; exit 1; }
	touch $@

$(VENV)/.installed-test: pyproject.toml requirements-test.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-test.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check || { echo 'requirements-test.lock does not fit pyproject.toml: make lock'; exit 1; }
	touch $@ $(VENV)/.installed

# Regenerate the lock files from pyproject.toml in fresh virtual environments.
lock:
	PYTHON=$(PYTHON) bash scripts/lock.sh

run: $(VENV)/.installed
	@echo "data directory $(HOME_DIR); for later snapkeep commands in another shell:"
	@echo "  export SNAPKEEP_HOME=$(HOME_DIR) PATH=$(CURDIR)/$(BIN):\$$PATH"
	$(BIN)/snapkeep --home $(HOME_DIR) serve --host $(HOST) --port $(PORT)

servers:
	bash scripts/test-servers.sh

# Lint first (fail fast), then the whole suite: this is what CI runs (.ci/run).
test: lint servers
	$(BIN)/python -m pytest -q

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m "not slow" -x

bench: $(VENV)/.installed-test
	bash scripts/bench-tools.sh
	$(BIN)/python bench/run.py --size $(SIZE) $(if $(DATA),--data $(DATA),)
	$(BIN)/python bench/load.py
	$(BIN)/python bench/nodes.py

# The API under load (2,000 jobs, 50 clients for 60 s; one client's lists at 100 to 10,000 jobs):
# about 2 minutes; writes bench/load-results.json and its block of docs/RELIABILITY.md.
bench-load: $(VENV)/.installed-test
	$(BIN)/python bench/load.py

# 10 node processes x 50 tiny jobs on one PostgreSQL (127.0.0.1:5432) for 2 minutes, then a drain:
# runs per minute, claim latency, statements per run, none lost or doubled; writes
# bench/nodes-results.json and its block of docs/SCALE.md (issue 16).
bench-nodes: $(VENV)/.installed-test
	$(BIN)/python bench/nodes.py

# kill -9 trials, crafted repositories and full disks; rewrites the tables in docs/RELIABILITY.md.
reliability: $(VENV)/.installed-test servers
	$(BIN)/python bench/reliability/run.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src/snapkeep
	$(BIN)/lint-imports

format: $(VENV)/.installed-test
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info

# schemathesis from the service's own /openapi.json against a fresh server, with root's and a second
# user's token; writes its figures into docs/RELIABILITY.md (its own generated block).
.PHONY: fuzz
fuzz: $(VENV)/.installed-test
	$(BIN)/python bench/fuzz_api.py
