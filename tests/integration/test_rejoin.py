"""`drctl rejoin` end to end: a real PostgreSQL 15 pair after a real divergence (DR promoted, both
written), the real site agents on loopback, the real Cloudflare adapter against the API emulator,
and AWS in moto (the state table, STS, Secrets Manager for the agents' keys and the Cloudflare
token, the alert topic with a queue subscribed to read what it was told). Every wait is bounded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.adapters.tables import create_table
from quorum_dr.cli import main as drctl
from quorum_dr.config import parse_config
from quorum_dr.domain.state import utc_day
from quorum_dr_local.standins.cloudflare_emulator import CloudflareEmulator, seed_for_service
from quorum_dr_local.standins.postgres import PgPair
from tests.conftest import ROOT
from tests.integration.test_site_agent import (  # noqa: F401 - `agents` is a fixture
    KEY,
    REWIND_GRANTS,
    WAIT,
    Agent,
    agents,
    app_can_log_in,
    diverge,
    notes,
    order,
)

REGION = "eu-west-2"  # the example config's home region
TABLE = "quorum-dr-state"
TOKEN = "cf-token-rejoin-0123456789"
TOPIC = f"arn:aws:sns:{REGION}:123456789012:quorum-dr-alerts"  # moto's account, the config's topic name
EXAMPLE = ROOT / "config" / "watchdog.example.yaml"


@dataclass
class Cloud:
    store: DynamoStateStore
    queue_url: str

    def told(self) -> list[dict[str, Any]]:
        """What the alert topic delivered to its queue so far."""
        sqs = boto3.client("sqs", region_name=REGION)
        got = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = [json.loads(m["Body"]) for m in got.get("Messages", [])]
        for message in got.get("Messages", []):
            sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return messages


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    for key, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("STATE_TABLE_NAME", "ALERT_TOPIC_ARN", "QDR_CONFIG", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws():
        create_table(boto3.client("dynamodb", region_name=REGION), TABLE)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        for name, value in {
            "quorum-dr/booking/main-agent-key": KEY,
            "quorum-dr/booking/dr-agent-key": KEY,
            "quorum-dr/cloudflare-token": TOKEN,
        }.items():
            secrets.create_secret(Name=name, SecretString=value)
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        assert sns.create_topic(Name="quorum-dr-alerts")["TopicArn"] == TOPIC
        queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=TOPIC, Protocol="sqs", Endpoint=queue_arn)
        store = DynamoStateStore(TABLE, resource=boto3.resource("dynamodb", region_name=REGION))
        store.put_state(
            {"service": "booking", "active_site": "dr", "status": "FAILED_OVER"}, expected_version=0
        )
        yield Cloud(store, queue_url)


@pytest.fixture
def edge() -> Iterator[Callable[[str], CloudflareEmulator]]:
    """`edge(site)`: the Cloudflare API emulator with the service's records pointing at `site`."""
    running: list[CloudflareEmulator] = []

    def start(site: str) -> CloudflareEmulator:
        service = parse_config(yaml.safe_load(EXAMPLE.read_text())).service("booking")
        emulator = CloudflareEmulator(seed_for_service(service, TOKEN, active=site))
        emulator.__enter__()
        running.append(emulator)
        return emulator

    try:
        yield start
    finally:
        for emulator in running:
            emulator.__exit__(None, None, None)


def config_file(tmp_path: Path, main: Agent, dr: Agent, emulator: CloudflareEmulator) -> Path:
    """The example config with this pair's databases, their agents and the emulator's API."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["notifications"]["webhooks"] = []
    service = data["services"][0]
    service["edge"]["api_base_url"] = emulator.base_url
    for site, agent in (("main", main), ("dr", dr)):
        service["sites"][site]["agent"] = {
            "url": agent.url,
            "signing_secret": f"quorum-dr/booking/{site}-agent-key",
        }
        service["database"][site].update(host=agent.cluster.host, port=agent.cluster.port, dbname="app")
    path = tmp_path / "watchdog.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def rejoin(config: Path, *extra: str) -> int:
    argv = ["rejoin", "--service", "booking", "--site", "main", "--config", str(config), "--table", TABLE]
    return drctl([*argv, "--yes", "--timeout", str(WAIT), *extra])


def record(cloud: Cloud) -> Any:
    found = cloud.store.get_incident("booking", f"rejoin-booking-main-{utc_day(time.time())}")
    assert found is not None
    return found


def streams_from(pair: PgPair) -> bool:
    """DR's walsender says main streams from it (main's application_name is its cluster name)."""
    return bool(
        pair.standby.value(
            "SELECT count(*) = 1 FROM pg_stat_replication "
            "WHERE application_name = %s AND state = 'streaming'",
            (pair.primary.name,),
        )
    )


def test_rejoin_rewinds_the_diverged_old_primary_which_then_streams_from_the_new_one(
    pg_pair_factory: Callable[..., PgPair],
    agents: Callable[..., Agent],  # noqa: F811 - the fixture of test_site_agent
    cloud: Cloud,
    edge: Callable[[str], CloudflareEmulator],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pair = pg_pair_factory()
    for grant in REWIND_GRANTS:
        pair.primary.sql(grant.format(role=pair.primary.roles.replication.username))
    main, dr = agents(pair.primary), agents(pair.standby)
    diverge(pair, main, dr, "failover")  # DR promoted; main still took a write: split brain
    config = config_file(tmp_path, main, dr, edge("dr"))

    code = rejoin(config)

    out = capsys.readouterr().out
    assert code == 0, out
    new_primary = f"{pair.standby.host}:{pair.standby.port}"
    lines = out.splitlines()
    assert lines[0] == "booking: the state table says the active site is dr (status FAILED_OVER)"
    assert lines[1].startswith("the edge: ") and "dr" in lines[1]
    assert any(
        line.startswith(f"main is not a standby streaming from dr's database ({new_primary})")
        for line in lines
    )
    assert any(" freeze it first " in line for line in lines)
    assert any(line.startswith("rewind of main (rejoin-booking-main-") for line in lines)
    assert any(f"rewound against {new_primary} (servers diverged at WAL location" in line for line in lines)
    assert lines[-2] == "'resolved' notification: delivered on 1 of 1 channel(s)"
    assert lines[-1].startswith(f"rejoined: rejoined: main streams from dr ({new_primary}) on timeline 2, ")
    assert "within the limit of 16777216 bytes (database.max_lag_bytes)" in lines[-1]
    # the real effect: main is a standby of DR, its divergent row is gone, new writes reach it
    assert pair.primary.in_recovery() and streams_from(pair)
    assert notes(pair.primary) == ["shared", "written on the new timeline"]
    order(pair.standby, "after the rejoin")
    pair.primary.wait_until(
        "SELECT count(*) = 1 FROM orders WHERE note = 'after the rejoin'", WAIT, dbname="app"
    )
    # recorded, with its sentences, and told once
    done = record(cloud)
    assert (done.status, done.outcome, done.target) == ("CLOSED", "rejoined", "main")
    assert done.requested_by.startswith("arn:aws:sts::123456789012:")
    assert [e.step for e in done.timeline] == [
        "rejoin_plan",
        "rejoin_freeze",
        "rejoin_rewind",
        "rejoin_notify",
        "rejoin_done",
    ]
    (told,) = cloud.told()
    assert told["Subject"] == "booking: split brain resolved, main rejoined as a standby of dr"
    assert "any split-brain alert about booking is over" in told["Message"]
    assert told["MessageAttributes"]["event"]["Value"] == "split_brain_resolved"

    # again: it continues (nothing to redo), tells nobody twice
    assert rejoin(config) == 0
    again = capsys.readouterr().out
    assert "main is already a standby streaming from dr's database" in again
    assert "already delivered: not sent again" in again
    assert cloud.told() == [] and pair.primary.in_recovery()
    kept = json.loads((main.config.state_dir / "operations.json").read_text())
    assert sorted(k.rsplit(":", 1)[1] for k in kept if k.startswith("rejoin-")) == ["freeze", "rewind"]


def test_rejoin_is_refused_while_the_edge_still_serves_the_old_primary_and_nothing_changes(
    pg_pair_factory: Callable[..., PgPair],
    agents: Callable[..., Agent],  # noqa: F811 - the fixture of test_site_agent
    cloud: Cloud,
    edge: Callable[[str], CloudflareEmulator],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pair = pg_pair_factory()
    main, dr = agents(pair.primary), agents(pair.standby)
    diverge(pair, main, dr, "noswitch")
    config = config_file(tmp_path, main, dr, edge("main"))  # promoted, but the edge never switched

    code = rejoin(config)

    captured = capsys.readouterr()
    assert code == 1
    assert "not rejoined, nothing changed: the edge still serves main (" in captured.err
    assert "switch the edge to dr first" in captured.err
    assert not pair.primary.in_recovery() and app_can_log_in(pair.primary)  # still a primary, not frozen
    assert notes(pair.primary) == ["shared", "written on the old timeline"]
    refused = record(cloud)
    assert (refused.status, refused.outcome) == ("CLOSED", "refused")
    assert cloud.told() == []
    assert not (main.config.state_dir / "operations.json").exists()  # the agent was never asked to act


def test_a_rewind_that_cannot_work_needs_allow_rebuild_and_the_rebuild_keeps_the_old_data_directory(
    pg_pair_factory: Callable[..., PgPair],
    agents: Callable[..., Agent],  # noqa: F811 - the fixture of test_site_agent
    cloud: Cloud,
    edge: Callable[[str], CloudflareEmulator],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pair = pg_pair_factory()
    pair.primary.alter_system("wal_log_hints", "off")  # no pg_rewind on this cluster (no checksums either)
    pair.primary.restart()
    pair.standby.wait_streaming(WAIT)
    main, dr = agents(pair.primary), agents(pair.standby)
    diverge(pair, main, dr, "norewind")
    config = config_file(tmp_path, main, dr, edge("dr"))

    without = rejoin(config)

    err = capsys.readouterr().err
    assert without == 1
    assert (
        "not rejoined: a rewind cannot make main a standby of dr: not rewound, nothing changed: this " in err
    )
    assert err.rstrip().split(" (record ")[0].endswith("run it again with --allow-rebuild")
    # frozen (it took writes), still the old primary with its own history; nothing rebuilt
    assert not pair.primary.in_recovery() and not app_can_log_in(pair.primary)
    assert notes(pair.primary) == ["shared", "written on the old timeline"]
    assert not list(pair.primary.base_dir.glob(f"{pair.primary.name}.before-rebuild-*"))
    assert record(cloud).outcome == "refused" and cloud.told() == []

    with_flag = rejoin(config, "--allow-rebuild")

    out = capsys.readouterr().out
    assert with_flag == 0, out
    (kept,) = pair.primary.base_dir.glob(f"{pair.primary.name}.before-rebuild-*")
    assert f"the old data directory is kept at {kept}" in out
    assert (kept / "PG_VERSION").is_file()
    assert pair.primary.in_recovery() and streams_from(pair)
    assert notes(pair.primary) == ["shared", "written on the new timeline"]
    rebuilt = record(cloud)
    assert (rebuilt.status, rebuilt.outcome, rebuilt.rejoin["plan"]) == ("CLOSED", "rejoined", "rebuild")
    assert len(cloud.told()) == 1
