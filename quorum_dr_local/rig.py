"""The failover, end to end, in one process: the real ASL, the real handlers, the REAL adapters.

Used by the end-to-end tests and `bench/action_phase.py` (development only: it imports moto).

- PostgreSQL 15: a primary (main) and a streaming standby (DR), each behind a booking app whose
  `/health` answers with its site in `X-Site`; a third booking app stands for the cold site.
- Cloudflare: the API emulator (DNS record or load-balancer pools) and the edge proxy that routes
  the public hostname to what the emulator points at; `public_endpoint` is that proxy.
- AWS through moto: DynamoDB (state, results), SNS (-> SQS, to read notifications back), EC2 (cold
  site), Secrets Manager (the secrets the production wiring reads), EventBridge (the probes' bus in
  each region), Lambda Invoke dispatched in-process: the failover functions to their handlers and
  the probe function of each region to the real probe handler, in that region.
- The ports are built by the production wiring from the environment (`production.from_env`): nothing
  is attached or faked.

Site down = its booking app stopped (and, for main, its database crashed).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import boto3

from quorum_dr.adapters.tables import create_table
from quorum_dr.config import (
    DnsRecord,
    FailoverMode,
    FailoverPolicy,
    LoadBalancerPools,
    Service,
    Site,
    WatchdogConfig,
)
from quorum_dr.domain.cold_report import ColdBootstrapReport, RestoreLine
from quorum_dr.domain.incident_record import IncidentRecord
from quorum_dr.failover import wiring
from quorum_dr.functions import ACTION_FUNCTIONS, PROBE, function_name
from quorum_dr_local import system_config as local
from quorum_dr_local.iam_enforcement import IamEnforcement
from quorum_dr_local.iam_policies import StackTemplate, principal_policies, synthesize
from quorum_dr_local.sfn_harness import ACCOUNT, SfnHarness, load_handler
from quorum_dr_local.standins.booking_app import BookingApp
from quorum_dr_local.standins.cloudflare_emulator import CloudflareEmulator, seed_for_service
from quorum_dr_local.standins.edge_proxy import DnsRoute, EdgeProxy, EmulatorRoutes, PoolRoute
from quorum_dr_local.standins.postgres import PgPair, make_primary, make_standby
from quorum_dr_local.system_config import ALERT_TOPIC, COLD_REGION, HOME_REGION, PROBE_REGIONS

HOME = HOME_REGION
REGIONS = list(PROBE_REGIONS)
ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
CF_ACCOUNT = "acct-qdr"
CF_TOKEN = "cf-token-rig-0123456789"
STATE_TABLE, RESULTS_TABLE, BUS = "quorum-dr-state", "quorum-dr-results", "quorum-dr"
PROBE_FUNCTION = function_name(PROBE)
DB_SECRET, CF_SECRET = "quorum-dr/booking/db-admin", "quorum-dr/cloudflare-token"
DR_DB_SECRET = "quorum-dr/booking/db-admin-dr"  # its own secret: each function reads only its own
COLD_AMI_PARAMETER = "/quorum-dr/booking/cold-ami"
MAIN_DB_SECRET = "quorum-dr/booking/db-admin-main"  # only with main_admin other than the superuser
MONITOR_SECRET = "quorum-dr/booking/db-monitor"
PROMOTIONS_TABLE = "quorum_dr_promotions"
AUTO_EVENT = {
    "source": "quorum-dr",
    "detail-type": "ProbeFailed",
    "detail": {"service": "booking", "site": "main", "region": "eu-west-2", "round_id": "r0", "results": []},
}
_SYNTHESIZED: dict[tuple[Any, ...], dict[str, StackTemplate]] = {}  # the app, once per rig variant
_TOKEN_LINE = re.compile(r"QDR_TASK_TOKEN=\$\{QDR_TASK_TOKEN:-\$\(placeholder '([^']*)'\)\}")


def _principal(name: str) -> Callable[[Any], str]:
    """The principal of every invocation of one function (IamEnforcement.handler_as)."""
    return lambda _context: name


def _table(name: str) -> None:
    create_table(boto3.client("dynamodb", region_name=HOME), name)


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class FailoverRig:
    """`with FailoverRig(base_dir) as rig:` everything up; on exit everything stopped and removed."""

    def __init__(
        self,
        base_dir: Path,
        *,
        edge_kind: str = "dns",
        cold: bool = False,
        bootstrap_script: str | None = None,
        time_scale: float = 0.0,
        postgres_checks: bool = False,
        enforce_iam: bool = False,
        propagation_seconds: float = 0.0,
        main_admin: str = "superuser",
        mode: FailoverMode = FailoverMode.AUTO,
        veto_seconds: int = 120,
        approval_timeout_seconds: int = 1800,
    ) -> None:
        """`main_admin` names the sandbox role (superuser, monitor, ...) whose credentials the
        functions use for main's database: "monitor" lacks the privileges a fence needs."""
        self.base_dir = Path(base_dir)
        self.edge_kind = edge_kind
        self.cold = cold
        self.bootstrap_script = bootstrap_script
        self.time_scale = time_scale
        self.postgres_checks = postgres_checks
        self.enforce_iam = enforce_iam
        self.iam: IamEnforcement | None = None
        self.propagation_seconds = propagation_seconds  # an edge change reaches the proxy this late
        self.main_admin = main_admin
        self.mode, self.veto_seconds = mode, veto_seconds
        self.approval_timeout_seconds = approval_timeout_seconds
        self._stack = ExitStack()
        self.pair: PgPair
        self.apps: dict[str, BookingApp] = {}
        self.emulator: CloudflareEmulator
        self.proxy: EdgeProxy
        self.harness: SfnHarness
        self.topic_arn = ""
        self.inbox_url = ""
        self.config_dir = Path()
        self.cold_image = "ami-00000000"
        self.cold_eip = "eipalloc-00000000"

    # -- set-up ---------------------------------------------------------------------------------

    def __enter__(self) -> FailoverRig:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        stack = self._stack
        self.config_dir = Path(tempfile.mkdtemp(prefix="quorum-dr-rig-"))
        stack.callback(shutil.rmtree, self.config_dir, True)
        primary = make_primary(self.base_dir, name=f"rig{id(self) % 100000}-main")
        stack.callback(primary.destroy)
        standby = make_standby(primary, self.base_dir, name=f"rig{id(self) % 100000}-dr")
        stack.callback(standby.destroy)
        standby.wait_streaming()
        self.pair = PgPair(primary, standby)
        for site, cluster in (("main", primary), ("dr", standby), ("cold", standby)):
            if site == "cold" and not self.cold:
                continue
            app = BookingApp(site, cluster.dsn("app")).start()
            stack.callback(app.stop)
            self.apps[site] = app
        seed = seed_for_service(self.service_config(), CF_TOKEN)
        self.emulator = CloudflareEmulator(seed).start()
        stack.callback(self.emulator.stop)
        route = (
            DnsRoute("app.example.com", ZONE)
            if self.edge_kind == "dns"
            else PoolRoute("app.example.com", CF_ACCOUNT, ("pool-main", "pool-dr", "pool-cold"))
        )
        routes = EmulatorRoutes(
            self.emulator.url, [route], refresh_seconds=0.0, propagation_seconds=self.propagation_seconds
        )
        routes.origin(route.hostname)  # the edge as it serves before any change
        self.proxy = EdgeProxy(routes).start()
        stack.callback(self.proxy.stop)
        config_path = self.config_dir / "watchdog.json"
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": HOME,
            "AWS_REGION": HOME,
            "QUORUM_DR_CONFIG_PATH": str(config_path),
            "STATE_TABLE_NAME": STATE_TABLE,
            "RESULTS_TABLE_NAME": RESULTS_TABLE,
            "EVENT_BUS_NAME": BUS,
            "ALERT_TOPIC_ARN": f"arn:aws:sns:{HOME}:{ACCOUNT}:{ALERT_TOPIC}",
            "PROBE_FUNCTION_ARNS": json.dumps(
                {r: f"arn:aws:lambda:{r}:{ACCOUNT}:function:{PROBE_FUNCTION}" for r in REGIONS}
            ),
            "POWERTOOLS_METRICS_NAMESPACE": "QuorumDR",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        stack.enter_context(_environment(env))
        from moto import mock_aws

        stack.enter_context(
            mock_aws(
                config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
            )
        )
        self._aws_resources(env)
        config_path.write_text(json.dumps(local.config_json(self.config())))  # the bundled config
        wiring.use(None)  # the production wiring, from the environment
        stack.callback(wiring.use, None)
        handlers = {name: load_handler(name) for name in ACTION_FUNCTIONS}
        handlers[PROBE_FUNCTION] = load_handler("probe")
        if self.enforce_iam:
            handlers = self._under_iam(handlers)
        self.harness = SfnHarness(
            state_table=STATE_TABLE,
            alert_topic_arn=env["ALERT_TOPIC_ARN"],
            region=HOME,
            handlers=handlers,
            time_scale=self.time_scale,
        )
        stack.enter_context(self.harness)
        if self.iam is not None:
            self.iam.enforce()

    def _under_iam(self, handlers: dict[str, Any]) -> dict[str, Any]:
        """Each handler under its own synthesized role (quorum_dr_local.iam_enforcement)."""
        from unittest import mock

        key = (self.edge_kind, self.cold, self.postgres_checks, self.main_admin)  # what the policies name
        if key not in _SYNTHESIZED:
            _SYNTHESIZED[key] = synthesize(local.config_json(self.config()))
        physical = {}
        if self.cold:
            physical["launch_template:quorum-dr-booking-cold"] = json.loads(
                os.environ["COLD_SITE_LAUNCH_TEMPLATES"]
            )["booking"]["launch_template_id"]
        policies = principal_policies(_SYNTHESIZED[key], physical)
        self.iam = iam = IamEnforcement(policies, region=HOME).install()
        self._stack.callback(iam.close)
        current = wiring.current
        self._stack.enter_context(
            mock.patch.object(wiring, "current", lambda: iam.ports_for(wiring.from_env, current))
        )
        wrapped = {
            name: iam.handler_as(_principal(f"function:{name}"), handler)
            for name, handler in handlers.items()
            if name != PROBE_FUNCTION
        }
        # One probe container per region, as deployed: its module-level clients are its own.
        probes = {
            region: iam.handler_as(_principal(f"probe:{region}"), load_handler("probe")) for region in REGIONS
        }
        wrapped[PROBE_FUNCTION] = lambda event, ctx: probes[ctx.invoked_function_arn.split(":")[3]](
            event, ctx
        )
        return wrapped

    def iam_problems(self) -> list[str]:
        """With enforce_iam: every call refused, or not allowed by its function's synthesized
        policy (exact ARNs), so far."""
        return self.iam.problems() if self.iam is not None else []

    def _aws_resources(self, env: dict[str, str]) -> None:
        _table(STATE_TABLE)
        _table(RESULTS_TABLE)
        sns = boto3.client("sns", region_name=HOME)
        self.topic_arn = sns.create_topic(Name=ALERT_TOPIC)["TopicArn"]
        sqs = boto3.client("sqs", region_name=HOME)
        self.inbox_url = sqs.create_queue(QueueName="operators")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.inbox_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn)
        for region in REGIONS:
            boto3.client("events", region_name=region).create_event_bus(Name=BUS)
        secrets = boto3.client("secretsmanager", region_name=HOME)
        admin = json.dumps(self.pair.primary.roles.superuser.as_secret())
        secrets.create_secret(Name=DB_SECRET, SecretString=admin)
        secrets.create_secret(Name=DR_DB_SECRET, SecretString=admin)  # the standby has the same roles
        secrets.create_secret(Name=CF_SECRET, SecretString=CF_TOKEN)
        if self.main_admin != "superuser":
            main_admin = getattr(self.pair.primary.roles, self.main_admin)
            secrets.create_secret(Name=MAIN_DB_SECRET, SecretString=json.dumps(main_admin.as_secret()))
        monitor = self.pair.primary.roles.monitor.as_secret()
        for region in REGIONS:  # each region's probe reads it in its own region (a replica on AWS)
            boto3.client("secretsmanager", region_name=region).create_secret(
                Name=MONITOR_SECRET, SecretString=json.dumps(monitor)
            )
        if self.cold:
            ec2 = boto3.client("ec2", region_name=COLD_REGION)
            image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
            self.cold_image = image
            boto3.client("ssm", region_name=COLD_REGION).put_parameter(
                Name=COLD_AMI_PARAMETER, Value=image, Type="String"
            )
            self.cold_eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
            template = ec2.create_launch_template(
                LaunchTemplateName="quorum-dr-booking-cold",
                LaunchTemplateData={"ImageId": image, "InstanceType": "t3.small"},
            )["LaunchTemplate"]["LaunchTemplateId"]
            os.environ["COLD_SITE_LAUNCH_TEMPLATES"] = json.dumps(
                {"booking": {"region": COLD_REGION, "launch_template_id": template}}
            )
            self._stack.callback(os.environ.pop, "COLD_SITE_LAUNCH_TEMPLATES", None)
            scripts = self.config_dir / "cold_site"
            scripts.mkdir()
            (scripts / "booking.sh").write_text(self.bootstrap_script or "#!/bin/bash\n", encoding="utf-8")

    # -- the config -----------------------------------------------------------------------------

    def _site(self, name: str) -> Site:
        app = self.apps.get(name)
        database_check = None
        if self.postgres_checks and name in ("main", "dr"):
            cluster = self.pair.primary if name == "main" else self.pair.standby
            database_check = local.postgres_check(cluster.host, cluster.port, MONITOR_SECRET)
        return local.local_site(
            name,
            "127.0.0.1",
            app.port if app else 9,
            check_timeout_seconds=8,  # below the probe default (10): loose on a loaded machine
            database_check=database_check,
        )

    def service_config(self) -> Service:
        """The service as configured; before the emulator and the proxy run, without their addresses
        (enough to seed the emulator)."""
        api = self.emulator.base_url if hasattr(self, "emulator") else None
        if self.edge_kind == "dns":
            records = [DnsRecord(name="app.example.com", record_id="rec-1")]
            edge = local.emulator_edge(ZONE, CF_SECRET, api, records=records)
        else:
            pools = LoadBalancerPools(main="pool-main", dr="pool-dr", cold="pool-cold" if self.cold else None)
            edge = local.emulator_edge(ZONE, CF_SECRET, api, account_id=CF_ACCOUNT, pools=pools)
        host = self.pair.primary.host
        database = local.database(
            (host, self.pair.primary.port),
            (host, self.pair.standby.port),
            DB_SECRET,
            dr_credentials_secret=DR_DB_SECRET,
        )
        if self.main_admin != "superuser":
            main = database.main.model_copy(update={"credentials_secret": MAIN_DB_SECRET})
            database = database.model_copy(update={"main": main})
        cold = None
        if self.cold:
            cold = (
                self._site("cold"),
                local.cold_site(
                    None,
                    "booking-backups",
                    ami_ssm_parameter=COLD_AMI_PARAMETER,
                    elastic_ip_allocation_id=self.cold_eip,
                ),
            )
        return local.local_service(
            "booking",
            public_hostname="app.example.com",
            public_endpoint=(self.proxy.url + "/health") if hasattr(self, "proxy") else None,
            main=self._site("main"),
            dr=self._site("dr"),
            edge=edge,
            database=database,
            failover=FailoverPolicy(
                mode=self.mode,
                veto_seconds=self.veto_seconds,
                approval_timeout_seconds=self.approval_timeout_seconds,
                cooldown_seconds=3600,
                daily_cap=5,
            ),
            cold=cold,
        )

    def config(self) -> WatchdogConfig:
        return local.watchdog_config(
            self.service_config(),
            control=("127.0.0.1", self.emulator.port),
            interval_seconds=30,
            timeout_seconds=10,  # loose: a loaded CI machine must not turn a slow check into a DOWN vote
            down_after_rounds=1,
            confirmation_rounds=3,
            confirmation_wait_seconds=1,
        )

    # -- faults ---------------------------------------------------------------------------------

    def site_down(self, site: str) -> None:
        """The site stops answering: its app stops; for main, its database crashes too."""
        self.apps[site].stop()
        if site == "main":
            self.pair.primary.crash()

    # -- runs and what they left ----------------------------------------------------------------

    def start(self, payload: Mapping[str, Any] = AUTO_EVENT, *, name: str) -> str:
        return self.harness.start(payload, name=name)

    def run(
        self, payload: Mapping[str, Any] = AUTO_EVENT, *, name: str, timeout: float = 60
    ) -> dict[str, Any]:
        return self.harness.wait(self.start(payload, name=name), timeout=timeout)

    def incident(self, incident_id: str) -> IncidentRecord:
        record = wiring.current().store.get_incident("booking", incident_id)
        if record is None:
            raise KeyError(f"no incident record {incident_id}")
        return record

    def promotions(self) -> list[str]:
        """The incidents recorded as having promoted the DR database (its own durable table)."""
        query = f"SELECT incident_id FROM {PROMOTIONS_TABLE} ORDER BY promoted_at"
        rows = self.pair.standby.sql(query, dbname="app")
        return [row[0] for row in rows]

    def edge_writes(self) -> int:
        return self.emulator.total_writes()

    def notifications(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=HOME)
        bodies = []
        for _ in range(20):  # bounded drain
            messages = sqs.receive_message(QueueUrl=self.inbox_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                break
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.inbox_url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def cold_bootstrap_reports_ready(
        self, *, backup_age_seconds: int = 420, timeout: float = 30
    ) -> threading.Thread:
        """What the cold instance's bootstrap does once its site is up: read the task token from its
        own user data and answer it (states:SendTaskSuccess). Runs in a thread; bounded."""

        def report() -> None:
            ec2 = boto3.client("ec2", region_name=COLD_REGION)
            with self.iam.acting_as("cold_site:booking") if self.iam else nullcontext():
                sfn = boto3.client("stepfunctions", region_name=HOME)  # the instance role's call
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                instances = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
                if instances:
                    attribute = ec2.describe_instance_attribute(
                        InstanceId=instances[0]["InstanceId"], Attribute="userData"
                    )
                    script = base64.b64decode(attribute["UserData"]["Value"]).decode()
                    match = _TOKEN_LINE.search(script)
                    if match and not match.group(1).startswith("@@"):
                        output = _bootstrap_report(instances[0]["InstanceId"], backup_age_seconds)
                        try:
                            sfn.send_task_success(taskToken=match.group(1), output=output)
                            return
                        except Exception:  # noqa: BLE001 - the task may not be waiting yet
                            pass
                time.sleep(0.05)

        thread = threading.Thread(target=report, name="cold-bootstrap", daemon=True)
        thread.start()
        return thread


def _bootstrap_report(instance_id: str, backup_age_seconds: float) -> str:
    """The report cold_site/bootstrap.sh sends, built from its contract (ColdBootstrapReport)."""
    restored_at = time.time()
    taken_at = restored_at - backup_age_seconds
    key = "postgres/booking-rig.dump"
    restore = RestoreLine(
        bucket="booking-backups",
        key=key,
        source="main",
        taken_at=taken_at,
        lsn="0/3000060",
        restored_at=restored_at,
        backup_age_seconds=backup_age_seconds,
        target="host=127.0.0.1 dbname=booking (cold)",
        reason=f"restored s3://booking-backups/{key} (taken {backup_age_seconds:.0f} s earlier)",
    )
    report = ColdBootstrapReport(ready=True, service="booking", instance=instance_id, restore=restore)
    return report.model_dump_json()
