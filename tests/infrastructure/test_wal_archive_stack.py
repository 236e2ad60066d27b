"""With cold_site.wal_archive configured: the synthesized app (cdk-nag on) gives the readiness
function read access to exactly that server's archive, lets the cold instance ask HeadBucket (which
barman does first), and renders the bootstrap for a point-in-time restore."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from quorum_dr.config import load_config
from quorum_dr_local.iam_policies import StackTemplate, allows, principal_policies

KEY = "arn:aws:kms:eu-west-2:123456789012:key/0b6a1f52-6f0e-4c2b-9b53-2f0d8f6f4a10"


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory, example_config_path: Path) -> dict[str, Any]:
    from aws_cdk import App

    from stacks.deployment import build

    data = yaml.safe_load(example_config_path.read_text(encoding="utf-8"))
    data["services"][0]["cold_site"]["create_backup_bucket"] = True
    data["services"][0]["cold_site"]["wal_archive"] = {
        "server": "booking",
        "archive_timeout_seconds": 30,
        "kms_key_arn": KEY,
    }
    tmp = tmp_path_factory.mktemp("wal-archive")
    config_path = tmp / "watchdog.yaml"
    config_path.write_text(yaml.safe_dump(data), encoding="utf-8")
    outdir = tmp / "cdk.out"
    app = App(context={"config": str(config_path), "skip_bundling": True, "nag": True}, outdir=str(outdir))
    deployment = build(app)
    app.synth()  # raises on any unacknowledged cdk-nag finding
    stacks = {
        s.stack_name: StackTemplate(
            s.stack_name, s.region, json.loads((outdir / f"{s.artifact_id}.template.json").read_text())
        )
        for s in deployment.stacks
    }
    return {"config": load_config(config_path), "policies": principal_policies(stacks), "stacks": stacks}


def test_the_readiness_role_may_list_and_read_this_archive_and_nothing_else(archived: dict[str, Any]) -> None:
    role = archived["policies"]["function:readiness"]
    cold = archived["config"].services[0].cold_site
    bucket = f"arn:aws:s3:::{cold.backup_bucket}"
    root = f"{cold.backup_prefix.strip('/')}/booking/"
    assert allows(role, "s3:GetObject", f"{bucket}/{root}base/20270115T023000/backup.info")
    assert not allows(
        role, "s3:GetObject", f"{bucket}/{root}wals/0000000100000000/000000010000000000000003.gz"
    )
    assert not allows(role, "s3:GetObject", f"{bucket}/{cold.backup_prefix}latest.json")
    assert not allows(role, "s3:PutObject", f"{bucket}/{root}base/x/backup.info")
    listing = [s for s in role if "s3:ListBucket" in s.actions and any(r == bucket for r in s.resources)]
    assert listing, "the readiness role cannot list the archive"
    assert all(json.dumps(s.conditions).count(f"{root}*") == 1 for s in listing), [
        s.conditions for s in listing
    ]


def test_the_bootstrap_is_rendered_for_the_point_in_time_restore(archived: dict[str, Any]) -> None:
    from stacks.cold_site import render_bootstrap

    config = archived["config"]
    script = render_bootstrap(config, config.services[0])
    assert "QDR_RESTORE_METHOD=${QDR_RESTORE_METHOD:-$(placeholder 'barman-cloud')}" in script
    assert "QDR_WAL_SERVER=${QDR_WAL_SERVER:-$(placeholder 'booking')}" in script
    assert "$(placeholder '/var/lib/postgresql/15/main')" in script
    for name in (
        "RESTORE_METHOD",
        "WAL_SERVER",
        "S3_ENDPOINT",
        "PGDATA",
        "PG_START_COMMAND",
        "PG_STOP_COMMAND",
    ):
        assert f"@@{name}@@" not in script


def test_the_backup_key_decrypts_for_restore_and_readiness_only_via_s3(archived: dict[str, Any]) -> None:
    policies = archived["policies"]
    other = KEY.rsplit("/", 1)[0] + "/11111111-2222-3333-4444-555555555555"
    # the rehearsal's function reads the figures recorded beside the backups, stored under the key too
    readers = ("cold_site:booking", "function:readiness", "function:rehearse_cold_site")
    for principal in readers:
        role = policies[principal]
        assert allows(role, "kms:Decrypt", KEY), principal
        assert not allows(role, "kms:Decrypt", other), principal
        assert not allows(role, "kms:GenerateDataKey", KEY), principal  # none writes backups
        grants = [s for s in role if "kms:Decrypt" in s.actions]
        assert all(s.conditions == {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}} for s in grants)
    for principal, role in policies.items():  # and no other function may use it
        if principal not in readers:
            assert not allows(role, "kms:Decrypt", KEY), principal


def test_the_backup_bucket_is_encrypted_with_the_key_and_never_expires_a_current_backup(
    archived: dict[str, Any],
) -> None:
    cold = archived["config"].services[0].cold_site
    found = [
        (t, r)
        for t in archived["stacks"].values()
        for r in t.template["Resources"].values()
        if r["Type"] == "AWS::S3::Bucket"
    ]
    assert len(found) == 1, [t.name for t, _ in found]
    template, bucket = found[0]
    assert template.region == cold.region
    props = bucket["Properties"]
    assert props["BucketName"] == cold.backup_bucket
    assert bucket["DeletionPolicy"] == "Retain"
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY}
    assert rule["BucketKeyEnabled"] is True
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert rules["expire-old-versions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": cold.wal_archive.retention_days
    }
    # barman's retention owns current objects: no rule may expire them (it would delete the only
    # backup once the timer had stopped for that long)
    assert not any("ExpirationInDays" in r or "ExpirationDate" in r for r in rules.values()), rules
    policies = [r for r in template.template["Resources"].values() if r["Type"] == "AWS::S3::BucketPolicy"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    )
