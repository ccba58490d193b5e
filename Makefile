# opsbot: `make run` (the bot: the local console on ./ops.yml, or on the demo world without one) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# ./ops.yml when there is one, else the demo world (opsbot serve --demo: an in-process shop, nothing real)
CONFIG ?= $(wildcard ops.yml)
PYTEST_ARGS ?=

.PHONY: install run test test-fast mutate coverage engines lint bench clean

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
# PostgreSQL, S3), so the suite takes about half as long on two cores. The unit tests run first, in a
# random order (pytest-randomly; it prints its seed, and --randomly-seed=N repeats that order);
# the engine tests keep their files' order (their module-scoped engines are set up once per file).
test: install engines
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)
	$(BIN)/python -m pytest -n 2 --dist loadfile -p no:randomly tests/integration tests/e2e $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# deliberate breakages of the request path, approvals, redaction and the audit chain, one at a time on
# a copy: the unit tests must catch each (scripts/mutate.py; exit 1 when one survives)
mutate: install
	$(BIN)/python scripts/mutate.py

coverage: install
	$(BIN)/python -m pytest tests/unit -q --cov=bot --cov=commands --cov=adapters --cov-report=term-missing:skip-covered

# ruff, mypy (strict) and the import layers of pyproject.toml ([tool.importlinter])
lint: install
	$(BIN)/ruff check bot commands adapters tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/timing_audit.py  # no fixed sleeps or wall-clock limits in tests

bench: install
	$(BIN)/python bench/status_fanout.py
	$(BIN)/python bench/ack_latency.py
	$(BIN)/python bench/slow_clients.py
	$(BIN)/python bench/redaction.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
