# One-command entry points. `make test` and `make demo` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ADMIN_CONFIG ?= $(if $(wildcard state/demo/config.toml),state/demo/config.toml,config.toml)

.PHONY: test demo run once lint bench chaos admin clean model

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# An editable install is not byte-compiled; where PYTHONDONTWRITEBYTECODE is set (many
	# containers) every command would recompile ~90 modules (~0.3 s) at each start.
	$(BIN)/python -m compileall -q bot
	touch $(STAMP)

test: $(STAMP)  ## the test suite (real IMAP/SMTP servers on loopback), one worker per core; slow fault runs: make chaos
	$(BIN)/python -m pytest -q -n auto -m "not slow"

demo: $(STAMP)  ## embedded mail system + sample mail; Ctrl-C stops
	$(BIN)/inquiry-bot demo

run: $(STAMP)
	$(BIN)/inquiry-bot run

once: $(STAMP)
	$(BIN)/inquiry-bot once

admin: $(STAMP)  ## datasette read-only on 127.0.0.1:8001: the demo's database after `make demo`, else ./config.toml's
	$(BIN)/inquiry-bot --config $(ADMIN_CONFIG) admin

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench

model: $(STAMP)  ## rebuild the shipped triage model (bot/triage/model.json) and print its figures
	$(BIN)/python bench/triage_eval.py --write-model

bench: $(STAMP)  ## benchmarks; figures go into README.md
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/triage_eval.py
	$(BIN)/python bench/classify_speed.py
	$(BIN)/python bench/escalation_scale.py
	$(BIN)/python bench/hostile.py
	$(BIN)/python bench/reply_extraction.py

chaos: $(STAMP)  ## the slow fault and flood tests, then long fault runs: 500 mails/10 SIGKILLs, IMAP down 30 s + SMTP 60 s, 5000 fuzz cases
	$(BIN)/python -m pytest -q -n auto -m slow
	INQUIRY_BOT_CHAOS=1 HYPOTHESIS_PROFILE=chaos $(BIN)/python -m pytest -q -s \
		tests/test_chaos.py tests/test_fuzz.py tests/test_hostile_mail.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
