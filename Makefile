# Two commands on a fresh clone: `make run` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON310 ?= $(shell PYENV_VERSION=3.10.13 pyenv which python3.10 2>/dev/null || command -v python3.10 2>/dev/null)
RASA_VENV := .venv-rasa
APP_VENV := .venv-app
RASA := $(RASA_VENV)/bin/rasa
PY := $(APP_VENV)/bin/python
MODEL := models/current.tar.gz
TRAINING_FILES = config.yml domain.yml rasa_ext/masking.py rasa_ext/symbols.py $(shell find data -name '*.yml' | sort)

export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONPATH := $(CURDIR)
export ACTION_SERVER_URL ?= http://127.0.0.1:5055/webhook

.PHONY: help run test setup check-python train migrate demo lint format typecheck bandit audit pytest \
        validate story-test e2e browser-deps bench bench-nlu bench-chat bench-handoff lock lock-app lock-rasa clean \
        run-prod fault bench-prod bench-events bench-dashboard checks nginx

help:
	@echo "make run    - set up everything and start the chat (http://127.0.0.1:8000/)"
	@echo "make test   - set up everything and run every check"
	@echo "other: setup train migrate demo lint format typecheck pytest validate story-test e2e bench lock clean"

check-python:
	@if [ -z "$(PYTHON310)" ] || ! "$(PYTHON310)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then \
	  echo "ERROR: Python 3.10 is required (Rasa 3.6 does not run on 3.11+)." >&2; \
	  echo "Install it (e.g. 'pyenv install 3.10.13') or pass PYTHON310=/path/to/python3.10." >&2; \
	  exit 1; fi

$(RASA_VENV)/.installed: requirements/rasa.txt | check-python
	@test -x $(RASA_VENV)/bin/python || $(PYTHON310) -m venv $(RASA_VENV)
	$(RASA_VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip==24.2
	$(RASA_VENV)/bin/pip install -q --disable-pip-version-check -r requirements/rasa.txt
	@touch $@

# The app venv gets the runtime packages and the development tools (dev.txt includes
# app.txt); the production image installs app.txt alone.
$(APP_VENV)/.installed: requirements/app.txt requirements/dev.txt | check-python
	@test -x $(APP_VENV)/bin/python || $(PYTHON310) -m venv $(APP_VENV)
	$(APP_VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip==24.2
	$(APP_VENV)/bin/pip install -q --disable-pip-version-check -r requirements/dev.txt
	@touch $@

# The two environments are installed side by side (pip is mostly unpacking, one core each).
setup: | check-python
	@$(MAKE) --no-print-directory -j2 $(RASA_VENV)/.installed $(APP_VENV)/.installed

# Retrains only when config, domain, training data or our NLU components changed (content fingerprint).
train: $(RASA_VENV)/.installed
	@fingerprint=$$(sha256sum $(TRAINING_FILES) | sha256sum | cut -c1-16); \
	if [ -f $(MODEL) ] && [ "$$(cat models/.fingerprint 2>/dev/null)" = "$$fingerprint" ]; then \
	  echo "Model is up to date (fingerprint $$fingerprint)."; \
	else \
	  echo "Training the model (fingerprint $$fingerprint)..."; start=$$(date +%s); \
	  $(RASA) train --fixed-model-name current --out models --quiet && \
	  echo "$$fingerprint" > models/.fingerprint && \
	  echo "Trained in $$(( $$(date +%s) - start )) s."; \
	fi

migrate: $(APP_VENV)/.installed
	$(PY) -m bot migrate

demo: migrate
	$(PY) -m bot demo

run: setup train demo
	$(PY) -m bot staff demo
	$(PY) -m bot run

# Production profile on the local PostgreSQL, Redis and RabbitMQ (docs/deploy.md): two Rasa
# workers, two action servers, two web replicas; refuses to start if a service is down.
run-prod: setup train nginx
	$(PY) -m bot run --prod

# nginx in front of the web replicas and the action servers (deploy/nginx.conf, issue #25):
# found on PATH or in /usr/sbin, else the Debian package is installed when we are root;
# otherwise it says what to do and stops.
NGINX_FOUND = { test -n "$$NGINX" && test -x "$$NGINX"; } || command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || test -x /usr/local/sbin/nginx
nginx:
	@$(NGINX_FOUND) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "nginx not found: installing the Debian package (apt-get install -y nginx)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq nginx >/dev/null \
	      || { apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq nginx >/dev/null; }; \
	  fi; \
	  $(NGINX_FOUND) || { echo "Cannot find or install nginx (needed in front of the web replicas and action servers). Install it yourself (Debian/Ubuntu: sudo apt-get install -y nginx; Fedora: dnf install nginx; macOS: brew install nginx) or set NGINX=/path/to/nginx, then run this again." >&2; exit 1; }; }

lint: $(APP_VENV)/.installed
	$(APP_VENV)/bin/ruff format --check .
	$(APP_VENV)/bin/ruff check .

format: $(APP_VENV)/.installed
	$(APP_VENV)/bin/ruff format .
	$(APP_VENV)/bin/ruff check --fix .

typecheck: $(APP_VENV)/.installed
	$(APP_VENV)/bin/mypy

# Security (docs/security.md): bandit fails on high-severity, high-confidence findings;
# `audit` adds pip-audit on the three lock files, which needs PyPI's per-version JSON API and
# exits 2 saying so when it cannot read it (so it is not part of `make test`).
bandit: $(APP_VENV)/.installed
	$(PY) -m tools.security_audit bandit

audit: bandit
	$(PY) -m tools.security_audit pip-audit

# Unit and integration tests on SQLite and, when reachable, PostgreSQL.
pytest: $(APP_VENV)/.installed
	$(PY) -m pytest -m "not e2e and not browser and not fault" -q -rs -n 2

validate: $(RASA_VENV)/.installed
	$(RASA) data validate --fail-on-warnings --quiet

story-test: train
	$(RASA) test core --stories tests/ --model $(MODEL) --fail-on-prediction-errors --out var/results/core --quiet

browser-deps:
	@command -v chromium >/dev/null || { echo "Installing Debian's chromium for the browser tests..."; \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  { echo "ERROR: could not install chromium (apt-get install -y chromium)." >&2; exit 1; }; }

# End-to-end and browser tests against the real model, action server and web service.
e2e: setup train browser-deps
	$(PY) -m pytest -m "e2e or browser" -q -rs

# Production profile killed (-9) under load: Rasa, an action server, PostgreSQL (a few minutes).
fault: setup train nginx
	$(PY) -m pytest -m fault tests/fault -q -rs -s

# Every check of a fresh clone within 20 minutes on 2 cores (docs/benchmarks.md). Two at a
# time (TEST_JOBS=2): first the checks up to the story tests (training, validation and the
# story tests beside lint, types, bandit and the unit tests; none reads what another
# writes, the unit tests never need the model), then the e2e and the fault stages side by
# side (both mostly wait on replies and think times, about 0.6 of a core together; e2e on
# its fixed ports, fault on free ports, its own PostgreSQL cluster, Redis db 9/10 and its
# own queue). Each target's output is printed when it ends (--output-sync).
# `make test TEST_JOBS=1` runs everything one after the other, as before.
TEST_JOBS ?= 2
test: setup
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) --output-sync=target checks
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) --output-sync=target e2e fault
	@echo "All checks passed."

checks: train validate story-test lint typecheck bandit pytest

# Benchmarks print their figures with a baseline from the same run (docs/benchmarks.md).
bench: bench-nlu bench-chat bench-prod bench-handoff bench-events bench-dashboard bench-knowledge

bench-nlu: setup train
	$(PY) -m bench.nlu_eval

bench-chat: setup train
	$(PY) -m bench.chat_load

# Chat load on the production profile (2 replicas) vs the embedded default, same run.
bench-prod: setup train
	$(PY) -m bench.chat_load.prod

bench-handoff: setup
	$(PY) -m bench.handoff_latency
	$(PY) -m bench.handoff_latency --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/handoff_bench

# Shop events webhook on PostgreSQL (own database events_bench), 10 % replays, 401 baseline.
bench-events: setup
	$(PY) -m bench.events

# Dashboard endpoints on 1 M feedback rows in PostgreSQL (own database dashboard_bench).
bench-dashboard: setup
	$(PY) -m bench.dashboard

# Knowledge answers on the held-out questions (issue #19): correctness, p95, model load, memory.
bench-knowledge: setup
	$(PY) -m bench.knowledge

# Rebuilds the three lock files from their .in files in throw-away venvs (needs the package
# index): app.txt (runtime, the production image), dev.txt (the development tools, resolved
# with app.txt as constraints so that both hold the same runtime versions; it includes
# app.txt) and rasa.txt. `make lock LOCK_DIR=/tmp/lock` writes them elsewhere, to compare.
LOCK_DIR ?= requirements
LOCK_VENV ?= /tmp/lock-venv-$(shell id -u)
LOCK_PIP = --disable-pip-version-check -q
lock: check-python
	@$(MAKE) --no-print-directory -j2 lock-app lock-rasa

lock-app: check-python
	@mkdir -p $(LOCK_DIR)
	rm -rf $(LOCK_VENV)-app && $(PYTHON310) -m venv $(LOCK_VENV)-app
	$(LOCK_VENV)-app/bin/pip install $(LOCK_PIP) --upgrade pip==24.2
	$(LOCK_VENV)-app/bin/pip install $(LOCK_PIP) -r requirements/app.in
	{ echo "# Lock file of the runtime packages (deploy/Dockerfile.app installs only these): make lock regenerates it from app.in"; \
	  $(LOCK_VENV)-app/bin/pip freeze; } > $(LOCK_VENV)-app/app.txt
	$(LOCK_VENV)-app/bin/pip install $(LOCK_PIP) -r requirements/dev.in -c $(LOCK_VENV)-app/app.txt
	{ echo "# Lock file of the development tools on top of app.txt: make lock regenerates it from dev.in"; \
	  echo "-r app.txt"; $(LOCK_VENV)-app/bin/pip freeze | grep -vxFf $(LOCK_VENV)-app/app.txt; } > $(LOCK_DIR)/dev.txt
	cp $(LOCK_VENV)-app/app.txt $(LOCK_DIR)/app.txt
	rm -rf $(LOCK_VENV)-app

lock-rasa: check-python
	@mkdir -p $(LOCK_DIR)
	rm -rf $(LOCK_VENV)-rasa && $(PYTHON310) -m venv $(LOCK_VENV)-rasa
	$(LOCK_VENV)-rasa/bin/pip install $(LOCK_PIP) --upgrade pip==24.2
	$(LOCK_VENV)-rasa/bin/pip install $(LOCK_PIP) -r requirements/rasa.in
	{ echo "# Lock file of the rasa environment: make lock regenerates it from rasa.in"; \
	  $(LOCK_VENV)-rasa/bin/pip freeze; } > $(LOCK_DIR)/rasa.txt
	rm -rf $(LOCK_VENV)-rasa

clean:
	rm -rf var/results var/log .pytest_cache .mypy_cache .ruff_cache
