# vitalsentry — every target creates and uses .venv by itself.
# torch 2.13.0 is installed first so that no dependency pulls another (multi-GB) build.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SHARED_VITALS := ../shared/datasets/raw/human_vital_signs_dataset_2024__mlh_subset.csv
DEMO_OUT ?= demo-output
DEMO_ARGS ?=

.PHONY: install demo test lint bench serve clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[serve,dev,archive]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/vitalsentry demo --out $(DEMO_OUT) $(if $(wildcard $(SHARED_VITALS)),--vitals-csv $(SHARED_VITALS)) $(DEMO_ARGS)

# One OpenMP thread per process: tests run processes side by side (DDP, CLI subprocesses),
# and oversubscribed OpenMP threads on 2 cores slow torch and scikit-learn by orders of magnitude.
test: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: install
	mkdir -p bench-results
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b --quick --out bench-results/$$(basename $$b .py).json || exit 1; done

# Serves the demo's bundle (built first if absent) and replays the demo's simulated cohort
# into the monitoring mode in the background, so the web view at / fills as a ward would.
# A key with the score and view scopes is generated for this run, printed, and added to
# VITALSENTRY_API_KEYS; the monitoring database defaults to $(DEMO_OUT)/monitor.sqlite3.
SERVE_PORT ?= 8000
SERVE_URL  := http://127.0.0.1:$(SERVE_PORT)
serve: install
	test -f $(DEMO_OUT)/bundle/manifest.json || $(MAKE) demo
	@set -- $$($(BIN)/vitalsentry keygen --plain --scope score --scope view); KEY=$$1; REPLAY=; \
	export VITALSENTRY_API_KEYS="$${VITALSENTRY_API_KEYS:+$$VITALSENTRY_API_KEYS,}$$2"; \
	export VITALSENTRY_DATABASE_URL="$${VITALSENTRY_DATABASE_URL:-sqlite:///$(abspath $(DEMO_OUT))/monitor.sqlite3}"; \
	export VITALSENTRY_MONITOR_MC_PASSES="$${VITALSENTRY_MONITOR_MC_PASSES:-10}"; \
	export VITALSENTRY_PURGE_EVERY_S="$${VITALSENTRY_PURGE_EVERY_S:-0}"; \
	$(BIN)/vitalsentry serve --bundle $(DEMO_OUT)/bundle --port $(SERVE_PORT) & SERVER=$$!; \
	trap 'kill $$SERVER $$REPLAY 2>/dev/null' INT TERM EXIT; \
	until $(BIN)/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1])' $(SERVE_URL)/readyz 2>/dev/null; do \
	  kill -0 $$SERVER 2>/dev/null || exit 1; sleep 1; done; \
	echo "web view: $(SERVE_URL)/ - log in with the key $$KEY (also the X-API-Key of the API)"; \
	echo "replaying $(DEMO_OUT)/data/cohort.parquet into the monitoring mode (the ward fills as it goes)"; \
	$(BIN)/vitalsentry replay $(DEMO_OUT)/data/cohort.parquet --url $(SERVE_URL) --key $$KEY & REPLAY=$$!; \
	wait $$SERVER

# Chromium + chromedriver from the OS packages for the browser tests (tests/web), when absent.
browser:
	.ci/browser.sh

clean:
	rm -rf $(VENV) $(DEMO_OUT) bench-results
