"""The drill's AWS: moto, in this process and as a server the drill's other processes reach.

`DrillCloud` enters `mock_aws` (Step Functions executes the real ASL, Lambda runs in-process)
and starts a `ThreadedMotoServer` on the control address, so the probe agents (in their network
namespaces) and the cold site's bootstrap script reach the same backends through
`AWS_ENDPOINT_URL`. It creates what the CDK app creates: the state and results tables, the event
bus in every probe region with a rule to the control plane, the alert topic, the secrets, the
backup bucket, one probe function per region, and the failover state machine (`SfnHarness`, the
real handlers in-process). moto's EventBridge does not deliver to Step Functions, so the rule's
target here is an SQS queue the drill polls, and the drill starts the execution with the event
(what the rule's Step Functions target does).
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import boto3

from quorum_dr.adapters.tables import create_table
from quorum_dr_local.drill.layout import (
    BACKUP_BUCKET,
    EVENT_BUS,
    EVENT_QUEUE,
    RESULTS_TABLE,
    STATE_TABLE,
    Layout,
)
from quorum_dr_local.sfn_harness import ACCOUNT, SfnHarness
from quorum_dr_local.system_config import ALERT_TOPIC, COLD_REGION, HOME_REGION, PROBE_REGIONS


class AgentError(Exception):
    """The probe agent answered with a function error; the class name is lost, the message kept."""


def probe_function_name(region: str) -> str:
    return f"quorum-dr-probe-{region}"


def forward_to_agent(url: str, timeout: float) -> Callable[[Any, Any], Any]:
    """A Lambda handler that runs the invocation on the region's probe agent (in its namespace)."""

    def invoke(event: Any, context: Any) -> Any:
        request = urllib.request.Request(
            url + "/invoke", data=json.dumps(event).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - our own agent
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            raise AgentError(f"{body.get('errorType')}: {body.get('errorMessage')}") from None

    return invoke


class DrillCloud:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._stack = ExitStack()
        self.server: Any = None
        self.harness: SfnHarness | None = None
        self.queue_url = ""
        self.topic_arn = f"arn:aws:sns:{HOME_REGION}:{ACCOUNT}:{ALERT_TOPIC}"

    def start(self) -> DrillCloud:
        from moto import mock_aws
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # In this process moto answers every call; the variables keep botocore from looking further.
        saved = {
            k: os.environ.get(k) for k in ("AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        }
        os.environ.update(
            AWS_DEFAULT_REGION=HOME_REGION, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"
        )
        self._stack.callback(_restore_env, saved)
        self._stack.enter_context(
            mock_aws(
                config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
            )
        )
        self.server = ThreadedMotoServer(
            ip_address=self.layout.control, port=self.layout.aws_port, verbose=False
        )
        self.server.start()
        self._stack.callback(self.server.stop)
        return self

    def client(self, name: str, region: str = HOME_REGION) -> Any:
        return boto3.client(name, region_name=region)

    def create_resources(self, secrets: dict[str, str]) -> None:
        ddb = self.client("dynamodb")
        for table in (STATE_TABLE, RESULTS_TABLE):
            create_table(ddb, table)
        sqs = self.client("sqs")
        self.queue_url = sqs.create_queue(QueueName=EVENT_QUEUE)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        for region in PROBE_REGIONS:
            events = self.client("events", region)
            events.create_event_bus(Name=EVENT_BUS)
            events.put_rule(
                Name="quorum-dr-to-control-plane",
                EventBusName=EVENT_BUS,
                EventPattern=json.dumps({"source": ["quorum-dr"]}),
            )
            events.put_targets(
                Rule="quorum-dr-to-control-plane",
                EventBusName=EVENT_BUS,
                Targets=[{"Id": "control-plane", "Arn": queue_arn}],
            )
            manager = self.client("secretsmanager", region)
            for name, value in secrets.items():
                manager.create_secret(Name=name, SecretString=value)
        self.client("sns").create_topic(Name=ALERT_TOPIC)
        self.client("s3").create_bucket(
            Bucket=BACKUP_BUCKET, CreateBucketConfiguration={"LocationConstraint": HOME_REGION}
        )

    def cold_ami(self) -> str:
        images = self.client("ec2", COLD_REGION).describe_images(Owners=["amazon"])["Images"]
        return str(sorted(i["ImageId"] for i in images)[0])

    def start_state_machine(self, agents: dict[str, str], probe_timeout: float) -> SfnHarness:
        """The failover state machine with the real handlers; probe functions go to the agents."""
        from quorum_dr.functions import ACTION_FUNCTIONS, REHEARSAL_FUNCTIONS
        from quorum_dr_local.sfn_harness import load_handler

        handlers = {name: load_handler(name) for name in ACTION_FUNCTIONS + REHEARSAL_FUNCTIONS}
        for region, url in agents.items():
            handlers[probe_function_name(region)] = forward_to_agent(url, probe_timeout)
        harness = SfnHarness(
            state_table=STATE_TABLE,
            alert_topic_arn=self.topic_arn,
            region=HOME_REGION,
            handlers=handlers,
            time_scale=1.0,
        )
        self._stack.enter_context(harness)
        # the planned switchover's machine beside it, on the same handlers (the operator's switchover)
        self.switchover_arn = harness.add_machine("switchover", "Switchover")
        # and the restore rehearsal's (the operator's `drctl rehearse cold-site`)
        self.rehearsal_arn = harness.add_machine("rehearsal", "Rehearsal")
        role = f"arn:aws:iam::{ACCOUNT}:role/quorum-dr-harness"
        for region in agents:
            self.client("lambda", region).create_function(
                FunctionName=probe_function_name(region),
                Runtime="python3.11",
                Role=role,
                Handler="handler.handler",
                Code={"ZipFile": _stub_zip()},
            )
        self.harness = harness
        return harness

    def probe_function_arns(self) -> dict[str, str]:
        return {
            region: f"arn:aws:lambda:{region}:{ACCOUNT}:function:{probe_function_name(region)}"
            for region in PROBE_REGIONS
        }

    def stop(self) -> None:
        self._stack.close()


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _stub_zip() -> bytes:
    import io
    import zipfile

    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return code.getvalue()
