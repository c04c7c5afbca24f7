# One-command entry points. `make test` and `make demo` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo run once lint bench chaos admin clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)  ## run the whole test suite (real IMAP/SMTP servers on loopback)
	$(BIN)/python -m pytest -q

demo: $(STAMP)  ## embedded mail system + sample mail; Ctrl-C stops
	$(BIN)/inquiry-bot demo

run: $(STAMP)
	$(BIN)/inquiry-bot run

once: $(STAMP)
	$(BIN)/inquiry-bot once

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench

bench: $(STAMP)  ## benchmarks; figures go into README.md
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/triage_eval.py
	$(BIN)/python bench/classify_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
