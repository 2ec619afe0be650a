# Dynamo CSMS — `make run` (local, embedded defaults), `make test`, and `make serve` (production gateway).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Tests run against the real services on this machine (override to point elsewhere). The suite's process
# loses pool slots to threads that end holding a connection (closed on the server when the thread is collected,
# still counted by psycopg's pool): 100 slots, not 40, so a long run does not exhaust them (round 52's CI did).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/dynamo_csms
TEST_REDIS_URL ?= redis://127.0.0.1:6379/9

.PHONY: run serve test install install-dev migrate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# `make run` installs the runtime only (requirements.txt); `make test` adds the test and benchmark
# tools (requirements-dev.txt). pip prints each package as it goes.
$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	@echo "Installing the runtime requirements into $(VENV) (first run: about a minute)"
	$(BIN)/pip install --progress-bar on -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt requirements.txt | $(BIN)/python
	@echo "Installing the runtime, test and benchmark requirements into $(VENV)"
	$(BIN)/pip install --progress-bar on -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime-installed

install-dev: $(VENV)/.dev-installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

run: migrate
	@HOST=$(HOST) PORT=$(PORT) BIN=$(BIN) exec ./scripts/run.sh

# One daphne worker per core on HOST:PORT (SO_REUSEPORT); needs DATABASE_URL and REDIS_URL. WORKERS overrides.
serve: install
	@HOST=$(HOST) PORT=$(PORT) $(BIN)/python scripts/serve.py --production

test: install-dev
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) CSMS_DB_POOL_MAX=100 CSMS_DB_POOL_TIMEOUT=30 \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache
