"""The cold site's compute on EC2: launched at most once per incident.

Two guards make a retried launch safe: an instance already tagged with the incident (and not
terminated) is reused, and RunInstances carries `ClientToken` derived from the incident id, so
that two racing calls still give one instance on EC2. The image comes from `ami_id`, from an SSM
parameter (`ami_ssm_parameter`, e.g. the latest baked AMI), or from the launch template alone.
The Elastic IP, when configured, is associated once the instance runs, and only if it is not
already on that instance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
from aws_lambda_powertools import Logger

from quorum_dr.adapters.aws_sdk import sdk_config
from quorum_dr.config import ColdSite, Service
from quorum_dr.failover.errors import ColdSiteFailed
from quorum_dr.ports import ColdSiteLauncher, ComputeLauncher, InstanceView, LaunchReceipt

logger = Logger(service="quorum-dr", child=True)

INCIDENT_TAG = "quorum-dr:incident"
ROLE_TAG = "quorum-dr:role"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
CLIENT_TOKEN_LIMIT = 64
TOKEN_PLACEHOLDER = "@@TASK_TOKEN@@"  # the one placeholder the CDK app leaves in cold_site/<service>.sh
USER_DATA_LIMIT = 16 * 1024  # bytes, before base64 (EC2's limit)
# Waiting for the instance to run before associating the Elastic IP: 15 polls 5 s apart. Most
# instances run within 30 s; the bound keeps the function inside its timeout (test_budgets).
RUNNING_WAIT_DELAY_SECONDS = 5
RUNNING_WAIT_MAX_ATTEMPTS = 15


def client_token(incident_id: str) -> str:
    """EC2 client tokens are at most 64 ASCII characters; longer ids are hashed, stably."""
    if len(incident_id) <= CLIENT_TOKEN_LIMIT and incident_id.isascii():
        return incident_id
    return "qdr-" + hashlib.sha256(incident_id.encode("utf-8")).hexdigest()[:56]


def run_request(
    incident_id: str,
    cold: ColdSite,
    image_id: str | None,
    *,
    template_id: str | None = None,
    template_name: str | None = None,
) -> dict[str, Any]:
    """The RunInstances request of a cold-site launch, without its client token and user data. The
    launch template: `template_id` (the one the CDK app created), else `template_name`, else the
    config's `launch_template_name`."""
    request: dict[str, Any] = {
        "MinCount": 1,
        "MaxCount": 1,
        "TagSpecifications": [
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": INCIDENT_TAG, "Value": incident_id},
                    {"Key": ROLE_TAG, "Value": "cold-site"},
                    {"Key": "Name", "Value": f"quorum-dr-cold-{incident_id}"[:255]},
                ],
            }
        ],
    }
    if image_id:
        request["ImageId"] = image_id
    name = template_name or cold.launch_template_name
    if template_id:
        request["LaunchTemplate"] = {"LaunchTemplateId": template_id}
    elif name:
        request["LaunchTemplate"] = {"LaunchTemplateName": name}
    # With a launch template, its instance type wins unless the config sets one explicitly.
    has_template = bool(template_id or name)
    if not has_template or "instance_type" in cold.model_fields_set:
        request["InstanceType"] = cold.instance_type
    if cold.subnet_id:
        request["SubnetId"] = cold.subnet_id
    return request


class Ec2ColdSiteLauncher(ComputeLauncher):
    def __init__(
        self,
        region: str | None = None,
        *,
        session: Any | None = None,
        running_wait_delay_seconds: int = RUNNING_WAIT_DELAY_SECONDS,
        running_wait_max_attempts: int = RUNNING_WAIT_MAX_ATTEMPTS,
    ) -> None:
        self._region = region
        self._session = session or boto3.session.Session()
        self._clients: dict[tuple[str, str], Any] = {}
        self._wait = {"Delay": running_wait_delay_seconds, "MaxAttempts": running_wait_max_attempts}

    def _client(self, service: str, region: str) -> Any:
        if (service, region) not in self._clients:
            self._clients[(service, region)] = self._session.client(
                service, region_name=region, config=sdk_config()
            )
        return self._clients[(service, region)]

    # -----------------------------------------------------------------------------------------

    def launch(
        self, incident_id: str, cold: ColdSite, user_data: str, *, launch_template_id: str | None = None
    ) -> LaunchReceipt:
        """`launch_template_id` (the one the CDK app created) wins over `cold.launch_template_name`."""
        self._region = cold.region
        ec2 = self._client("ec2", cold.region)
        existing = self._tagged_instance(ec2, incident_id)
        if existing is not None:
            instance_id, image_id = existing["InstanceId"], existing.get("ImageId")
            already, how = True, f"instance {instance_id} already launched for incident {incident_id}; reused"
        else:
            image_id = self.resolve_image(cold)
            instance = self._run(ec2, incident_id, cold, user_data, image_id, launch_template_id)
            instance_id, image_id = instance["InstanceId"], instance.get("ImageId", image_id)
            source = self._source(cold, image_id, launch_template_id)
            already, how = False, f"launched {instance_id} from {source} in {cold.region}"
        elastic_ip, eip_sentence = None, ""
        if cold.elastic_ip_allocation_id:
            elastic_ip, eip_sentence = self.associate_elastic_ip(instance_id, cold)
            eip_sentence = "; " + eip_sentence
        receipt = LaunchReceipt(
            instance_id=instance_id,
            already_existed=already,
            reason=how + eip_sentence,
            image_id=image_id,
            elastic_ip=elastic_ip,
        )
        logger.info(receipt.reason, extra={"incident_id": incident_id, "instance_id": instance_id})
        return receipt

    def resolve_image(self, cold: ColdSite) -> str | None:
        """The AMI id to launch, or None when the launch template names it."""
        if cold.ami_id:
            return cold.ami_id
        if cold.ami_ssm_parameter:
            ssm = self._client("ssm", cold.region)
            value = ssm.get_parameter(Name=cold.ami_ssm_parameter)["Parameter"]["Value"]
            return str(value).strip()
        return None

    @staticmethod
    def _source(cold: ColdSite, image_id: str | None, template_id: str | None = None) -> str:
        name = template_id or cold.launch_template_name
        template = f"launch template {name}" if name else ""
        if not (cold.ami_id or cold.ami_ssm_parameter):
            return f"{template} (AMI {image_id})" if image_id else template
        via = f" (from SSM parameter {cold.ami_ssm_parameter})" if cold.ami_ssm_parameter else ""
        return f"AMI {image_id}{via}" + (f" and {template}" if template else "")

    @staticmethod
    def _tagged_instance(ec2: Any, incident_id: str) -> dict[str, Any] | None:
        answer = ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{INCIDENT_TAG}", "Values": [incident_id]},
                {"Name": "instance-state-name", "Values": LIVE_STATES},
            ]
        )
        instances = [i for r in answer.get("Reservations", []) for i in r.get("Instances", [])]
        instances.sort(key=lambda i: (str(i.get("LaunchTime", "")), i["InstanceId"]))
        return instances[0] if instances else None

    def _run(
        self,
        ec2: Any,
        incident_id: str,
        cold: ColdSite,
        user_data: str,
        image_id: str | None,
        template_id: str | None = None,
    ) -> dict[str, Any]:
        request = run_request(incident_id, cold, image_id, template_id=template_id)
        request.update(ClientToken=client_token(incident_id), UserData=user_data)
        answer = ec2.run_instances(**request)
        instance: dict[str, Any] = answer["Instances"][0]
        return instance

    def dry_run(self, cold: ColdSite, image_id: str | None, template_name: str) -> tuple[str, str]:
        """RunInstances with DryRun=True: the launch request a failover sends (image, launch
        template, instance type, subnet, tags), without its user data and client token. Returns the
        code EC2 answered and its message: `DryRunOperation` when the launch would have succeeded
        (`UnauthorizedOperation`, `InvalidAMIID.NotFound`, ... when not)."""
        from botocore.exceptions import ClientError

        request = run_request("readiness-dry-run", cold, image_id, template_name=template_name)
        try:
            self._client("ec2", cold.region).run_instances(DryRun=True, **request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            return str(error.get("Code", "Unknown")), str(error.get("Message", ""))
        return "NoDryRunAnswer", "EC2 answered the dry run without the DryRunOperation error"

    def associate_elastic_ip(self, instance_id: str, cold: ColdSite) -> tuple[str | None, str]:
        """Put the configured Elastic IP on the instance; a no-op when it is already there."""
        allocation = cold.elastic_ip_allocation_id
        if not allocation:
            return None, "no Elastic IP configured"
        ec2 = self._client("ec2", cold.region)
        address = ec2.describe_addresses(AllocationIds=[allocation])["Addresses"][0]
        public_ip = address.get("PublicIp")
        if address.get("InstanceId") == instance_id:
            return public_ip, f"Elastic IP {public_ip} ({allocation}) already on {instance_id}"
        previous = address.get("InstanceId")
        ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=self._wait)
        ec2.associate_address(AllocationId=allocation, InstanceId=instance_id, AllowReassociation=True)
        moved = f", moved from {previous}" if previous else ""
        return public_ip, f"Elastic IP {public_ip} ({allocation}) associated with {instance_id}{moved}"

    def describe(self, instance_id: str, region: str | None = None) -> InstanceView:
        where = region or self._region
        if not where:
            raise ValueError("describe needs a region: pass it, or launch first")
        answer = self._client("ec2", where).describe_instances(InstanceIds=[instance_id])
        instance = answer["Reservations"][0]["Instances"][0]
        return InstanceView(
            instance_id=instance_id,
            state=instance["State"]["Name"],
            public_ip=instance.get("PublicIpAddress"),
            private_ip=instance.get("PrivateIpAddress"),
        )


class ColdSiteLaunch(ColdSiteLauncher):
    """The failover layer's ColdSiteLauncher port for one service.

    The user data is the bootstrap script the CDK app bundled as `cold_site/<service>.sh` (every
    value filled in but the task token) with the task token filled in here; the launch template is
    the one the CDK app created (`COLD_SITE_LAUNCH_TEMPLATES`: service -> region and id), else the
    config's. ClientToken = the incident id, so a retried launch never starts a second instance.
    """

    def __init__(
        self,
        service: Service,
        compute: ComputeLauncher,
        *,
        script_dir: Path,
        launch_templates: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.service = service
        self.compute = compute
        self.script_dir = Path(script_dir)
        self.template = dict((launch_templates or {}).get(service.name) or {})

    def user_data(self, task_token: str | None) -> str:
        path = self.script_dir / f"{self.service.name}.sh"
        try:
            script = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ColdSiteFailed(
                f"the cold-site bootstrap {path} is not in the bundle: {exc.strerror}"
            ) from None
        if task_token and "'" in task_token:
            raise ColdSiteFailed("the task token contains a single quote: refusing to put it in the script")
        filled = script.replace(TOKEN_PLACEHOLDER, task_token) if task_token else script
        if len(filled.encode("utf-8")) > USER_DATA_LIMIT:
            raise ColdSiteFailed(f"the cold-site user data is over EC2's {USER_DATA_LIMIT} bytes")
        return filled

    def launch(self, *, incident_id: str, task_token: str | None, dry_run: bool) -> dict[str, Any]:
        cold = self.service.cold_site
        if cold is None:
            raise ColdSiteFailed(f"{self.service.name} has no cold site configured")
        if self.template.get("region") and self.template["region"] != cold.region:
            cold = cold.model_copy(update={"region": self.template["region"]})
        template_id = self.template.get("launch_template_id")
        user_data = self.user_data(task_token)
        if dry_run:
            source = f"launch template {template_id}" if template_id else "the configured image"
            return {
                "dry_run": True,
                "reason": f"dry run: would run one instance from {source} in {cold.region} "
                f"(ClientToken {client_token(incident_id)}) with the bootstrap that reports ready",
            }
        try:
            receipt = self.compute.launch(incident_id, cold, user_data, launch_template_id=template_id)
        except ColdSiteFailed:
            raise
        except Exception as exc:  # botocore errors: the state machine escalates with this sentence
            raise ColdSiteFailed(
                f"launching the cold site of {self.service.name} in {cold.region} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        return receipt.model_dump(mode="json")
