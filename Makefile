# TechBank: `make run` serves the embedded stack, `make test` runs the whole suite.
# Both start from nothing but Python 3.11+: the virtualenv and everything in it
# are made here. `make test` also installs what the full-stack tests need
# (mysqlclient and its headers, newman, a compose validator); where that is not
# possible it says so, and those tests skip, except on CI (CI set to anything but
# empty, false or 0: scripts/is-ci.sh), where they fail.
#
# Every requirements-*.txt pins every package, dependencies too; they are made
# from the hand-edited requirements-*.in by `make lock` (pip-tools).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test test-sqlite test-mariadb test-unit lint format install install-dev test-tools lock migrate demo-user compat bench bench-quick mutation mutation-sample clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip check
	touch $@

# The dev and bench files hold the product's pins too (at the same versions).
$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip check
	touch $@

$(VENV)/.installed-mutation: requirements-mutation.txt $(VENV)/.installed-dev
	$(BIN)/pip install --quiet -r requirements-mutation.txt
	$(BIN)/pip check
	touch $@

$(VENV)/.installed-bench: requirements-bench.txt $(VENV)/.installed-dev
	$(BIN)/pip install --quiet -r requirements-bench.txt
	touch $@

# Pins every package from the hand-edited requirements-*.in (pip-tools' pip-compile,
# in its own virtualenv). Existing pins are kept where they still fit; to move one,
# change its line in the .in file (or delete the .txt) and run this again.
LOCK_VENV := .venv-lock
$(LOCK_VENV)/.installed: requirements-lock.txt
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet -r requirements-lock.txt
	touch $@

lock: $(LOCK_VENV)/.installed
	for name in requirements requirements-dev requirements-bench requirements-mutation; do \
	  CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet --no-strip-extras --allow-unsafe \
	    --no-emit-index-url --no-emit-find-links --no-emit-trusted-host --output-file $$name.txt $$name.in || exit 1; \
	done

# The eventsourcing library's baseline (bench/peers) needs Django < 5.2: its own virtualenv.
# After test-tools, which installs the client headers mysqlclient compiles against.
PEER_VENV := .venv-peer
$(PEER_VENV)/.installed: bench/requirements-peer.txt | test-tools
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet --upgrade pip
	$(PEER_VENV)/bin/pip install --quiet -r bench/requirements-peer.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

node_modules/.installed: package.json package-lock.json
	@if command -v npm >/dev/null; then npm ci --silent --no-audit --no-fund && touch $@; \
	else echo "test-tools: npm not found: the Postman (newman) tests will skip"; ! scripts/is-ci.sh; fi

# Tools the full-stack tests use; each script says what it did in one line.
test-tools: install-dev node_modules/.installed
	@scripts/install-mysqlclient.sh $(VENV) || ! scripts/is-ci.sh
	@scripts/install-compose-validator.sh || ! scripts/is-ci.sh

migrate: install
	$(BIN)/python manage.py migrate --no-input

demo-user: migrate
	$(BIN)/python manage.py create_demo_staff --port $(PORT)

run: demo-user
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

# The whole suite on SQLite (the MongoDB- and Kafka-protocol servers are started
# by the tests), then the database-backed tests again on MariaDB.
test: test-tools
	$(BIN)/python -m pytest
	scripts/test-mariadb.sh tests/integration

test-sqlite: test-tools
	$(BIN)/python -m pytest

test-mariadb: test-tools
	scripts/test-mariadb.sh tests/integration

# The fast unit tests only (no database, no servers): seconds, for the edit-test loop.
test-unit: install-dev
	$(BIN)/python -m pytest tests/unit tests/architecture -q

# Lint, format check, type check (settings in pyproject.toml) and the import rule (ARCHITECTURE.md);
# .ci/run runs it before the tests.
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest tests/architecture -q -p no:cacheprovider

# Rewrites the code in the house format and applies ruff's safe fixes.
format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The techbank users' Postman collection (../shared/compat) against a real server.
compat: install node_modules/.installed
	scripts/run-compat.sh

# The benchmark suite: one table, every figure a ratio against a baseline from the
# same run; JSON in bench/results/. See BENCHMARKS.md.
bench: test-tools $(VENV)/.installed-bench $(PEER_VENV)/.installed
	$(BIN)/python -m bench

# A small version of it (under a minute): CI runs it so the suite keeps working.
bench-quick: test-tools $(VENV)/.installed-bench $(PEER_VENV)/.installed
	$(BIN)/python -m bench --quick

# Mutation testing with mutmut, one worker (docs/mutation.md): each target's score
# against its goal; exit status 1 if one is short. mutmut works in mutants/.
mutation: $(VENV)/.installed-mutation
	$(BIN)/python scripts/mutation.py

# A fixed sample of money-critical functions, in about a minute.
mutation-sample: $(VENV)/.installed-mutation
	$(BIN)/python scripts/mutation.py --sample

clean:
	rm -rf $(VENV) $(PEER_VENV) $(LOCK_VENV) node_modules .test-db*.sqlite3* mutants
