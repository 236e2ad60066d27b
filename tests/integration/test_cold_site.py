"""The EC2 cold-site launcher against moto: one instance per incident, AMI sources, Elastic IP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from quorum_dr.adapters.cold_site import INCIDENT_TAG, Ec2ColdSiteLauncher, client_token
from quorum_dr.config import ColdSite

REGION = "us-west-2"
USER_DATA = "#!/bin/sh\necho restore latest backup\n"


@pytest.fixture
def ec2() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def an_ami(ec2: Any) -> str:
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    return str(sorted(i["ImageId"] for i in images)[0])


def cold_site(**kw: Any) -> ColdSite:
    return ColdSite(region=REGION, backup_bucket="booking-backups", **kw)


def live_instances(ec2: Any, incident_id: str) -> list[dict[str, Any]]:
    answer = ec2.describe_instances(Filters=[{"Name": f"tag:{INCIDENT_TAG}", "Values": [incident_id]}])
    return [i for r in answer["Reservations"] for i in r["Instances"] if i["State"]["Name"] != "terminated"]


def test_two_launches_for_one_incident_give_one_instance(ec2: Any) -> None:
    cold = cold_site(ami_id=an_ami(ec2))
    launcher = Ec2ColdSiteLauncher()

    first = launcher.launch("inc-42", cold, USER_DATA)
    second = Ec2ColdSiteLauncher().launch("inc-42", cold, USER_DATA)  # a retried Lambda, a new process

    assert first.already_existed is False
    assert second.already_existed is True
    assert second.instance_id == first.instance_id
    assert first.reason == f"launched {first.instance_id} from AMI {cold.ami_id} in {REGION}"
    assert second.reason == f"instance {first.instance_id} already launched for incident inc-42; reused"
    assert [i["InstanceId"] for i in live_instances(ec2, "inc-42")] == [first.instance_id]

    other = launcher.launch("inc-43", cold, USER_DATA)
    assert other.instance_id != first.instance_id and not other.already_existed


def test_the_instance_carries_the_client_token_tags_and_user_data(ec2: Any) -> None:
    cold = cold_site(ami_id=an_ami(ec2), instance_type="t3.medium")
    receipt = Ec2ColdSiteLauncher().launch("inc-50", cold, USER_DATA)

    (instance,) = live_instances(ec2, "inc-50")
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags[INCIDENT_TAG] == "inc-50"
    assert tags["quorum-dr:role"] == "cold-site"
    assert instance["InstanceType"] == "t3.medium"
    # moto records ClientToken without honouring it; the tag lookup above is what it can test.
    backend = ec2_backends[DEFAULT_ACCOUNT_ID][REGION]
    assert backend.get_instance(receipt.instance_id).client_token == "inc-50"


def test_long_incident_ids_give_a_stable_64_character_token() -> None:
    long_id = "execution-" + "x" * 80
    assert client_token(long_id) == client_token(long_id)
    assert len(client_token(long_id)) <= 64 and client_token(long_id).startswith("qdr-")
    assert client_token("inc-1") == "inc-1"


def test_the_ami_comes_from_the_ssm_parameter(ec2: Any) -> None:
    ami = an_ami(ec2)
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/quorum-dr/booking/cold-ami", Value=ami, Type="String"
    )
    cold = cold_site(ami_ssm_parameter="/quorum-dr/booking/cold-ami")
    receipt = Ec2ColdSiteLauncher().launch("inc-60", cold, USER_DATA)

    assert receipt.image_id == ami
    assert live_instances(ec2, "inc-60")[0]["ImageId"] == ami
    assert receipt.reason == (
        f"launched {receipt.instance_id} from AMI {ami} "
        f"(from SSM parameter /quorum-dr/booking/cold-ami) in {REGION}"
    )


def test_the_launch_template_alone_names_the_image(ec2: Any) -> None:
    ami = an_ami(ec2)
    ec2.create_launch_template(
        LaunchTemplateName="booking-cold", LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.large"}
    )
    cold = cold_site(launch_template_name="booking-cold")
    receipt = Ec2ColdSiteLauncher().launch("inc-70", cold, USER_DATA)

    (instance,) = live_instances(ec2, "inc-70")
    assert instance["ImageId"] == ami
    assert instance["InstanceType"] == "t3.large"  # the template's type: the config did not set one
    assert receipt.reason == (
        f"launched {receipt.instance_id} from launch template booking-cold (AMI {ami}) in {REGION}"
    )


def test_the_elastic_ip_is_associated_once(ec2: Any) -> None:
    allocation = ec2.allocate_address(Domain="vpc")
    cold = cold_site(ami_id=an_ami(ec2), elastic_ip_allocation_id=allocation["AllocationId"])
    launcher = Ec2ColdSiteLauncher(running_wait_delay_seconds=1, running_wait_max_attempts=3)

    first = launcher.launch("inc-80", cold, USER_DATA)
    address = ec2.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"][0]
    assert address["InstanceId"] == first.instance_id
    assert first.elastic_ip == allocation["PublicIp"]
    assert first.reason.endswith(
        f"; Elastic IP {allocation['PublicIp']} ({allocation['AllocationId']}) "
        f"associated with {first.instance_id}"
    )
    association = address["AssociationId"]

    again = launcher.launch("inc-80", cold, USER_DATA)
    assert again.reason.endswith(f"already on {first.instance_id}")
    address = ec2.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"][0]
    assert address["AssociationId"] == association  # not re-associated

    view = launcher.describe(first.instance_id)
    assert (view.instance_id, view.state, view.public_ip) == (
        first.instance_id,
        "running",
        allocation["PublicIp"],
    )


def test_an_elastic_ip_left_on_an_old_instance_moves_to_the_new_one(ec2: Any) -> None:
    allocation = ec2.allocate_address(Domain="vpc")
    ami = an_ami(ec2)
    old = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.associate_address(AllocationId=allocation["AllocationId"], InstanceId=old)
    cold = cold_site(ami_id=ami, elastic_ip_allocation_id=allocation["AllocationId"])

    receipt = Ec2ColdSiteLauncher(running_wait_delay_seconds=1).launch("inc-90", cold, USER_DATA)

    address = ec2.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"][0]
    assert address["InstanceId"] == receipt.instance_id
    assert receipt.reason.endswith(f"moved from {old}")


def test_describe_needs_a_region_before_any_launch(ec2: Any) -> None:
    with pytest.raises(ValueError, match="describe needs a region"):
        Ec2ColdSiteLauncher().describe("i-0123")
    instance = ec2.run_instances(ImageId=an_ami(ec2), MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    assert Ec2ColdSiteLauncher().describe(instance, region=REGION).state == "running"
