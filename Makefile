# The README names these targets. Each one prepares what it needs first.
VENV := .venv
PY := $(VENV)/bin/python
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 1
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1

.PHONY: setup test test-unit test-lambda-runtime lint drill bench synth charts clean

setup:
	@bash scripts/bootstrap.sh

# The test command: set-up, then the whole suite. The drill tests run in a process of their own: a
# drill builds a whole system in-process and leaves process-wide state (moto, boto3's default
# session) that the IAM-enforced end-to-end tests would see. pytest's exit code 5 (no test ran) fails too.
test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -p no:cacheprovider -m "not drill" $(PYTEST_ARGS)
	$(PY) -m pytest -p no:cacheprovider -m drill $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-lambda-runtime

# The handler-level tests again on the Python the functions are deployed on (.venv-lambda: only
# requirements.txt and the test tools, so a dev-only import fails here as it would in Lambda), and
# the probe's HTTP/TCP checks (its own HTTP/1.1 exchange over asyncio's TLS: 3.13 verifies stricter).
# Left out: the drill report, its readiness section and timeline (matplotlib) and the cold failover test (renders the bootstrap with
# the CDK app's stacks.cold_site): local tooling, never in a Lambda. Without aws_cdk the
# end-to-end and probe tests run the handlers without IAM enforcement (the main suite enforces it).
LAMBDA_TESTS := tests/unit tests/integration/test_failover_end_to_end.py \
	tests/integration/test_wiring.py tests/integration/test_probe_handler.py \
	tests/integration/test_probes_http_tcp.py \
	--ignore=tests/unit/test_report.py --ignore=tests/unit/test_timeline_states.py \
	--ignore=tests/unit/test_drill_readiness.py \
	--deselect=tests/integration/test_failover_end_to_end.py::test_cold_failover_launches_one_instance_and_waits_for_the_bootstrap_callback
test-lambda-runtime: setup
	@if [ -f .venv-lambda/.missing ]; then echo "SKIPPED test-lambda-runtime: $$(cat .venv-lambda/.missing)"; \
	else .venv-lambda/bin/python -m pytest -p no:cacheprovider $(LAMBDA_TESTS); fi

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
	$(VENV)/bin/drctl cost --config config/watchdog.example.yaml
	$(PY) bench/policies.py

synth: setup
	$(PY) app.py

# The Mermaid charts of statemachines/ in README.md, drawn from the definitions.
charts: setup
	$(PY) -m quorum_dr.state_machines README.md

clean:
	rm -rf cdk.out drill-report .pytest_cache .mypy_cache .ruff_cache
