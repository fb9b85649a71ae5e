# exchange-hub: the two commands of the README, and a few helpers.
#   make demo   - the whole flow on the embedded default (DuckDB, SQLite, simulated systems)
#   make test   - every test, plus ruff check, ruff format --check and mypy

UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen

.PHONY: demo test lint manifest bench-extract bench-gate clean install

install: .venv/.installed node_modules/.package-lock.json

.venv/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	UV_COMPILE_BYTECODE=1 $(UV) sync --frozen  # bytecode once, not on every start
	@touch $@

# the portal's browser assets (htmx; Bootstrap, jQuery, Font Awesome, Vega for the GX Data
# Docs), from the npm registry into node_modules/, which the hub serves: no CDN at run time
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	@touch $@

demo: install
	$(RUN) hub demo

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

# target/manifest.json (dbt parse, ~5 s when stale): the build_shared DAG is rendered from it
manifest: install
	$(RUN) python -m hub.build

test: lint manifest
	$(RUN) pytest

bench-extract: install
	$(RUN) python bench/extract.py

bench-gate: install
	$(RUN) python bench/gate.py

clean:
	rm -rf state .pytest_cache .mypy_cache .ruff_cache

.PHONY: bench-api
bench-api: install
	$(RUN) python bench/api.py
