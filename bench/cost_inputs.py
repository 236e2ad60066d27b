"""The measured inputs of the cost model (`drctl cost`), from the real code on this machine.

    python bench/cost_inputs.py [--runs 5] [--skip-failover] [--skip-probe] [--skip-readiness]

1. The probe function's scheduled round: the real probe handler (`lambdas/probe/handler.py`) with
   the example config's checks (main: HTTP, TCP, PostgreSQL; DR: HTTP, PostgreSQL; cold: HTTP; the
   control target: TCP) pointed at local servers: two HTTP origins, a real PostgreSQL 15 primary and
   its streaming standby; AWS through moto in this process (DynamoDB results table, EventBridge,
   Secrets Manager). Two cases: the cold site answers, and the cold site is not launched (its
   address takes the connection attempt and never completes it, as an Elastic IP with no instance
   behind it does: the check waits its whole timeout). Per invocation: wall time, the items the
   round writes and their DynamoDB size (the size rule: attribute names + values), the bytes the
   handler logs (JSON lines and the metrics' EMF blob) for one round, for the design before the
   round queue (the schedule's two rounds in one invocation), and for the two invocations of the
   round queue's design (the scheduled one, which queues the next round on moto's SQS, and the
   queued one).
   The round includes the standby watch (the state table's `service_state` and `standby_record`,
   two strongly consistent GetItems per service): the size of the state item, and of a standby
   record as the real domain words it (`standby_change` of a DR seen DOWN by every region) and the
   watch's conditional write stores it.
2. A failover execution through the end-to-end rig (`quorum_dr_local.rig`: the real ASL in moto,
   the real handlers and adapters, PostgreSQL checks on, waits scaled to 0), after one scheduled
   round in every region: a false alarm (main up) and a hot failover (main down). Per execution:
   state transitions (each state entered is one), the action functions' invocations and their
   wall time, the on-demand probe invocations, the execution history's size.
3. The scheduled readiness function: the real handler (`lambdas/readiness/handler.py`, the real
   `ReadinessGatherer`) with the example config, AWS through moto (state and results tables, the
   results of every region's rounds over the function's look-back, every secret copy, the cold
   site's AMI, SSM parameter and launch template, the home bus) and Cloudflare through the local
   emulator (`quorum_dr_local.standins.cloudflare_emulator`). Per invocation: wall time, the AWS
   calls it makes (by service and operation), the bytes it logs, the EMF metrics it emits, and the
   size of the readiness item it stores.

What it cannot measure here: the Internet between a probe region and the sites, TLS (the local
sites speak plain HTTP and PostgreSQL without SSL), and DynamoDB's own latency from another region;
`quorum_dr/pricing/usage.yaml` adds those as stated estimates. Prints figures (median, min, max);
asserts nothing. The figures in usage.yaml come from this script.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from quorum_dr_local.standins.health_page import HealthPage  # noqa: E402

HOME, REGION = "eu-west-2", "us-east-1"
TABLE, STATE_TABLE, BUS = "quorum-dr-results", "quorum-dr-state", "quorum-dr"
MONITOR_SECRET = "quorum-dr/booking/db-monitor"


# -- local sites --------------------------------------------------------------------------------


class Blackhole:
    """An address where a connection attempt never completes: a listening socket with a backlog
    of one that never accepts, its queue already full, so the kernel drops further SYNs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = int(self.sock.getsockname()[1])
        self.fillers: list[socket.socket] = []
        for _ in range(3):  # fill the accept queue (its length is backlog + 1 on Linux)
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self.fillers.append(filler)
        time.sleep(0.2)

    def stop(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.sock.close()


# -- the probe invocation -----------------------------------------------------------------------


def _load_handler() -> Any:
    spec = importlib.util.spec_from_file_location("probe_handler", ROOT / "lambdas" / "probe" / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Context:
    function_name: str = "quorum-dr-probe"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:quorum-dr-probe"
    aws_request_id: str = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 55_000


def probe_config(main: HealthPage, dr: HealthPage, cold_port: int, pair: Any) -> dict[str, Any]:
    """The example config, every address pointed at this machine."""
    data = yaml.safe_load((ROOT / "config" / "watchdog.example.yaml").read_text())
    data["probe"]["control_target"] = {
        "checks": [{"name": "control-aws", "type": "tcp", "host": "127.0.0.1", "port": main.port}]
    }
    service = data["services"][0]
    sites = service["sites"]
    for site, port in (("main", main.port), ("dr", dr.port), ("cold", cold_port)):
        for check in sites[site]["checks"]:
            if check["type"] == "http":
                check["url"] = f"http://127.0.0.1:{port}/health"
            elif check["type"] == "tcp":
                check.update(host="127.0.0.1", port=port)
            elif check["type"] == "postgres":
                cluster = pair.primary if site == "main" else pair.standby
                check.update(host="127.0.0.1", port=cluster.port, dbname="postgres", sslmode="disable")
    return data


def dynamodb_item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: each attribute's name in UTF-8 bytes plus its value (a string's UTF-8
    bytes; a number about one byte per two significant digits plus one)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if isinstance(value, str):
            size += len(value.encode())
        elif isinstance(value, int | float | Decimal):
            digits = len(str(abs(value)).replace(".", "").lstrip("0")) or 1
            size += (digits + 1) // 2 + 1
        else:
            size += len(json.dumps(value, default=str).encode())
    return size


@contextlib.contextmanager
def captured_output() -> Iterator[io.StringIO]:
    """Everything the handler writes: the Powertools logger's stream and stdout (EMF)."""
    from quorum_dr.observability import logger

    buffer = io.StringIO()
    handler = logger.registered_handler
    old = handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        with contextlib.redirect_stdout(buffer):
            yield buffer
    finally:
        handler.setStream(old)  # type: ignore[attr-defined]


def measure_probe(runs: int, cold_down: bool, pair: Any, work: Path) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from quorum_dr.adapters.dynamodb_state import DynamoStateStore
    from quorum_dr.adapters.tables import create_table
    from quorum_dr.config import load_config

    main, dr = HealthPage("main").start(), HealthPage("dr").start()
    cold_site: HealthPage | Blackhole = Blackhole() if cold_down else HealthPage("cold").start()
    try:
        config = probe_config(main, dr, cold_site.port, pair)
        path = work / ("cold-down.json" if cold_down else "cold-up.json")
        path.write_text(json.dumps(config))
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "QUORUM_DR_CONFIG_PATH": str(path),
            "RESULTS_TABLE_NAME": TABLE,
            "STATE_TABLE_NAME": STATE_TABLE,
            "EVENT_BUS_NAME": BUS,
            "POWERTOOLS_SERVICE_NAME": "quorum-dr",
            "POWERTOOLS_METRICS_NAMESPACE": "QuorumDR",
        }
        os.environ.update(env)
        with mock_aws():
            dynamodb = boto3.client("dynamodb", region_name=HOME)
            create_table(dynamodb, TABLE)
            create_table(dynamodb, STATE_TABLE)
            DynamoStateStore(STATE_TABLE, resource=boto3.resource("dynamodb", region_name=HOME)).put_state(
                {"service": "booking", "active_site": "main", "status": "HEALTHY"}, expected_version=0
            )
            boto3.client("events", region_name=REGION).create_event_bus(Name=BUS)
            boto3.client("secretsmanager", region_name=REGION).create_secret(
                Name=MONITOR_SECRET, SecretString=json.dumps(pair.primary.roles.monitor.as_secret())
            )
            handler = _load_handler()
            handler.handler({}, Context())  # warm: imports, clients, the secret's cache
            walls, log_bytes, items_per_round = [], [], []
            for _ in range(runs):
                before = {i["sk"]["S"] for i in dynamodb.scan(TableName=TABLE)["Items"]}
                with captured_output() as out:
                    started = time.perf_counter()
                    answer = handler.handler({}, Context())
                    walls.append(time.perf_counter() - started)
                log_bytes.append(len(out.getvalue().encode()))
                items = [i for i in dynamodb.scan(TableName=TABLE)["Items"] if i["sk"]["S"] not in before]
                items_per_round.append(items)
                assert answer["abstaining"] is False, answer["reason"]
            with captured_output() as out:  # the design before: the minute's two rounds in one invocation
                handler.handler({"source": "schedule", "rounds": 2, "round_spacing_seconds": 0}, Context())
            two_round_log_bytes = len(out.getvalue().encode())
            queued_log_bytes = measure_queued_rounds(handler, Context())
            table = boto3.resource("dynamodb", region_name=HOME).Table(TABLE)
            stored = table.scan()["Items"]
            sizes: dict[str, list[int]] = {}
            for item in stored:
                sizes.setdefault(str(item["check"]), []).append(dynamodb_item_size(item))
            verdicts = {v["site"]: v["vote"] for v in answer["verdicts"]}
            state_items = boto3.resource("dynamodb", region_name=HOME).Table(STATE_TABLE).scan()["Items"]
            (state_item,) = [i for i in state_items if i["sk"] == "STATE"]
            standby_item = standby_record_item(load_config(path))
    finally:
        for server in (main, dr, cold_site):
            server.stop()
    per_round = [len(items) for items in items_per_round]
    all_sizes = [s for values in sizes.values() for s in values]
    return {
        "cold_site": "not launched (connection attempts time out)" if cold_down else "answering",
        "verdicts": verdicts,
        "round_seconds": {
            "median": statistics.median(walls),
            "min": min(walls),
            "max": max(walls),
            "runs": len(walls),
        },
        "items_per_round": max(per_round),
        "item_bytes": {
            "mean": statistics.mean(all_sizes),
            "max": max(all_sizes),
            "by_check": {k: max(v) for k, v in sorted(sizes.items())},
        },
        "log_bytes_per_invocation": {"median": statistics.median(log_bytes), "max": max(log_bytes)},
        "log_bytes_two_round_invocation": two_round_log_bytes,
        "log_bytes_round_queue_invocations": queued_log_bytes,
        "state_item_bytes": dynamodb_item_size(state_item),
        "standby_record_item_bytes": dynamodb_item_size(standby_item),
    }


def measure_queued_rounds(handler: Any, context: Any) -> dict[str, int]:
    """As deployed (interval below 60 s): the scheduled invocation runs one round and queues the
    next on the round queue (moto's SQS), then the queued message's invocation runs it. The bytes
    each logs (its round's lines and the queue's sentence)."""
    import boto3

    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="quorum-dr-probe-rounds")["QueueUrl"]
    os.environ["ROUND_QUEUE_URL"] = url
    try:
        with captured_output() as out:
            handler.handler({"source": "schedule", "rounds": 2, "round_spacing_seconds": 1}, context)
        first = len(out.getvalue().encode())
        message = None
        for _ in range(10):  # bounded: the message is delayed 1 s
            messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
            if messages:
                message = messages[0]
                break
        assert message is not None, "the queued round never arrived"
        event = {
            "Records": [
                {"messageId": message["MessageId"], "body": message["Body"], "eventSource": "aws:sqs"}
            ]
        }
        clock = handler.clock
        handler.clock = lambda: json.loads(message["Body"])["due_at"]  # on time, however long round 1 took
        try:
            with captured_output() as out:
                answer = handler.handler(event, context)
        finally:
            handler.clock = clock
        assert answer["messages"][0]["round"] is not None, answer
        return {"scheduled": first, "queued": len(out.getvalue().encode())}
    finally:
        del os.environ["ROUND_QUEUE_URL"]


def standby_record_item(config: Any) -> dict[str, Any]:
    """The state table's standby item as the watch's claim stores it, the record worded by the real
    domain: DR's HTTP check DOWN in every region for `down_after_rounds` rounds while main serves."""
    import boto3

    from quorum_dr.adapters.dynamodb_state import DynamoStandbyWatch
    from quorum_dr.domain.results import CONTROL_SITE, FailureClass, ProbeResult, Vote
    from quorum_dr.domain.standby_health import STANDBY_SK, evaluate_standby, standby_change
    from quorum_dr.domain.state import ServiceStatus

    now = time.time()
    pool = []
    for index in range(config.probe.down_after_rounds + 1):
        at = now - (config.probe.down_after_rounds - index) * config.probe.interval_seconds
        for region in config.probe_regions:
            common = {
                "service": "booking",
                "region": region,
                "round_id": f"{region}-{index}",
                "latency_ms": 3.0,
            }
            common.update(probe_time=at, received_at=at)
            pool += [
                ProbeResult(**common, site=CONTROL_SITE, check="control-aws", check_type="tcp", vote=Vote.UP),
                ProbeResult(**common, site="main", check="https-health", check_type="http", vote=Vote.UP),
                ProbeResult(
                    **common,
                    site="dr",
                    check="https-health",
                    check_type="http",
                    vote=Vote.DOWN,
                    failure_class=FailureClass.CONNECT_TIMEOUT,
                ),
            ]
    view = evaluate_standby(
        pool, config, "booking", active_site="main", status=ServiceStatus.HEALTHY, now=now
    )
    change = standby_change(view, None, config, region=REGION, round_id=f"{REGION}-2", now=now)
    assert change.record is not None, change.reason
    watch = DynamoStandbyWatch(STATE_TABLE, resource=boto3.resource("dynamodb", region_name=HOME))
    assert watch.claim_standby_change("booking", change.record, expected_version=0)
    table = boto3.resource("dynamodb", region_name=HOME).Table(STATE_TABLE)
    return dict(table.get_item(Key={"pk": "booking", "sk": STANDBY_SK})["Item"])


# -- the scheduled readiness function -----------------------------------------------------------

CF_TOKEN = "cf-token-cost-bench-0123456789"
ACCOUNT = "123456789012"


@contextlib.contextmanager
def counted_aws_calls() -> Iterator[dict[str, list[float]]]:
    """Every AWS API call botocore makes meanwhile, by "service.Operation", with the seconds each
    took (moto answers them in this process)."""
    from botocore.client import BaseClient

    calls: dict[str, list[float]] = {}
    original = BaseClient._make_api_call

    def counting(self: Any, operation: str, params: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, operation, params)
        finally:
            key = f"{self.meta.service_model.service_name}.{operation}"
            calls.setdefault(key, []).append(time.perf_counter() - started)

    BaseClient._make_api_call = counting  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]


def readiness_results(config: Any, lookback: float) -> list[Any]:
    """What the results table holds for the readiness function's look-back: a round every interval
    from every region, each check of the config (the control target's and every site's), healthy,
    with a streaming standby."""
    from quorum_dr.config import PostgresCheck
    from quorum_dr.domain.results import CONTROL_SITE, DbRole, DbStatus, ProbeResult, Vote

    service = config.services[0]
    sites = [(CONTROL_SITE, config.probe.control_target)] + [
        (name, site)
        for name, site in (
            ("main", service.sites.main),
            ("dr", service.sites.dr),
            ("cold", service.sites.cold),
        )
        if site
    ]
    primary = DbStatus(role=DbRole.PRIMARY, current_lsn="0/3000148")
    standby = DbStatus(
        role=DbRole.STANDBY,
        receive_lsn="0/3000148",
        replay_lsn="0/3000148",
        replay_lag_bytes=0,
        replay_lag_seconds=1.0,
        streaming=True,
    )
    now, results = time.time(), []
    rounds = int(lookback // config.probe.interval_seconds)
    for index in range(rounds):
        at = now - (rounds - 1 - index) * config.probe.interval_seconds
        for region in config.probe_regions:
            for site_name, site in sites:
                for check in site.checks:
                    extra: dict[str, Any] = {}
                    if isinstance(check, PostgresCheck):
                        extra = {"db": primary if site_name == "main" else standby, "counts": False}
                    results.append(
                        ProbeResult(
                            service=service.name,
                            site=site_name,
                            check=check.name,
                            check_type=check.type,
                            region=region,
                            round_id=f"{region}-{index}",
                            latency_ms=12.0,
                            probe_time=at,
                            vote=Vote.UP,
                            **extra,
                        )
                    )
    return results


def measure_readiness(runs: int, work: Path) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from quorum_dr.adapters.dynamodb_results import DynamoDbResultStore
    from quorum_dr.adapters.dynamodb_state import DynamoStateStore
    from quorum_dr.adapters.readiness import launch_template_name, lookback_seconds
    from quorum_dr.adapters.tables import create_table
    from quorum_dr.config import load_config
    from quorum_dr.domain.cost import secret_copies
    from quorum_dr_local.standins.cloudflare_emulator import CloudflareEmulator, seed_for_service

    data = yaml.safe_load((ROOT / "config" / "watchdog.example.yaml").read_text())
    example = load_config(ROOT / "config" / "watchdog.example.yaml")
    service = example.services[0]
    cold = service.cold_site
    assert cold is not None and cold.ami_ssm_parameter
    with mock_aws(), CloudflareEmulator(seed_for_service(service, CF_TOKEN)) as emulator:
        data["services"][0]["edge"]["api_base_url"] = emulator.base_url
        path = work / "readiness.json"
        path.write_text(json.dumps(data))
        config = load_config(path)
        machines = f"arn:aws:states:{HOME}:{ACCOUNT}:stateMachine"
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": HOME,
                "AWS_REGION": HOME,
                "QUORUM_DR_CONFIG_PATH": str(path),
                "STATE_TABLE_NAME": STATE_TABLE,
                "RESULTS_TABLE_NAME": TABLE,
                "EVENT_BUS_NAME": BUS,
                "STATE_MACHINE_ARN": f"{machines}:quorum-dr-failover",
                "SWITCHOVER_STATE_MACHINE_ARN": f"{machines}:quorum-dr-switchover",
                "POWERTOOLS_SERVICE_NAME": "quorum-dr",
                "POWERTOOLS_METRICS_NAMESPACE": "QuorumDR",
            }
        )
        dynamodb = boto3.client("dynamodb", region_name=HOME)
        create_table(dynamodb, STATE_TABLE)
        create_table(dynamodb, TABLE)
        resource = boto3.resource("dynamodb", region_name=HOME)
        DynamoStateStore(STATE_TABLE, resource=resource).put_state(
            {"service": service.name, "active_site": "main", "status": "HEALTHY"}, expected_version=0
        )
        store = DynamoDbResultStore(resource.Table(TABLE), ttl_seconds=config.probe.result_ttl_seconds)
        results = readiness_results(config, lookback_seconds(config))
        for start in range(0, len(results), 100):
            store.put_results(results[start : start + 100])
        boto3.client("events", region_name=HOME).create_event_bus(Name=BUS)
        for region, names in secret_copies(config).items():
            secrets = boto3.client("secretsmanager", region_name=region)
            for name in sorted(names):
                value = CF_TOKEN if name == service.edge.api_token_secret else '{"username": "x"}'
                secrets.create_secret(Name=name, SecretString=value)
        ec2 = boto3.client("ec2", region_name=cold.region)
        ami = sorted(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"])[0]
        boto3.client("ssm", region_name=cold.region).put_parameter(
            Name=cold.ami_ssm_parameter, Value=ami, Type="String"
        )
        ec2.create_launch_template(
            LaunchTemplateName=launch_template_name(service),
            LaunchTemplateData={
                "ImageId": f"resolve:ssm:{cold.ami_ssm_parameter}",
                "InstanceType": "t3.small",
            },
        )
        spec = importlib.util.spec_from_file_location(
            "readiness_handler", ROOT / "lambdas" / "readiness" / "handler.py"
        )
        assert spec and spec.loader
        handler = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(handler)
        context = Context(
            function_name="quorum-dr-readiness",
            memory_limit_in_mb=256,
            invoked_function_arn=f"arn:aws:lambda:{HOME}:{ACCOUNT}:function:quorum-dr-readiness",
        )
        first = handler.handler({"source": "schedule"}, context)  # warm: imports, the first record
        walls, log_bytes, calls_seen, metrics_seen, cloudflare = [], [], [], [], []
        call_seconds: list[dict[str, float]] = []
        for _ in range(runs):
            before = len(emulator.requests())
            with counted_aws_calls() as calls, captured_output() as out:
                started = time.perf_counter()
                answer = handler.handler({"source": "schedule"}, context)
                walls.append(time.perf_counter() - started)
            cloudflare.append(len(emulator.requests()) - before)
            text = out.getvalue()
            log_bytes.append(len(text.encode()))
            calls_seen.append({k: len(v) for k, v in sorted(calls.items())})
            call_seconds.append({k: sum(v) for k, v in calls.items()})
            emitted = set()
            for line in text.splitlines():
                if line.startswith("{") and '"_aws"' in line:
                    record = json.loads(line)
                    for directive in record["_aws"]["CloudWatchMetrics"]:
                        for metric in directive["Metrics"]:
                            dims = tuple(
                                (d, str(record.get(d))) for group in directive["Dimensions"] for d in group
                            )
                            emitted.add((metric["Name"], dims))
            metrics_seen.append(sorted(emitted))
        item = resource.Table(STATE_TABLE).get_item(
            Key={"pk": f"READINESS#{service.name}", "sk": "READINESS"}
        )["Item"]
        outcomes = answer["outcomes"]
        checks = sorted({dict(m[1]).get("check", "") for m in metrics_seen[-1]} - {""})
    return {
        "first_evaluation": [o["reason"] for o in first["outcomes"]],
        "outcomes": [(o["service"], o["overall"], o["reason"]) for o in outcomes],
        "invocation_seconds": {
            "median": statistics.median(walls),
            "min": min(walls),
            "max": max(walls),
            "runs": len(walls),
        },
        "aws_calls_per_invocation": calls_seen[-1],
        "aws_calls_identical_each_run": all(c == calls_seen[0] for c in calls_seen),
        "aws_call_seconds_median": {
            k: round(statistics.median(c.get(k, 0.0) for c in call_seconds), 4) for k in sorted(calls_seen[0])
        },
        "log_bytes_per_invocation": {"median": statistics.median(log_bytes), "max": max(log_bytes)},
        "metrics": {"count": len(metrics_seen[-1]), "checks": checks, "all": metrics_seen[-1]},
        "readiness_item_bytes": dynamodb_item_size(item),
        "results_in_lookback": len(results),
        "cloudflare_requests_per_invocation": max(cloudflare),
    }


# -- failover executions ------------------------------------------------------------------------


def measure_execution(base: Path, main_down: bool, name: str) -> dict[str, Any]:
    import boto3

    from quorum_dr_local.rig import FailoverRig
    from quorum_dr_local.system_config import PROBE_REGIONS

    with FailoverRig(base, postgres_checks=True) as rig:
        handlers = rig.harness.handlers
        calls: dict[str, list[float]] = {}

        def timed(key: str, function: Any) -> Any:
            def call(event: Any, context: Any) -> Any:
                started = time.perf_counter()
                try:
                    return function(event, context)
                finally:
                    calls.setdefault(key, []).append(time.perf_counter() - started)

            return call

        for key in list(handlers):
            handlers[key] = timed(key, handlers[key])
        for region in PROBE_REGIONS:  # a scheduled round first, as in production (the loss bound)
            boto3.client("lambda", region_name=region).invoke(
                FunctionName=f"arn:aws:lambda:{region}:123456789012:function:quorum-dr-probe",
                Payload=json.dumps({"round_id": f"quiet-{region}", "service": "booking"}).encode(),
            )
        calls.clear()
        if main_down:
            rig.site_down("main")
        described = rig.run(name=name, timeout=180)
        sfn = boto3.client("stepfunctions", region_name=HOME)
        history: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": described["executionArn"], "maxResults": 1000}
        for _ in range(50):  # bounded paging
            page = sfn.get_execution_history(**kwargs)
            history += page["events"]
            if "nextToken" not in page:
                break
            kwargs["nextToken"] = page["nextToken"]
        entered = [e for e in history if e["type"].endswith("StateEntered")]
        history_bytes = len(json.dumps(history, default=str).encode())
    probe_calls = {k: v for k, v in calls.items() if "probe" in k}
    action_calls = {k: v for k, v in calls.items() if "probe" not in k}
    return {
        "status": described["status"],
        "state_transitions": len(entered),
        "history_bytes": history_bytes,
        "action_invocations": sum(len(v) for v in action_calls.values()),
        "action_seconds": round(sum(sum(v) for v in action_calls.values()), 3),
        "probe_invocations": sum(len(v) for v in probe_calls.values()),
        "probe_seconds": round(sum(sum(v) for v in probe_calls.values()), 3),
        "by_function": {k: len(v) for k, v in sorted(calls.items())},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-failover", action="store_true", help="no failover executions")
    parser.add_argument("--skip-probe", action="store_true", help="no probe invocations (no PostgreSQL)")
    parser.add_argument("--skip-readiness", action="store_true", help="no readiness invocations")
    args = parser.parse_args()
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    from quorum_dr_local.standins.postgres import make_primary, make_standby, prepare_base_dir

    base = prepare_base_dir(Path(tempfile.mkdtemp(prefix="quorum-dr-cost-", dir="/tmp")))
    report: dict[str, Any] = {"measured_on": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores"}
    try:
        if not args.skip_readiness:
            report["readiness"] = measure_readiness(args.runs, base)
            print(json.dumps({"readiness": report["readiness"]}, indent=1, default=str), flush=True)
        if not args.skip_probe:
            with make_primary(base, name="cost-main") as primary:
                standby = make_standby(primary, base, name="cost-dr")
                try:
                    pair = type("Pair", (), {"primary": primary, "standby": standby})()
                    report["probe_cold_up"] = measure_probe(args.runs, False, pair, base)
                    print(json.dumps({"probe_cold_up": report["probe_cold_up"]}, indent=1), flush=True)
                    report["probe_cold_down"] = measure_probe(args.runs, True, pair, base)
                    print(json.dumps({"probe_cold_down": report["probe_cold_down"]}, indent=1), flush=True)
                finally:
                    standby.destroy()
        if not args.skip_failover:
            os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
            for key, down in (("false_alarm", False), ("hot_failover", True)):
                report[key] = measure_execution(base / key, down, f"cost-{key.replace('_', '-')}")
                print(json.dumps({key: report[key]}, indent=1), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
