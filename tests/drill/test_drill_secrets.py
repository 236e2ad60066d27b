"""Issue 11, "Secrets and what is stored": a secret planted in the probes' check URLs (user-info and
a query value) appears in nothing a whole drill run stores, publishes, logs or prints.

The run is the shipped main-outage scenario through the real orchestrator, so the secret goes
everywhere a probe's view goes: results in every region's table, ProbeFailed events on the bus, the
execution's input and history, the incident record, the alert topic's messages, the functions'
logs, the probe agents' and applications' logs, events.jsonl, the report and the terminal output.
Whatever AWS holds is read from moto just before the drill tears it down.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from quorum_dr.config import WatchdogConfig
from quorum_dr_local.drill import orchestrator
from quorum_dr_local.system_config import COLD_REGION, HOME_REGION, PROBE_REGIONS
from tests.drill.test_drill_scenarios import assert_nothing_left, run_scenario

pytestmark = pytest.mark.timeout(300)

PASSWORD = "Pl4ntedPassw0rd"
TOKEN = "pl4nted-query-t0ken"
SECRETS = (PASSWORD, TOKEN)


def _planted(build: Callable[..., WatchdogConfig]) -> Callable[..., WatchdogConfig]:
    """The drill's config builder, with user-info and a token query on every HTTP check's URL."""

    def build_with_secrets(*args: Any, **kwargs: Any) -> WatchdogConfig:
        data = build(*args, **kwargs).model_dump(mode="json")
        for service in data["services"]:
            for site in service["sites"].values():
                for check in (site or {}).get("checks", []):
                    if check["type"] == "http":
                        url = urlsplit(check["url"])
                        check["url"] = f"{url.scheme}://ops:{PASSWORD}@{url.netloc}{url.path}?token={TOKEN}"
        return WatchdogConfig.model_validate(data)

    return build_with_secrets


def _stored_by_aws(drill: Any) -> Iterator[tuple[str, str]]:
    """(where, text) for everything the run left in moto: every table's items in every region, every
    execution's input, output and history, the alert topic's queued messages."""
    import boto3

    for region in sorted({HOME_REGION, COLD_REGION, *PROBE_REGIONS}):
        dynamodb = boto3.client("dynamodb", region_name=region)
        for table in dynamodb.list_tables()["TableNames"]:
            for page in dynamodb.get_paginator("scan").paginate(TableName=table):
                yield f"dynamodb {region}/{table}", json.dumps(page["Items"])
    harness = drill.harness
    for execution in harness.sfn.list_executions(stateMachineArn=harness.machine_arn)["executions"]:
        described = harness.sfn.describe_execution(executionArn=execution["executionArn"])
        where = f"execution {execution['name']}"
        yield where, json.dumps([described.get("input"), described.get("output")])
        yield where + " history", json.dumps(harness.history(execution["executionArn"]), default=str)
    sqs = boto3.client("sqs", region_name=HOME_REGION)
    for url in sqs.list_queues().get("QueueUrls", []):
        for _ in range(50):  # bounded drain
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            yield f"queue {url}", json.dumps(messages)


def _files(folder: Path, *, skip: set[str]) -> Iterator[tuple[str, str]]:
    for path in sorted(folder.rglob("*")):
        if (
            path.is_file()
            and path.name not in skip
            and path.suffix in {".log", ".json", ".jsonl", ".md", ".txt"}
        ):
            yield str(path), path.read_text(encoding="utf-8", errors="replace")


def test_a_secret_planted_in_the_check_urls_is_in_nothing_a_drill_run_stores_logs_or_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(orchestrator, "drill_config", _planted(orchestrator.drill_config))
    seen: list[tuple[str, str]] = []
    planted: list[str] = []
    teardown = orchestrator.Drill.teardown

    def read_then_teardown(drill: Any) -> list[str]:
        if drill.cloud is not None and getattr(drill, "harness", None) is not None:
            seen.extend(_stored_by_aws(drill))
            # the world's own folder: the probe agents' and applications' logs; the config itself
            # (watchdog.json) is where the operator wrote the secret, and is not judged
            seen.extend(_files(drill.world.workdir, skip={"watchdog.json"}))
            planted.append(drill.world.config_path.read_text(encoding="utf-8"))
        return teardown(drill)

    monkeypatch.setattr(orchestrator.Drill, "teardown", read_then_teardown)

    code, report = run_scenario("main-outage", tmp_path)

    assert code == 0, report.get("drill_notes") or report["expectations"]
    seen.extend(_files(tmp_path, skip=set()))
    printed = capsys.readouterr()
    seen.append(("terminal", printed.out + printed.err))
    assert planted and PASSWORD in planted[0] and TOKEN in planted[0], "the probes ran with the secret"
    wheres = {where.split(" ")[0] for where, _ in seen}
    assert {"dynamodb", "execution", "terminal"} <= wheres, "the scan must cover what AWS held"
    assert any("events.jsonl" in where for where, _ in seen) and any("agent-" in w for w, _ in seen)
    probed = [text for where, text in seen if "results" in where]
    assert probed and any("/health" in text for text in probed), "results were stored and scanned"
    leaks = [f"{secret!r} in {where}" for where, text in seen for secret in SECRETS if secret in text]
    assert not leaks, "a planted secret leaked:\n  " + "\n  ".join(leaks)
    assert_nothing_left()
