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

admin: $(STAMP)  ## datasette on the ticket database, 127.0.0.1:8001, read-only
	$(BIN)/inquiry-bot admin

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench

bench: $(STAMP)  ## benchmarks; figures go into README.md
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/triage_eval.py
	$(BIN)/python bench/classify_speed.py
	$(BIN)/python bench/escalation_scale.py

chaos: $(STAMP)  ## long fault runs: 500 mails/10 SIGKILLs, IMAP down 30 s + SMTP 60 s, 5000 fuzz cases
	INQUIRY_BOT_CHAOS=1 HYPOTHESIS_PROFILE=chaos $(BIN)/python -m pytest -q -s \
		tests/test_chaos.py tests/test_fuzz.py tests/test_hostile_mail.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
