# Quick start: `make demo` (set up + default backtest), `make test` (set up + tests).
# `make docs`: render the generated parts of README.md and docs/ (scripts/docs_render.py), then
# build the documentation site into site/ with mkdocs --strict (a broken link fails).
# NautilusTrader 2.0: `NAUTILUS=2 make test` (demo, bench) run in .venv-v2 (scripts/setup_v2.sh,
# constraints-v2.txt), which shares every package but nautilus_trader with .venv.
NAUTILUS ?= 1

.PHONY: setup demo test lint bench evaluate docs clean

ifeq ($(NAUTILUS),2)
PY := .venv-v2/bin/python
# the suite's part that has a 2.0 binding (docs/how-to/nautilus-2.md); tests/conftest.py
# imports 1.231's API
TESTS := --noconftest tests/test_engine_parity.py tests/test_v2_maker_funding.py tests/test_live_v2.py
# both engines (benchmarks/run.py is 1.231's)
BENCH := benchmarks.engines

setup:
	@bash scripts/setup.sh
	@bash scripts/setup_v2.sh
else
PY := .venv/bin/python
TESTS :=
BENCH := benchmarks

setup:
	@bash scripts/setup.sh
endif

demo: setup
	$(PY) run_backtest.py

test: setup
	$(PY) -m pytest -q $(TESTS)

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench: setup
	$(PY) -m $(BENCH)

evaluate: setup
	$(PY) -m evaluation

# always the 1.231 venv, which holds the docs extra (mkdocs, mkdocstrings)
docs: setup
	.venv/bin/python scripts/docs_render.py
	NO_MKDOCS_2_WARNING=1 .venv/bin/python -m mkdocs build --strict --site-dir site

clean:
	rm -rf var reports site .pytest_cache
