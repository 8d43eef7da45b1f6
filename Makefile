# Hospital admin portal: `make run` serves the demo, `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(VENV)/bin/pip
PYTEST_ARGS ?=
# Independent tests run in parallel: pytest-xdist workers, one per core plus one (tests often
# wait on the database or a server); `make test PYTEST_PARALLEL=` runs them in one process.
PYTEST_PARALLEL ?= -n $(shell echo $$(( $$(nproc) + 1 ))) --dist worksteal

.PHONY: run test test-sqlite test-mysql bench bench-quick wrk install install-test install-bench clean
BENCH_ARGS ?=

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PIP) install --quiet -r requirements-test.txt
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed requirements-bench.txt
	$(PIP) install --quiet -r requirements-bench.txt
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-bench: $(VENV)/.installed-bench

## Serve the portal on http://127.0.0.1:8000 (SQLite and demo data unless DATABASE_URL is set).
run: $(VENV)/.installed
	$(PY) main.py

## Run the tests on SQLite, then on MySQL/MariaDB when TEST_DATABASE_URL is set.
test: $(VENV)/.installed-test
	env -u TEST_DATABASE_URL $(PY) -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== MySQL/MariaDB pass: $$TEST_DATABASE_URL"; \
		$(PY) -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS); \
	else \
		echo "TEST_DATABASE_URL is not set: the MySQL/MariaDB pass was not run."; \
	fi

## Benchmarks on MariaDB (BENCH_DATABASE_SERVER, default root@127.0.0.1:3306), recorded in docs/benchmarks.md.
## `make bench BENCH_ARGS=--quick` (or `make bench-quick`) finishes in about two minutes.
bench: $(VENV)/.installed-bench wrk
	$(PY) bench/run.py $(BENCH_ARGS)

bench-quick: $(VENV)/.installed-bench wrk
	$(PY) bench/run.py --quick $(BENCH_ARGS)

# The benchmarks' load generator comes from Debian; installed when missing (needs root).
wrk:
	@command -v wrk >/dev/null 2>&1 || { echo "== installing wrk (apt-get install wrk)"; \
		(apt-get install -y -qq wrk || (apt-get update -qq && apt-get install -y -qq wrk)) >/dev/null 2>&1 \
		|| { echo "wrk is missing and could not be installed: run 'apt-get install wrk' as root." >&2; exit 1; }; }

clean:
	rm -rf $(VENV) portal.db portal.db-wal portal.db-shm tests/artifacts
