"""The restore rehearsal's adapters: its results in the state table, the figures in S3, and the
termination of its cold site on EC2.

Results: pk `REHEARSAL#<service>` (a partition of its own, so the rehearsal's role may write it and
nothing else: an IAM condition on `dynamodb:LeadingKeys`), sk `LATEST` (what readiness reads) and
sk `RUN#<rehearsal id>` (the history; the id holds the UTC stamp, so the sort key sorts by time).

Termination: only instances tagged `quorum-dr:role = cold-site` and `quorum-dr:incident = <the
rehearsal id>`; the role's TerminateInstances holds to the same tag (aws:ResourceTag condition).
"""

from __future__ import annotations

from typing import Any

import boto3
from boto3.dynamodb.conditions import Key

from quorum_dr.adapters.aws_sdk import sdk_config
from quorum_dr.adapters.cold_site import INCIDENT_TAG, LIVE_STATES, ROLE_TAG
from quorum_dr.adapters.dynamodb_state import from_dynamo, to_dynamo
from quorum_dr.adapters.wal_archive import ArchiveTarget, read_figures
from quorum_dr.config import Service
from quorum_dr.domain.backup_figures import BackupFigures
from quorum_dr.domain.rehearsal import (
    ID_PATTERN,
    LATEST_SK,
    REHEARSAL_PK_PREFIX,
    RUN_SK_PREFIX,
    RehearsalResult,
)
from quorum_dr.rehearsal.service import InstanceTerminator, RehearsalStore


class DynamoRehearsalStore(RehearsalStore):
    def __init__(self, table_name: str, *, resource: Any = None, region: str | None = None) -> None:
        resource = resource or boto3.resource("dynamodb", region_name=region, config=sdk_config())
        self._table = resource.Table(table_name)

    def put_result(self, result: RehearsalResult) -> None:
        pk = REHEARSAL_PK_PREFIX + result.service
        body = result.model_dump(mode="json")
        self._table.put_item(Item=to_dynamo({"pk": pk, "sk": RUN_SK_PREFIX + result.rehearsal_id, **body}))
        self._table.put_item(Item=to_dynamo({"pk": pk, "sk": LATEST_SK, **body}))

    def mark_terminated(self, service: str, rehearsal_id: str, sentence: str) -> None:
        pk = REHEARSAL_PK_PREFIX + service
        for sk in (RUN_SK_PREFIX + rehearsal_id, LATEST_SK):
            try:
                self._table.update_item(
                    Key={"pk": pk, "sk": sk},
                    UpdateExpression="SET #t = :t",
                    ConditionExpression="#id = :id",  # LATEST may be a newer rehearsal's
                    ExpressionAttributeNames={"#t": "terminated", "#id": "rehearsal_id"},
                    ExpressionAttributeValues={":t": sentence, ":id": rehearsal_id},
                )
            except self._table.meta.client.exceptions.ConditionalCheckFailedException:
                continue

    def latest(self, service: str) -> RehearsalResult | None:
        item = self._table.get_item(
            Key={"pk": REHEARSAL_PK_PREFIX + service, "sk": LATEST_SK}, ConsistentRead=True
        ).get("Item")
        return _result(item) if item else None

    def history(self, service: str, limit: int = 10) -> list[RehearsalResult]:
        answer = self._table.query(
            KeyConditionExpression=Key("pk").eq(REHEARSAL_PK_PREFIX + service)
            & Key("sk").begins_with(RUN_SK_PREFIX),
            ScanIndexForward=False,
            Limit=max(1, limit),
        )
        return [_result(item) for item in answer.get("Items", [])]


def _result(item: dict[str, Any]) -> RehearsalResult:
    return RehearsalResult.model_validate(
        {k: v for k, v in from_dynamo(item).items() if k not in ("pk", "sk")}
    )


class Ec2InstanceTerminator(InstanceTerminator):
    def __init__(self, *, session: Any = None) -> None:
        self._session = session or boto3.session.Session()

    def terminate_tagged(self, incident_id: str, region: str) -> list[str]:
        if not ID_PATTERN.match(incident_id):
            raise ValueError(f"{incident_id!r} is not a rehearsal id: refusing to terminate its instances")
        ec2 = self._session.client("ec2", region_name=region, config=sdk_config())
        answer = ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{INCIDENT_TAG}", "Values": [incident_id]},
                {"Name": f"tag:{ROLE_TAG}", "Values": ["cold-site"]},
                {"Name": "instance-state-name", "Values": LIVE_STATES},
            ]
        )
        ids = sorted(i["InstanceId"] for r in answer.get("Reservations", []) for i in r.get("Instances", []))
        if ids:
            ec2.terminate_instances(InstanceIds=ids)
        return ids


def s3_figures(session: Any = None) -> Any:
    """The figures reader port: (service, backup id) -> the figures recorded with it, or None."""
    made = session or boto3.session.Session()

    def figures(service: Service, backup_id: str) -> BackupFigures | None:
        cold = service.cold_site
        assert cold is not None
        target = ArchiveTarget.of(cold)
        s3 = made.client("s3", region_name=cold.region, endpoint_url=target.endpoint_url, config=sdk_config())
        return read_figures(s3, target, backup_id)

    return figures
