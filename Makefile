# Quick start: `make run` opens the console on a demo data dir; `make test` runs lint and tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench bench-ab clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/talon demo --data-dir .demo-data

# the suite runs on every core (pytest-xdist); WORKERS=3 runs three workers, WORKERS=0 one
# process (PYTEST_ARGS adds any other pytest option).
WORKERS ?= auto

# Bytecode caches stay on even where the shell exports PYTHONDONTWRITEBYTECODE: without them
# every xdist worker and every `talon` subprocess compiles the package again, and pytest
# rewrites its plugins (hypothesis, syrupy) again in each process (about 7 s per process here).
test: lint
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -q -p no:cacheprovider -n $(WORKERS) $(PYTEST_ARGS)

# ruff, the import contracts of pyproject.toml (import-linter), the type checks (mypy)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python bench/audit_bench.py
	$(BIN)/python bench/broker_bench.py
	$(BIN)/python bench/pipe_bench.py
	$(BIN)/python bench/intent_cost_bench.py
	$(BIN)/python bench/export_bench.py
	$(BIN)/python bench/console_bench.py
	$(BIN)/python bench/console_footer_bench.py
	$(BIN)/python bench/console_audit_bench.py
	$(BIN)/python bench/mcp_bench.py
	$(BIN)/python bench/hook_bench.py
	$(BIN)/python bench/session_replay_bench.py
	$(BIN)/python bench/mcp_upstream_bench.py
	$(BIN)/python bench/startup_bench.py

# a change to the hot path, measured on a busy machine: this tree's `talon serve` beside
# OLD's (another checkout, e.g. `git worktree add /tmp/old main`), in alternating rounds
bench-ab: $(STAMP)
	$(BIN)/python bench/pipe_ab.py $(OLD) $(or $(NEW),.)

clean:
	rm -rf $(VENV) .demo-data .pytest_cache .ruff_cache .mypy_cache .import_linter_cache
