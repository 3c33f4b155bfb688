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
	$(BIN)/python -m pip install --quiet -e '.[serve,dev]'
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

# Serves the demo's bundle (built first if absent). Without VITALSENTRY_API_KEYS a key is
# generated for this run and printed; requests need it in the X-API-Key header.
serve: install
	test -f $(DEMO_OUT)/bundle/manifest.json || $(MAKE) demo
	@if [ -z "$$VITALSENTRY_API_KEYS" ]; then \
	  set -- $$($(BIN)/vitalsentry keygen --plain); \
	  echo "VITALSENTRY_API_KEYS is not set: generated a key for this run: X-API-Key: $$1"; \
	  export VITALSENTRY_API_KEYS="$$2"; \
	fi; \
	$(BIN)/vitalsentry serve --bundle $(DEMO_OUT)/bundle

# Chromium + chromedriver from the OS packages for the browser tests (tests/web), when absent.
browser:
	.ci/browser.sh

clean:
	rm -rf $(VENV) $(DEMO_OUT) bench-results
