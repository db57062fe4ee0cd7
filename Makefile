# Quick start: `make demo` (set up + default backtest), `make test` (set up + tests).
PY := .venv/bin/python

.PHONY: setup demo test lint bench evaluate clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) run_backtest.py

test: setup
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench: setup
	$(PY) -m benchmarks

evaluate: setup
	$(PY) -m evaluation

clean:
	rm -rf var reports .pytest_cache
