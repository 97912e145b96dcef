# Two entry points (see README): `make app` and `make test`. Everything else is setup they call.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: app test setup setup-dev lint unit slow browser bench clean-data

app: setup
	$(BIN)/streamlit run app.py --server.port $(PORT) --server.address localhost

test: setup-dev lint
	$(BIN)/python -m pytest -q -m "not slow"

# Idempotent: each step checks a stamp or the artifact and returns at once when done.
setup:
	@PY=$(PY) scripts/setup.sh

setup-dev:
	@PY=$(PY) DEV=1 scripts/setup.sh

lint:
	$(BIN)/ruff check interp tests pages app.py scripts

slow: setup-dev
	$(BIN)/python -m pytest -q -m slow

bench: setup
	$(BIN)/python scripts/bench_pipeline.py
