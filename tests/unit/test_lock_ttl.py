"""The incident lock's TTL against the longest execution the configured timings allow.

`longest_execution` is the one count the config validator uses; these tests hold it against
numbers worked out by hand from the function timeouts (`quorum_dr.functions.timeout`) and the
ASL's retry policy (4 attempts, backoffs 2 + 4 + 8 s): a Lambda Task's worst case is
4 x timeout + 14 s."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from quorum_dr.cli import main
from quorum_dr.config import ConfigError, parse_config
from quorum_dr.failover.longest_path import longest_execution
from quorum_dr.failover.request import start_incident
from quorum_dr.functions import timeout


@pytest.fixture()
def example(example_config_path: Path) -> dict[str, Any]:
    return yaml.safe_load(example_config_path.read_text())


def longest(data: dict[str, Any]) -> int:
    config = parse_config(data)
    return longest_execution(config, config.services[0]).seconds


def failover(data: dict[str, Any]) -> dict[str, Any]:
    return data["services"][0]["failover"]


def test_without_an_explicit_ttl_the_lock_lasts_the_longest_execution(example: dict[str, Any]) -> None:
    config = parse_config(example)
    service = config.services[0]
    assert service.failover.lock_ttl_seconds is None
    expected = longest_execution(config, service).seconds
    incident = start_incident(
        {"service": "booking", "to": "dr", "reason": "drill", "requested_by": "alice"},
        execution_name="inc-1",
        started_at=None,
        config=config,
        now=1000.0,
    )
    assert int(incident.lock.expires_at) - int(incident.lock.now) == expected
    assert incident.execution_name == "inc-1"


def test_an_explicit_ttl_shorter_than_the_longest_execution_is_an_error_naming_its_field(
    example: dict[str, Any],
) -> None:
    need = longest(copy.deepcopy(example))
    config = parse_config(copy.deepcopy(example))
    which = longest_execution(config, config.services[0]).path  # the hot or the cold path
    failover(example)["lock_ttl_seconds"] = need - 1
    with pytest.raises(ConfigError) as caught:
        parse_config(example)
    (problem,) = caught.value.problems
    assert problem.startswith(
        f"services.0.failover.lock_ttl_seconds: {need - 1} s is shorter than the longest execution "
        f"these timings allow, {which}: {need} s (largest: "
    )
    assert problem.endswith(f"give at least {need} or leave it out to use that")
    failover(example)["lock_ttl_seconds"] = need
    assert parse_config(example).services[0].failover.lock_ttl_seconds == need


def test_drctl_config_validate_exits_two_for_the_old_one_hour_ttl(
    example: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failover(example)["lock_ttl_seconds"] = 3600
    path = tmp_path / "ttl.yaml"
    path.write_text(yaml.safe_dump(example))
    assert main(["config", "validate", str(path)]) == 2
    assert "services.0.failover.lock_ttl_seconds: 3600 s is shorter than" in capsys.readouterr().err


def test_each_confirmation_round_adds_a_retried_round_and_a_wait(example: dict[str, Any]) -> None:
    base = longest(copy.deepcopy(example))
    example["confirmation"] = {"max_rounds": 5, "wait_seconds": 10}
    assert longest(example) - base == 4 * timeout("confirm_outage") + 14 + 10


def test_the_mode_wait_counts_the_whole_veto_or_approval_window(example: dict[str, Any]) -> None:
    base = longest(copy.deepcopy(example))  # mode auto: no wait
    failover(example)["mode"] = "approve"
    # the approval wait, then the notify invocations retried 3 times with their backoffs
    assert longest(copy.deepcopy(example)) - base == 1800 + 3 * timeout("notify") + 14
    failover(example)["mode"] = "veto"
    assert longest(example) - base == 120 + 3 * timeout("notify") + 14


def test_a_slow_cold_site_makes_the_cold_path_the_longest(example: dict[str, Any]) -> None:
    example["services"][0]["cold_site"]["ready_timeout_seconds"] = 20000
    config = parse_config(example)
    path = longest_execution(config, config.services[0])
    assert path.path == "the cold failover path"
    assert ("LaunchColdSite", 20000 + 3 * timeout("launch_cold_site") + 14) in path.parts


def test_no_execution_outlives_the_state_machine_timeout(example: dict[str, Any]) -> None:
    # the longest approval wait the config allows (a day), plus everything else on the path
    failover(example).update(mode="approve", approval_timeout_seconds=86400)
    config = parse_config(example)
    path = longest_execution(config, config.services[0])
    assert path.seconds == 86400 + 60 and "capped by the execution timeout" in path.path
