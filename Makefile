# Each target is self-sufficient on a fresh machine (Python 3.11 + a C compiler).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test fuzz lint bench bench-tools soak demo browser clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[embedded,dev]'
	touch $(STAMP)

install: $(STAMP)

## run: embedded Redis + sandbox bank + AS on http://127.0.0.1:8000 (Ctrl-C stops all)
run: install
	$(BIN)/python -m aggregator.runner

## browser: Debian's Chromium for the end-to-end tests (Playwright drives it)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

## test: the whole suite against real Redis, real HTTP servers and headless Chromium
test: install browser
	$(BIN)/python -m pytest -q

## fuzz: the OpenAPI fuzz run (schemathesis) with FUZZ_EXAMPLES per operation and mode; not part of `test`
FUZZ_EXAMPLES ?= 500
fuzz: install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -s --timeout=3600 -p no:cacheprovider \
	  tests/foundation/test_openapi.py -k fuzz

lint: install
	$(BIN)/ruff check .

## demo: the AS, the sandbox bank and the example Grapher app (prints what to click)
demo: install
	$(BIN)/python -m examples.demo

## bench: benchmarks (not part of the tests): introspection against the peer (panva's
## oidc-provider, npm-installed under bench/peer/), the fsync and cluster costs, then the soak run
bench: install bench-tools
	$(BIN)/python -m bench

## bench-tools: wrk (the load generator of the peer comparison) and Node.js with npm for the peer
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "installing Debian wrk for the benchmark"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing Debian nodejs and npm for the benchmark's peer"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }

## soak: the soak run alone (make run under load, Redis and AS workers killed); SOAK_SECONDS of load
SOAK_SECONDS ?= 150
soak: install
	$(BIN)/python -m bench --soak --soak-seconds $(SOAK_SECONDS)

clean:
	rm -rf $(VENV) .pytest_cache
