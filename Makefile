# opsbot: `make run` (the bot: the local console on ./ops.yml, or on the demo world without one) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# ./ops.yml when there is one, else the demo world (opsbot serve --demo: an in-process shop, nothing real)
CONFIG ?= $(wildcard ops.yml)
PYTEST_ARGS ?=

.PHONY: install run test test-fast engines lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/opsbot serve $(if $(CONFIG),--config $(CONFIG),--demo)

engines:
	bash scripts/install-engines

# two workers, a test file each at a time: each worker starts its own engines (dockerd, swarm,
# PostgreSQL, S3), so the suite takes about half as long on two cores
test: install engines
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# ruff, mypy (strict) and the import layers of pyproject.toml ([tool.importlinter])
lint: install
	$(BIN)/ruff check bot commands adapters tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python bench/status_fanout.py
	$(BIN)/python bench/ack_latency.py
	$(BIN)/python bench/slow_clients.py
	$(BIN)/python bench/redaction.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
