"""`drctl readiness` and its adapter against moto (state and results tables, SSM and EC2 in the cold
site's region, Secrets Manager in every region, Step Functions) and the local Cloudflare emulator.

The healthy setup is what a deployment looks like between incidents: probe results of every region
with the PostgreSQL status the real check reads from a real streaming pair, the state HEALTHY on
main, the edge on main, the AMI behind the SSM parameter, the launch template the CDK app names,
every secret the functions read in every region that reads it. Each other test breaks one thing
and reads the line that says so.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from quorum_dr.adapters.cloudflare_edge import CloudflareEdge
from quorum_dr.adapters.dynamodb_results import DynamoDbResultStore
from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.adapters.readiness import ReadinessGatherer, launch_template_name
from quorum_dr.adapters.tables import create_table
from quorum_dr.cli import main as drctl
from quorum_dr.config import PostgresCheck, WatchdogConfig, load_config
from quorum_dr.domain.cost import secret_copies
from quorum_dr.domain.readiness import Status
from quorum_dr.domain.results import CONTROL_SITE, DbRole, DbStatus, ProbeResult, Vote
from quorum_dr.probes.postgres import check_postgres
from quorum_dr_local.standins.cloudflare_emulator import CloudflareEmulator, seed_for_service
from quorum_dr_local.standins.postgres import PgCluster, PgPair
from tests.conftest import ROOT
from tests.fakes import REGIONS, make_config

HOME, COLD = "eu-west-2", "us-west-2"
STATE_TABLE, RESULTS_TABLE = "quorum-dr-state", "quorum-dr-results"
TOKEN = "cf-token-readiness-0123456789"
AMI_PARAMETER = "/quorum-dr/booking/cold-ami"
ACCOUNT = "123456789012"
FAILOVER_ARN = f"arn:aws:states:{HOME}:{ACCOUNT}:stateMachine:quorum-dr-failover"
SWITCHOVER_ARN = f"arn:aws:states:{HOME}:{ACCOUNT}:stateMachine:quorum-dr-switchover"
MAIN_ORIGIN, DR_ORIGIN = "203.0.113.10", "198.51.100.20"
EXAMPLE = ROOT / "config" / "watchdog.example.yaml"


@dataclass
class World:
    config: WatchdogConfig
    config_path: Path
    emulator: CloudflareEmulator
    state: DynamoStateStore
    results: DynamoDbResultStore
    ami: str

    def args(self, *more: str) -> list[str]:
        return [
            "readiness",
            "--service",
            "booking",
            "--config",
            str(self.config_path),
            "--table",
            STATE_TABLE,
            "--results-table",
            RESULTS_TABLE,
            *more,
        ]

    def probe_round(self, main: DbStatus, dr: DbStatus, regions: list[str] = REGIONS) -> None:
        """One round of every region, as the probe stores it: the control check, then main's and
        dr's PostgreSQL checks with the statuses given."""
        stamp = f"{time.time():.6f}"
        items = []
        for region in regions:
            common = {
                "service": "booking",
                "region": region,
                "round_id": f"{region}-{stamp}",
                "latency_ms": 2.0,
            }
            items += [
                ProbeResult(
                    **common,
                    site=CONTROL_SITE,
                    check="control-aws",
                    check_type="tcp",
                    vote=Vote.UP,
                    probe_time=time.time(),
                ),
                ProbeResult(
                    **common,
                    site="main",
                    check="postgres",
                    check_type="postgres",
                    vote=Vote.UP,
                    probe_time=time.time(),
                    db=main,
                    counts=False,
                ),
                ProbeResult(
                    **common,
                    site="dr",
                    check="postgres",
                    check_type="postgres",
                    vote=Vote.UP,
                    probe_time=time.time(),
                    db=dr,
                    counts=False,
                ),
            ]
        self.results.put_results(items)


MAIN_DB = DbStatus(role=DbRole.PRIMARY, current_lsn="0/3000148")
DR_DB = DbStatus(
    role=DbRole.STANDBY,
    receive_lsn="0/3000148",
    replay_lsn="0/3000148",
    replay_lag_bytes=0,
    replay_lag_seconds=40.0,
    streaming=True,
)


def write_config(tmp_path: Path, emulator: CloudflareEmulator) -> tuple[WatchdogConfig, Path]:
    data = make_config().model_dump(mode="json", by_alias=True, exclude_none=True)
    data["services"][0]["edge"]["api_base_url"] = emulator.base_url
    path = tmp_path / "watchdog.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_config(path), path


def create_secrets(config: WatchdogConfig) -> None:
    for region, names in secret_copies(config).items():
        client = boto3.client("secretsmanager", region_name=region)
        for name in sorted(names):
            value = TOKEN if name == config.services[0].edge.api_token_secret else '{"username": "x"}'
            client.create_secret(Name=name, SecretString=value)


def an_ami(ec2: Any) -> str:
    return str(sorted(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"])[0])


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for key, value in {
        "AWS_DEFAULT_REGION": HOME,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    for key in (
        "STATE_TABLE_NAME",
        "RESULTS_TABLE_NAME",
        "STATE_MACHINE_ARN",
        "SWITCHOVER_STATE_MACHINE_ARN",
    ):
        monkeypatch.delenv(key, raising=False)
    service = make_config().services[0]
    with mock_aws(), CloudflareEmulator(seed_for_service(service, TOKEN)) as emulator:
        config, path = write_config(tmp_path, emulator)
        dynamodb = boto3.client("dynamodb", region_name=HOME)
        create_table(dynamodb, STATE_TABLE)
        create_table(dynamodb, RESULTS_TABLE)
        resource = boto3.resource("dynamodb", region_name=HOME)
        state = DynamoStateStore(STATE_TABLE, resource=resource)
        state.put_state(
            {"service": "booking", "active_site": "main", "status": "HEALTHY"}, expected_version=0
        )
        ec2 = boto3.client("ec2", region_name=COLD)
        ami = an_ami(ec2)
        boto3.client("ssm", region_name=COLD).put_parameter(Name=AMI_PARAMETER, Value=ami, Type="String")
        ec2.create_launch_template(
            LaunchTemplateName=launch_template_name(config.services[0]),
            LaunchTemplateData={"ImageId": f"resolve:ssm:{AMI_PARAMETER}", "InstanceType": "t3.small"},
        )
        create_secrets(config)
        results = DynamoDbResultStore(
            resource.Table(RESULTS_TABLE), ttl_seconds=config.probe.result_ttl_seconds
        )
        yield World(config, path, emulator, state, results, ami)


def readiness(
    world: World, capsys: pytest.CaptureFixture[str], *more: str
) -> tuple[int, dict[str, str], str]:
    """Run drctl readiness: (exit code, check name -> "STATUS reason" of its line, stderr)."""
    code = drctl(world.args(*more))
    out, err = capsys.readouterr()
    lines = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in ("OK", "WARN", "FAIL"):
            status, name, reason = line.split(None, 2)
            lines[name] = f"{status} {reason}"
        elif line.startswith("overall:"):
            lines["overall"] = line
    return code, lines, err


# ---------------------------------------------------------------------------------------------
# The healthy setup, from a real streaming pair
# ---------------------------------------------------------------------------------------------


def _database_status(cluster: PgCluster) -> DbStatus:
    check = PostgresCheck(
        name="postgres",
        host="127.0.0.1",
        port=cluster.port,
        dbname="postgres",
        credentials_secret="sandbox/monitor",
        sslmode="disable",
    )
    outcome = check_postgres(check, credentials=cluster.roles.monitor.as_secret(), timeout=10.0)
    assert outcome.db is not None, outcome.detail
    return outcome.db


def test_a_healthy_setup_is_ok_in_every_check_and_changes_nothing(
    world: World, pg_pair: PgPair, capsys: pytest.CaptureFixture[str]
) -> None:
    pg_pair.standby.wait_replayed(pg_pair.primary.value("SELECT pg_current_wal_lsn()::text"))
    world.probe_round(main=_database_status(pg_pair.primary), dr=_database_status(pg_pair.standby))
    ec2 = boto3.client("ec2", region_name=COLD)
    instances_before = ec2.describe_instances()["Reservations"]

    code, lines, err = readiness(world, capsys)

    assert code == 0, (lines, err)
    assert err == ""
    assert sorted(lines) == sorted(
        [
            "standby",
            "probe_regions",
            "service_state",
            "edge",
            "cloudflare_token",
            "cold_site",
            "secrets",
            "overall",
        ]
    )
    assert all(line.startswith("OK ") for name, line in lines.items() if name != "overall"), lines
    assert "dr standby streams, lag 0 bytes / 0 s within the limit 16 MiB / 30 s" in lines["standby"]
    assert "all 3 probe regions reported within two probe intervals (60 s)" in lines["probe_regions"]
    assert (
        f"the edge serves main, as the state says (every edge record points at main ({MAIN_ORIGIN}))"
        in lines["edge"]
    )
    assert f"AMI {world.ami} (from SSM parameter {AMI_PARAMETER}) is available" in lines["cold_site"]
    assert (
        "a RunInstances dry run of launch template quorum-dr-booking-cold in us-west-2 succeeded"
        in lines["cold_site"]
    )
    assert "verifies as active and reads the A record app.example.com" in lines["cloudflare_token"]
    assert "all 9 secrets the functions read exist where they read them" in lines["secrets"]
    assert lines["overall"].startswith("overall: OK (7 OK) for booking at ")
    # read-only: no edge write, no instance, the state as it was
    assert world.emulator.total_writes() == 0
    assert ec2.describe_instances()["Reservations"] == instances_before
    assert world.state.get_state("booking")["version"] == 1


def test_json_prints_the_readiness_model(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)

    assert drctl(world.args("--json")) == 0

    shown = json.loads(capsys.readouterr().out)
    assert shown["service"] == "booking" and shown["overall"] == "OK"
    standby = next(c for c in shown["checks"] if c["name"] == "standby")
    assert standby["status"] == "OK" and standby["figures"]["lag_bytes"] == 0
    assert standby["figures"]["max_lag_bytes"] == 16 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# One thing broken at a time
# ---------------------------------------------------------------------------------------------


def test_a_deleted_ami_fails_the_cold_site_check(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    boto3.client("ec2", region_name=COLD).deregister_image(ImageId=world.ami)

    code, lines, _ = readiness(world, capsys)

    assert code == 1
    assert lines["cold_site"] == (
        f"FAIL the cold site cannot launch: AMI {world.ami} (from SSM parameter {AMI_PARAMETER}) does not "
        "exist in us-west-2"
    )
    assert all(lines[name].startswith("OK ") for name in ("standby", "edge", "secrets", "service_state"))
    assert lines["overall"].startswith("overall: FAIL (1 FAIL, 6 OK)")


def test_a_missing_launch_template_fails_the_cold_site_check(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    boto3.client("ec2", region_name=COLD).delete_launch_template(LaunchTemplateName="quorum-dr-booking-cold")

    code, lines, _ = readiness(world, capsys)

    assert code == 1
    assert "the launch template quorum-dr-booking-cold does not exist in us-west-2" in lines["cold_site"]


def test_a_caller_that_may_not_run_instances_fails_the_dry_run(world: World) -> None:
    """IAM enforced by moto: a principal allowed everything but ec2:RunInstances. moto answers
    AccessDenied where EC2 answers UnauthorizedOperation; either is not DryRunOperation."""
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    iam = boto3.client("iam", region_name=HOME)
    iam.create_user(UserName="operator")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "ec2:RunInstances", "Resource": "*"},
        ],
    }
    iam.put_user_policy(UserName="operator", PolicyName="all-but-launch", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="operator")["AccessKey"]
    session = boto3.session.Session(
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"]
    )
    gatherer = ReadinessGatherer(
        world.config, state_table=STATE_TABLE, results_table=RESULTS_TABLE, session=session
    )

    enforced = set_initial_no_auth_action_count(0)(lambda: gatherer.assess(world.config.services[0]))
    result = enforced()

    cold = result.check("cold_site")
    assert cold.status is Status.FAIL
    assert (
        "a RunInstances dry run was refused: AccessDenied: User: arn:aws:iam::123456789012:user/operator is "
        "not authorized to perform: ec2:RunInstances" in cold.reason
    )
    assert [c.name for c in result.checks if c.status is not Status.OK] == ["cold_site"]
    assert gatherer.unreachable == []


def test_needs_attention_fails_the_service_state_check(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    # what an escalation leaves: the lock kept, the status NEEDS_ATTENTION
    assert world.state.acquire_lock(
        "booking", "inc-7", holder="inc-7", now=time.time(), expires_at=time.time() + 60
    )
    assert world.state.keep_lock("booking", "inc-7", holder="inc-7")
    current = world.state.get_state("booking")
    world.state.put_state(
        {**current, "status": "NEEDS_ATTENTION", "lock_holder": "inc-7"}, expected_version=current["version"]
    )

    code, lines, _ = readiness(world, capsys)

    assert code == 1
    assert lines["service_state"].startswith(
        "FAIL booking needs attention after incident inc-7: no automatic failover until an operator resets "
        "it (drctl reset); incident inc-7 (execution inc-7) keeps the lock after an escalation"
    )


def test_paused_automation_is_a_warning_and_exits_0(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    pause = ["pause", "--service", "booking", "--config", str(world.config_path), "--table", STATE_TABLE]
    assert drctl([*pause, "--reason", "database upgrade tonight"]) == 0
    capsys.readouterr()

    code, lines, _ = readiness(world, capsys)

    assert code == 0
    assert lines["service_state"].startswith("WARN automation is paused by arn:aws:")
    assert (
        "(database upgrade tonight): automatic triggers are refused at the gates until drctl resume"
        in lines["service_state"]
    )
    assert lines["overall"].startswith("overall: WARN (1 WARN, 6 OK)")


def test_the_edge_on_dr_while_the_state_says_main_fails(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    service = world.config.services[0]
    CloudflareEdge(service.edge, service.sites, TOKEN).switch_to("dr", incident_id="moved-by-hand")

    code, lines, _ = readiness(world, capsys)

    assert code == 1
    assert (
        f"FAIL the edge serves dr (every edge record points at dr ({DR_ORIGIN})) but the state "
        "says main is active" in lines["edge"]
    )


def test_a_missing_secret_fails_the_secrets_check(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    boto3.client("secretsmanager", region_name=COLD).delete_secret(
        SecretId="quorum-dr/backup-manifest-key", ForceDeleteWithoutRecovery=True
    )
    boto3.client("secretsmanager", region_name="us-east-1").delete_secret(
        SecretId="quorum-dr/booking/db-monitor", RecoveryWindowInDays=7
    )

    code, lines, _ = readiness(world, capsys)

    assert code == 1
    assert lines["secrets"].startswith("FAIL 2 of 9 secrets the functions read are not usable: ")
    assert "quorum-dr/booking/db-monitor in us-east-1 is scheduled for deletion at " in lines["secrets"]
    assert "quorum-dr/backup-manifest-key is missing in us-west-2" in lines["secrets"]


def test_a_token_cloudflare_does_not_know_fails_the_token_and_the_edge(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    boto3.client("secretsmanager", region_name=HOME).put_secret_value(
        SecretId="quorum-dr/cloudflare-token", SecretString="a-revoked-token"
    )

    code, lines, _ = readiness(world, capsys)

    assert code == 1
    assert (
        "the API token from secret quorum-dr/cloudflare-token cannot be verified: Cloudflare refused"
        in lines["cloudflare_token"]
    )
    assert "HTTP 401: 1000: Invalid API Token" in lines["cloudflare_token"]
    assert lines["edge"].startswith("FAIL cannot read the edge: Cloudflare refused the API token")


def test_a_lagging_standby_and_a_silent_region_fail(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    behind = DbStatus(role=DbRole.PRIMARY, current_lsn="0/5000148")  # 32 MiB ahead of the standby
    world.probe_round(main=behind, dr=DR_DB, regions=REGIONS[:2])

    code, lines, _ = readiness(world, capsys)

    assert code == 1
    assert "the dr standby streams but lag 32 MiB / 0 s over the limit 16 MiB / 30 s" in lines["standby"]
    assert (
        "1 of 3 probe regions did not report within two probe intervals (60 s): us-west-2 not since"
        in lines["probe_regions"]
    )


def test_a_lock_whose_execution_is_gone_is_stale(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    sfn = boto3.client("stepfunctions", region_name=HOME)
    role = boto3.client("iam", region_name=HOME).create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")
    definition = json.dumps({"StartAt": "Hold", "States": {"Hold": {"Type": "Pass", "End": True}}})
    for name in ("quorum-dr-failover", "quorum-dr-switchover"):
        sfn.create_state_machine(name=name, definition=definition, roleArn=role["Role"]["Arn"])
    now = time.time()
    assert world.state.acquire_lock("booking", "inc-8", holder="inc-8", now=now, expires_at=now + 3600)
    machines = ["--state-machine-arn", FAILOVER_ARN, "--switchover-state-machine-arn", SWITCHOVER_ARN]

    code, lines, _ = readiness(world, capsys, *machines)

    assert code == 1
    assert (
        "the lock of incident inc-8 (execution inc-8) is stale: its execution is NOT_FOUND"
        in lines["service_state"]
    )

    # the same lock with only the failover machine named: not known, so a warning that says why
    code, lines, _ = readiness(world, capsys, *machines[:2])

    assert code == 0
    assert lines["service_state"].startswith("WARN incident inc-8 (execution inc-8) holds the lock")
    assert "the switchover state machine was not given" in lines["service_state"]


# ---------------------------------------------------------------------------------------------
# Exit codes 2 and 3
# ---------------------------------------------------------------------------------------------


def test_a_missing_table_is_exit_3_with_the_report_and_one_line_each(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    args = world.args()
    args[args.index(STATE_TABLE)] = "no-such-table"

    code = drctl(args)

    out, err = capsys.readouterr()
    assert code == 3
    assert "FAIL service_state     cannot read the service's state: ResourceNotFoundException" in out
    assert err.splitlines()[0].startswith(
        "cannot read the state of booking from the state table no-such-table: ResourceNotFoundException"
    )
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--service", "nope"), "--service: no service named 'nope'"),
        (("--results-table", ""), "no results table: give --results-table or set RESULTS_TABLE_NAME"),
        (("--state-machine-arn", "failover"), "--state-machine-arn: 'failover' is not a state machine ARN"),
    ],
)
def test_bad_input_is_exit_2_before_any_aws_call(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], change: tuple[str, str], message: str
) -> None:
    def no_aws(*_: Any, **__: Any) -> Any:
        raise AssertionError("AWS was asked")

    monkeypatch.setattr(boto3.session.Session, "client", no_aws)
    monkeypatch.setattr(boto3.session.Session, "resource", no_aws)
    args = ["readiness", "--service", "booking", "--config", str(EXAMPLE), "--table", STATE_TABLE]
    args += ["--results-table", RESULTS_TABLE]
    if change[0] in args:
        args[args.index(change[0]) + 1] = change[1]
    else:
        args += list(change)

    assert drctl(args) == 2
    assert message in capsys.readouterr().err


def test_the_adapter_takes_an_injected_session(world: World) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    gatherer = ReadinessGatherer(
        world.config, state_table=STATE_TABLE, results_table=RESULTS_TABLE, session=boto3.session.Session()
    )

    result = gatherer.assess(world.config.services[0])

    assert result.overall is Status.OK and gatherer.unreachable == []


def test_the_launch_template_name_is_the_one_the_cdk_app_creates() -> None:
    from stacks.cold_site import launch_template_name as cdk_name

    service = make_config().services[0]
    assert launch_template_name(service) == cdk_name(service) == "quorum-dr-booking-cold"
    assert service.cold_site is not None
    named = service.model_copy(
        update={"cold_site": service.cold_site.model_copy(update={"launch_template_name": "x"})}
    )
    assert launch_template_name(named) == cdk_name(named) == "x"


# ---------------------------------------------------------------------------------------------
# drctl list: the same facts as one table per service
# ---------------------------------------------------------------------------------------------


def app_round(world: World, votes: dict[str, dict[str, Vote]]) -> None:
    """One round of each region given, with a voting HTTP check per site and the control check."""
    stamp = f"{time.time():.6f}"
    items = []
    for region, sites in votes.items():
        common = {
            "service": "booking",
            "region": region,
            "round_id": f"{region}-app-{stamp}",
            "latency_ms": 3.0,
        }
        items.append(
            ProbeResult(
                **common,
                site=CONTROL_SITE,
                check="control-aws",
                check_type="tcp",
                vote=Vote.UP,
                probe_time=time.time(),
            )
        )
        items += [
            ProbeResult(
                **common, site=site, check="health", check_type="http", vote=vote, probe_time=time.time()
            )
            for site, vote in sites.items()
        ]
    world.results.put_results(items)


def listing(world: World, capsys: pytest.CaptureFixture[str], *more: str) -> tuple[int, list[str], str]:
    code = drctl(["list", *world.args(*more)[3:]])  # readiness's args without "readiness --service booking"
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def row(lines: list[str], site: str) -> list[str]:
    """The cells of a site's row (the cells are separated by two spaces or more)."""
    found = [line for line in lines if line.split(" ", 1)[0].rstrip("*@") == site]
    assert len(found) == 1, lines
    return [cell.strip() for cell in found[0].split("  ") if cell.strip()]


def test_list_shows_each_site_its_database_the_votes_and_readiness_and_changes_nothing(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    app_round(world, {region: {"main": Vote.UP, "dr": Vote.UP, "cold": Vote.DOWN} for region in REGIONS})

    code, lines, err = listing(world, capsys)

    assert (code, err) == (0, "")
    assert lines[0].startswith("booking at ")
    assert lines[0].endswith("active site main, edge serves main, state HEALTHY, automation on")
    header = ["site", "role", "WAL", "(current", "/", "receive", "/", "replay)", "lag", "streaming"]
    assert lines[1].split() == [*header, *REGIONS, "quorum"]
    assert row(lines, "main") == [
        "main*@", "primary", "0/3000148 / - / -", "-", "-", "UP", "UP", "UP", "UP"
    ]  # fmt: skip
    assert row(lines, "dr") == [
        "dr", "standby", "- / 0/3000148 / 0/3000148", "0 B, 40.0 s", "yes", "UP", "UP", "UP", "UP"
    ]  # fmt: skip
    # cold: no database seen; its application down everywhere (the test config's down_after_rounds is 1)
    assert row(lines, "cold") == ["cold", "-", "-", "-", "-", *["DOWN"] * 3, "DOWN"]
    assert "lock: free; cooldown: none" in lines
    assert lines[-1] == "readiness: OK"
    assert world.emulator.total_writes() == 0
    assert world.state.get_state("booking")["version"] == 1


def test_list_says_what_is_wrong_and_exits_as_readiness_does(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB, regions=REGIONS[:2])
    app_round(world, {region: {"main": Vote.UP, "dr": Vote.UP} for region in REGIONS[:2]})
    pause = ["pause", "--service", "booking", "--config", str(world.config_path), "--table", STATE_TABLE]
    assert drctl([*pause, "--reason", "database upgrade tonight"]) == 0
    capsys.readouterr()

    code, lines, _ = listing(world, capsys)

    assert code == 1
    assert lines[0].endswith("automation PAUSED (database upgrade tonight)")
    assert row(lines, "main")[-2:] == ["MISSING", "UP"]  # us-west-2 silent; 2 of 3 regions still a quorum
    not_ok = lines[lines.index("readiness: FAIL") + 1 :]
    assert len(not_ok) == 2, not_ok
    assert not_ok[0].startswith("  FAIL probe_regions: 1 of 3 probe regions did not report")
    assert not_ok[1].startswith("  WARN service_state: automation is paused by ")

    code, out, _ = listing(world, capsys, "--json")
    (view,) = json.loads("\n".join(out))
    assert code == 1
    assert view["readiness"] == "FAIL" and view["automation"].startswith("PAUSED")
    assert {s["site"]: s["votes"] for s in view["sites"]}["dr"] == dict(
        zip(REGIONS, ["UP", "UP", "MISSING"], strict=True)
    )


def test_list_says_a_cold_site_left_out_of_scheduled_rounds_is_not_probed_not_down(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Steady on main: scheduled rounds leave the cold site out (domain/cold_probe.py), so no region
    has a result for it; the row says so, rather than MISSING votes and UNKNOWN."""
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    app_round(world, {region: {"main": Vote.UP, "dr": Vote.UP} for region in REGIONS})

    code, lines, _ = listing(world, capsys)

    assert code == 0
    assert row(lines, "cold") == ["cold", "-", "-", "-", "-", *["-"] * 3, "not launched: not probed"]
    code, out, _ = listing(world, capsys, "--json")
    (view,) = json.loads("\n".join(out))
    cold = {s["site"]: s for s in view["sites"]}["cold"]
    assert (cold["votes"], cold["verdict"]) == ({}, "not launched: not probed")


def test_list_of_an_unknown_service_is_exit_2_before_any_aws_call(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_aws(*_: Any, **__: Any) -> Any:
        raise AssertionError("AWS was asked")

    monkeypatch.setattr(boto3.session.Session, "client", no_aws)
    monkeypatch.setattr(boto3.session.Session, "resource", no_aws)
    args = ["list", "--service", "nosuch", "--config", str(EXAMPLE), "--table", STATE_TABLE]

    assert drctl([*args, "--results-table", RESULTS_TABLE]) == 2
    assert "nosuch" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# file_sync: the marker main writes, as DR serves it
# ---------------------------------------------------------------------------------------------

MARKER_SCRIPT = ROOT / "deploy" / "systemd" / "quorum-dr-file-sync-marker.sh"


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the server's access log is not ours
        pass


@pytest.fixture
def dr_files(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """The DR site's replicated tree, served over HTTP on loopback: (its directory, the port)."""
    tree = tmp_path / "dr-tree"
    tree.mkdir()
    handler = functools.partial(_QuietFiles, directory=str(tree))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield tree, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_file_sync_reads_the_marker_dr_serves_fresh_stale_or_missing(
    world: World, dr_files: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    tree, port = dr_files
    data = yaml.safe_load(world.config_path.read_text())
    # a query value stands in for a secret in the URL: no sentence may show it
    url = f"http://127.0.0.1:{port}/.sync-marker?token=s3cr3t-marker"
    data["services"][0]["file_sync"] = {"url": url, "max_lag_seconds": 120, "timeout_seconds": 2}
    world.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    # main's timer writes the marker with the shipped script; replication copies it to DR's tree
    subprocess.run([str(MARKER_SCRIPT), str(tree / ".sync-marker")], check=True, timeout=30)

    code, lines, _ = readiness(world, capsys)

    assert code == 0, lines
    assert lines["file_sync"].startswith("OK file replication lags ")
    assert "within the limit 120 s (the marker DR serves was written by main at " in lines["file_sync"]

    (tree / ".sync-marker").write_text(f"{time.time() - 600:.3f} 2026-01-01T00:00:00Z main\n")
    code, lines, _ = readiness(world, capsys)
    assert code == 1
    # "now" is the results table's Date header, whole seconds: the lag reads 599 to 601 s
    assert re.match(
        r"FAIL file replication lags (599|600|601)(\.\d)? s, over the limit 120 s", lines["file_sync"]
    )

    # a tree that serves something else, large: only its head is read, and it is not a marker
    (tree / ".sync-marker").write_bytes(b"<html>" + b"x" * (8 * 1024 * 1024))
    code, lines, _ = readiness(world, capsys)
    assert code == 1
    assert lines["file_sync"].endswith(
        ": the marker does not start with epoch seconds: '<html>xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'"
    )

    (tree / ".sync-marker").unlink()
    code, lines, err = readiness(world, capsys)
    assert code == 1
    assert lines["file_sync"].startswith("FAIL cannot read the file-sync marker at http://127.0.0.1:")
    assert lines["file_sync"].endswith(": HTTP 404")
    assert "s3cr3t-marker" not in " ".join(lines.values()) + err


# ---------------------------------------------------------------------------------------------
# Backups (cold_site.wal_archive): the newest base backup and archived WAL segment, listed in S3
# ---------------------------------------------------------------------------------------------


def test_an_empty_archive_fails_both_backup_checks_and_a_fresh_one_passes(world: World) -> None:
    from quorum_dr.config import WalArchive

    world.probe_round(main=MAIN_DB, dr=DR_DB)
    service = world.config.services[0]
    assert service.cold_site is not None
    cold = service.cold_site.model_copy(update={"wal_archive": WalArchive(server="booking")})
    config = world.config.model_copy(update={"services": [service.model_copy(update={"cold_site": cold})]})
    s3 = boto3.client("s3", region_name=cold.region)
    s3.create_bucket(Bucket=cold.backup_bucket, CreateBucketConfiguration={"LocationConstraint": cold.region})
    root = f"{cold.backup_prefix.strip('/')}/booking/"
    gatherer = ReadinessGatherer(config, state_table=STATE_TABLE, results_table=RESULTS_TABLE)
    archive = f"s3://{cold.backup_bucket}/{cold.backup_prefix.strip('/')}/booking"

    # a backup that never completed is no backup; nothing archived yet
    s3.put_object(
        Bucket=cold.backup_bucket, Key=f"{root}base/20261203T010000/backup.info", Body=b"status=FAILED\n"
    )
    empty = gatherer.assess(config.services[0])
    assert empty.check("base_backup").status is Status.FAIL
    assert empty.check("base_backup").reason.startswith(f"no complete base backup in {archive}")
    assert empty.check("wal_archive").status is Status.FAIL
    assert empty.check("wal_archive").reason.startswith(f"no archived WAL segment in {archive}")

    s3.put_object(
        Bucket=cold.backup_bucket, Key=f"{root}base/20261203T020000/backup.info", Body=b"status=DONE\n"
    )
    for name in ("000000010000000000000007", "000000010000000000000008"):
        s3.put_object(Bucket=cold.backup_bucket, Key=f"{root}wals/0000000100000000/{name}.gz", Body=b"wal")
    fresh = gatherer.assess(config.services[0])
    assert fresh.check("base_backup").status is Status.OK
    assert "the newest base backup 20261203T020000 is" in fresh.check("base_backup").reason
    assert fresh.check("wal_archive").status is Status.OK
    assert "segment 000000010000000000000008 is" in fresh.check("wal_archive").reason
    # no rehearsal was ever recorded: the one check left is that WARN (test below)
    assert [c.name for c in fresh.checks if c.status is not Status.OK] == ["cold_rehearsal"]


def test_the_last_rehearsal_is_read_from_the_state_table_none_passed_failed_or_old(world: World) -> None:
    from quorum_dr.adapters.rehearsal import DynamoRehearsalStore
    from quorum_dr.config import WalArchive
    from quorum_dr.domain.rehearsal import RehearsalResult

    service = world.config.services[0]
    assert service.cold_site is not None
    cold = service.cold_site.model_copy(update={"wal_archive": WalArchive(server="booking")})
    config = world.config.model_copy(update={"services": [service.model_copy(update={"cold_site": cold})]})
    gatherer = ReadinessGatherer(config, state_table=STATE_TABLE, results_table=RESULTS_TABLE)
    resource = boto3.resource("dynamodb", region_name=config.home_region)
    store = DynamoRehearsalStore(STATE_TABLE, resource=resource)

    def check() -> Any:
        return gatherer.assess(config.services[0]).check("cold_rehearsal")

    never = check()
    assert never.status is Status.WARN
    assert never.reason.startswith("no restore rehearsal of the cold site was ever recorded")

    def recorded(outcome: str, age: float, reason: str) -> None:
        now = time.time()
        store.put_result(
            RehearsalResult(
                rehearsal_id=f"rehearsal-booking-2026120{int(age) % 10}T030000Z",
                service="booking",
                started_at=now - age - 300,
                finished_at=now - age,
                duration_seconds=300,
                outcome=outcome,  # type: ignore[arg-type]
                reason=reason,
                backup_id="20261203T020000",
                restored_lsn="0/9000028",
            )
        )

    recorded("PASSED", 5 * 3600, "all tables hold their rows")
    fresh = check()
    assert fresh.status is Status.OK and "passed 5 h ago (base backup 20261203T020000" in fresh.reason
    recorded("FAILED", 2 * 3600, "table public.orders has 999 rows restored, 1 fewer than the 1000 recorded")
    failed = check()
    assert failed.status is Status.FAIL
    assert failed.reason.endswith(
        "failed: table public.orders has 999 rows restored, 1 fewer than the 1000 recorded"
    )
    recorded("PASSED", 9 * 86400, "all tables hold their rows")
    old = check()
    assert old.status is Status.FAIL and "passed 9 d ago, over the limit 8 d" in old.reason


def test_backups_under_the_bucket_default_key_pass_and_unencrypted_ones_fail(world: World) -> None:
    """With wal_archive.kms_key_arn, the newest backup.info must be stored under that key: what S3
    reports (HeadObject), not what the config or the uploader asked for."""
    from quorum_dr.config import WalArchive

    kms = boto3.client("kms", region_name="eu-west-2")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    service = world.config.services[0]
    assert service.cold_site is not None
    archive_config = WalArchive(server="booking", kms_key_arn=key)
    cold = service.cold_site.model_copy(update={"wal_archive": archive_config})
    config = world.config.model_copy(update={"services": [service.model_copy(update={"cold_site": cold})]})
    s3 = boto3.client("s3", region_name=cold.region)
    s3.create_bucket(Bucket=cold.backup_bucket, CreateBucketConfiguration={"LocationConstraint": cold.region})
    root = f"{cold.backup_prefix.strip('/')}/booking/"
    gatherer = ReadinessGatherer(config, state_table=STATE_TABLE, results_table=RESULTS_TABLE)

    s3.put_object(
        Bucket=cold.backup_bucket, Key=f"{root}base/20261203T010000/backup.info", Body=b"status=DONE\n"
    )
    plain = gatherer.assess(config.services[0]).check("backup_encryption")
    assert plain.status is Status.FAIL
    assert plain.reason.startswith(f"{root}base/20261203T010000/backup.info is stored"), plain.reason
    assert f"not with SSE-KMS under {key}" in plain.reason

    s3.put_bucket_encryption(
        Bucket=cold.backup_bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}
            ]
        },
    )
    s3.put_object(
        Bucket=cold.backup_bucket, Key=f"{root}base/20261203T020000/backup.info", Body=b"status=DONE\n"
    )
    encrypted = gatherer.assess(config.services[0])
    assert encrypted.check("backup_encryption").status is Status.OK, encrypted.check(
        "backup_encryption"
    ).reason
    assert encrypted.check("base_backup").reason.startswith("the newest base backup 20261203T020000 is")


# ---------------------------------------------------------------------------------------------
# The token's edit permission: a marker in the record's comment, never its content
# ---------------------------------------------------------------------------------------------


def test_edit_permission_is_proven_by_the_comment_alone_once_a_day_and_a_read_only_token_fails(
    world: World,
) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    service = world.config.services[0]
    zone, record_id = service.edge.zone_id, service.edge.records[0].record_id or "rec-1"
    before = world.emulator.record(zone, record_id)
    prover = ReadinessGatherer(
        world.config, state_table=STATE_TABLE, results_table=RESULTS_TABLE, prove_edit=True
    )
    reader = ReadinessGatherer(world.config, state_table=STATE_TABLE, results_table=RESULTS_TABLE)

    # drctl's gatherer never writes: not proven yet, still OK
    unproven = reader.assess(service).check("cloudflare_token")
    assert unproven.status is Status.OK
    assert "its edit permission: not proven yet" in unproven.reason
    assert world.emulator.total_writes() == 0

    # the function's writes the marker, and only the marker
    proven = prover.assess(service).check("cloudflare_token")
    assert proven.status is Status.OK, proven.reason
    assert "reads the A record app.example.com and may edit it (proven " in proven.reason
    after = world.emulator.record(zone, record_id)
    assert after["comment"].startswith("quorum-dr edit check ")
    assert {k: after[k] for k in ("content", "proxied", "ttl", "name", "type")} == {
        k: before[k] for k in ("content", "proxied", "ttl", "name", "type")
    }
    assert world.emulator.total_writes() == 1
    patches = world.emulator.requests("PATCH")
    assert len(patches) == 1 and "content" not in json.dumps(patches[0].get("body") or {})

    # within the interval the marker is the proof, for both; no second write
    assert "may edit it (proven" in prover.assess(service).check("cloudflare_token").reason
    assert "may edit it (proven" in reader.assess(service).check("cloudflare_token").reason
    assert world.emulator.total_writes() == 1

    # a day later, a token that may only read: the write is refused, FAIL before a failover finds out
    from quorum_dr.domain.edit_proof import marker

    with world.emulator._lock:
        old = time.time() - (service.edge.edit_proof_interval_seconds or 0) - 60
        world.emulator._find_record(zone, record_id)["comment"] = marker(old)
    world.emulator.state.tokens[TOKEN] = "read"
    refused = prover.assess(service).check("cloudflare_token")
    assert refused.status is Status.FAIL
    assert "reads the A record app.example.com but may not edit it: Cloudflare refused the API token" in (
        refused.reason
    )
    assert world.emulator.record(zone, record_id)["content"] == before["content"]


def test_an_operators_own_comment_is_never_overwritten(world: World) -> None:
    world.probe_round(main=MAIN_DB, dr=DR_DB)
    service = world.config.services[0]
    zone, record_id = service.edge.zone_id, service.edge.records[0].record_id or "rec-1"
    with world.emulator._lock:
        world.emulator._find_record(zone, record_id)["comment"] = "owned by the web team"
    prover = ReadinessGatherer(
        world.config, state_table=STATE_TABLE, results_table=RESULTS_TABLE, prove_edit=True
    )

    check = prover.assess(service).check("cloudflare_token")

    assert check.status is Status.OK
    assert "not proven: the comment of the app.example.com A record is the operator's own" in check.reason
    assert world.emulator.total_writes() == 0
    assert world.emulator.record(zone, record_id)["comment"] == "owned by the web team"
