# The README names these targets. Each one prepares what it needs first.
VENV := .venv
PY := $(VENV)/bin/python
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 1
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1

.PHONY: setup test test-unit lint drill bench synth clean

setup:
	@bash scripts/bootstrap.sh

# The test command: set-up, then the whole suite. pytest's exit code 5 (no test ran) fails too.
test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy quorum_dr quorum_dr_local lambdas

drill: setup
	$(VENV)/bin/drctl drill $(SCENARIO)

bench: setup
	$(PY) bench/probe_round.py
	$(PY) bench/action_phase.py

synth: setup
	$(PY) app.py

clean:
	rm -rf cdk.out drill-report .pytest_cache .mypy_cache .ruff_cache
