# Two commands do all the set-up on a fresh machine with Python 3.11: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: install run test demo bench bench-full clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

# Migrates the database (SQLite under instance/ unless DATABASE_URL says otherwise), then runs web + worker.
run: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m connector release
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile -p $${PORT:-8000} web worker

# The whole suite, after the unit tests held to full branch coverage of connector/core (data in the git-ignored
# .coverage). With CI=true the PostgreSQL tests are required, not skipped.
test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/coverage run -m pytest -q -p no:cacheprovider tests/unit
	$(BIN)/coverage report
	$(BIN)/python -m pytest -q

# With `make run` going in another terminal: one booking per last digit, watched through the cascade.
demo: install
	$(BIN)/python -m connector demo --url http://127.0.0.1:$${PORT:-8000}

# Every benchmark, each printing its figures as ratios against a baseline measured in the same run: a few minutes
# (PostgreSQL on 127.0.0.1 and wrk needed; `make bench-full` for the sizes the README's table quotes).
bench: install
	$(BIN)/python bench/dispatch.py --quick
	$(BIN)/python bench/ingest.py --quick
	$(BIN)/python bench/naive.py --quick
	$(BIN)/python bench/backlog.py --quick
	$(BIN)/python bench/lateness.py --quick

bench-full: install
	$(BIN)/python bench/dispatch.py --postgresql
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/naive.py
	$(BIN)/python bench/backlog.py --history 1000000
	$(BIN)/python bench/lateness.py

clean:
	rm -rf $(VENV) instance .pytest_cache
