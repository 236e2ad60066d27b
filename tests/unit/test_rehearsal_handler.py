"""The rehearsal's handler emits the steps' metrics (StepFailed with the error's name, StepSucceeded)
and rejects a request for a service without a cold site archive before any port is used."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from typing import Any, cast

import pytest

from quorum_dr.failover.errors import InvalidInput
from quorum_dr.rehearsal import wiring
from quorum_dr.rehearsal.service import RehearsalPorts
from tests.conftest import ROOT
from tests.fakes import make_config


def _load() -> Any:
    spec = importlib.util.spec_from_file_location(
        "rehearse_cold_site_handler", ROOT / "lambdas" / "rehearse_cold_site" / "handler.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


HANDLER = _load()  # loaded at collection, before the socket guard (Powertools' X-Ray emitter)


class Context:
    function_name = "quorum-dr-rehearse-cold-site"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-2:123456789012:function:quorum-dr-rehearse-cold-site"
    aws_request_id = "req-1"


def unused(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("no port may be used")


@pytest.fixture(autouse=True)
def ports() -> Iterator[None]:
    wiring.use(
        RehearsalPorts(
            config=make_config(),
            launcher=unused,
            figures=unused,
            terminator=unused,
            store=cast(Any, None),
            events=cast(Any, None),
            clock=lambda: 1_800_000_000.0,
        )
    )
    yield
    wiring.use(None)


def records(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]


def test_an_unknown_action_fails_with_its_metric(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InvalidInput, match="action: one of begin, launch, judge, terminate"):
        HANDLER({"action": "promote"}, Context())
    [record] = records(capsys.readouterr().out)
    assert record["step"] == "rehearse_cold_site" and record["StepFailed"] == [1.0]
    assert record["error"] == "InvalidInput"


def test_a_cold_site_without_wal_archive_is_rejected_before_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the example's cold site restores a pg_dump: there are no figures to compare with
    with pytest.raises(InvalidInput, match="configure cold_site.wal_archive"):
        HANDLER({"action": "begin", "input": {"service": "booking"}}, Context())
    [record] = records(capsys.readouterr().out)
    assert record["service"] == "booking" and record["StepFailed"] == [1.0]
