# snapkeep developer entry points. Every target creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOME_DIR ?= $(CURDIR)/var
HOST ?= 127.0.0.1
PORT ?= 3035
DATA ?=
SIZE ?= 2G

.PHONY: run test test-fast bench lint format servers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/snapkeep --home $(HOME_DIR) serve --host $(HOST) --port $(PORT)

servers:
	bash scripts/test-servers.sh

test: $(VENV)/.installed-test servers
	$(BIN)/python -m pytest -q

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m "not slow" -x

bench: $(VENV)/.installed-test
	bash scripts/bench-tools.sh
	$(BIN)/python bench/run.py --size $(SIZE) $(if $(DATA),--data $(DATA),)

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
