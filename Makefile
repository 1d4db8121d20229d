# Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-sqlite test-postgres faults lint catalog bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/ozonbot demo $(DEMO_ARGS)

# The whole suite on SQLite, then again on PostgreSQL when one is reachable (CI always has one).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	env -u OZONBOT_TEST_DATABASE_URL $(BIN)/pytest -q
	@if $(BIN)/python -c "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('127.0.0.1',5432)))"; then \
		OZONBOT_TEST_DATABASE_URL=$${OZONBOT_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} $(BIN)/pytest -q -m "not sqlite_only"; \
	else echo "PostgreSQL not reachable on 127.0.0.1:5432: skipped the PostgreSQL run"; fi

# Only the fault suite and the authorisation matrix (both also run in `make test`); figures at the end.
faults: $(STAMP)
	$(BIN)/pytest -q tests/test_faults.py tests/test_authz.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Every benchmark scenario on loopback (SQLite, and PostgreSQL when reachable); results in bench/results/.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/ozonbot bench $(BENCH_ARGS)

# Re-extract strings and merge them into the catalogues after changing user-facing text.
catalog: $(STAMP)
	$(BIN)/pybabel extract --no-location -k N_ -o locales/messages.pot bot handlers services
	$(BIN)/pybabel update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching --width 110

clean:
	rm -rf $(VENV) data .pytest_cache
