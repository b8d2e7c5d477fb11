# Heron: the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test unit integration lint fmt clean features bench bench-heron bench-engines bench-scale bench-micro fuzz web

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

run: $(STAMP) web
	@echo "Heron: clients on 127.0.0.1:5222 (STARTTLS) and 5223 (TLS);"
	@echo "       chat in a browser at http://127.0.0.1:5280/chat"
	$(VENV)/bin/heron serve

# The browser side: Converse.js for /chat and Playwright for the browser test, when npm is
# here (without it the page says how to enable it). Nothing under web/node_modules is committed.
web:
	@if command -v npm >/dev/null 2>&1; then \
		test -d web/node_modules/converse.js -a -d web/node_modules/playwright-core || \
		npm install --prefix web --no-audit --no-fund --no-package-lock --loglevel=error; \
	else echo "npm not found: /chat will explain how to install the web client"; fi

test: $(STAMP) web
	PYTHONASYNCIODEBUG=1 $(PY) -m pytest -q -p no:cacheprovider tests

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

integration: $(STAMP)
	$(PY) -m pytest -q tests/integration tests/hostile

lint: $(STAMP)
	$(VENV)/bin/ruff format --check heron tests
	$(VENV)/bin/ruff check heron tests
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff format heron tests
	$(VENV)/bin/ruff check --fix heron tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

features: $(STAMP)
	$(PY) -m heron.features --write

# Load figures with the shared harness (needs ../shared/bench); never part of `make test`.
# `make bench`: Heron beside Prosody and ejabberd, three runs, the README's table
# (BENCH_RUNS=1 for a quick look). `make bench-heron`: Heron alone, one run.
bench: $(STAMP)
	bench/run-all $${BENCH_RUNS:-3}

bench-heron: $(STAMP)
	bench/run-heron
	$(PY) bench/mam_query.py 1000000

# Storage engines side by side (W2 archive on, W4; SQLite and PostgreSQL), and scaling
# with workers (1-4, 3 nodes) beside ejabberd on both cores.
bench-engines: $(STAMP)
	bench/run-engines

bench-scale: $(STAMP)
	bench/run-scale

# Hot paths in seconds, compared with the previous run (bench/results/micro.jsonl).
bench-micro: $(STAMP)
	$(PY) bench/micro.py

# Long fuzzing runs (10 minutes a target); crashes are written to fuzz-artifacts/.
fuzz: $(STAMP)
	mkdir -p fuzz-artifacts fuzz-corpus/parser fuzz-corpus/stanzas
	for target in parser stanzas; do \
		PYTHONPATH=. $(PY) tests/fuzz/fuzz_c2s.py $$target -max_total_time=600 \
			-artifact_prefix=fuzz-artifacts/ fuzz-corpus/$$target || exit 1; \
	done
