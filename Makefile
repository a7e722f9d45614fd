# `make demo` and `make test` work on a fresh machine: they create .venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint serve bench clean sysdeps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/crossdock demo

# Debian packages that some tests use when they are there (redis-server: the shared rate-limit
# store; wrk: the benchmarks' load; chromium: the browser tests, driven by Playwright, which never
# downloads a browser of its own), installed when this runs as root on Debian, as CI does; the
# tests skip them otherwise.
sysdeps:
	@{ command -v redis-server && command -v wrk && test -x /usr/bin/chromium; } >/dev/null || { [ "$$(id -u)" = 0 ] \
		&& command -v apt-get >/dev/null && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server wrk chromium >/dev/null; } || true

test: $(STAMP) sysdeps
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

serve: $(STAMP)
	$(BIN)/crossdock serve

bench: $(STAMP)
	$(BIN)/crossdock bench ingest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
