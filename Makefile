# The two commands: `make demo` and `make test`. Everything else is a convenience.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv browser lock airflow docs stop status lint clean bench

demo: $(STAMP)  ## venv, embedded PostgreSQL, simulated CRM, crm_ingest + crm_transform through Airflow
	$(BIN)/crmwh demo $(if $(SCALE),--scale $(SCALE))

test: $(STAMP) browser  ## the whole test suite, on its own embedded PostgreSQL
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the browser tests drive Debian's headless Chromium through its matching chromedriver; installed here
# when missing (as root, or with sudo); elsewhere those tests skip, except under CI=true where they fail
BROWSER_PACKAGES := chromium chromium-driver
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif ! command -v apt-get >/dev/null; then echo "No apt-get: install Chromium and chromedriver for the browser tests."; \
	else SUDO="$$([ "$$(id -u)" = 0 ] || echo sudo -n) env DEBIAN_FRONTEND=noninteractive"; \
	  echo "Installing $(BROWSER_PACKAGES) for the browser tests"; \
	  $$SUDO apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null \
	  || { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null; } \
	  || echo "Could not install $(BROWSER_PACKAGES): the browser tests will skip (fail under CI=true)."; fi

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

lock:  ## re-resolve pyproject.toml's dependencies into requirements.lock
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade "pip>=24"
	.lock-venv/bin/python -m pip install --quiet setuptools wheel -e ".[dev,bench]"
	.lock-venv/bin/python -m pip check
	{ echo "# Every package, pinned. Regenerate with \`make lock\` after changing pyproject.toml."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable --all | grep -v "^pip=="; } > requirements.lock
	rm -rf .lock-venv

airflow: $(STAMP)  ## the Airflow UI (airflow standalone) with the project's DAGs and connections
	$(BIN)/crmwh airflow

docs: $(STAMP)  ## build and serve the dbt docs site
	$(BIN)/crmwh docs

status: $(STAMP)
	$(BIN)/crmwh status

stop:  ## stop the embedded PostgreSQL
	@if [ -x $(BIN)/crmwh ]; then $(BIN)/crmwh stop; else echo "Nothing to stop (no .venv)."; fi

bench: $(STAMP)  ## benchmarks against same-run baselines; BENCH_ARGS="--quick" for the smoke test
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check plugins dags tests bench

clean: stop
	rm -rf .data dbt_project/target dbt_project/logs
