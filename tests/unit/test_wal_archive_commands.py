"""The barman-cloud command lines: uploads ask for SSE-KMS when the config names a key; reads never
carry an upload option (barman-cloud-wal-restore would refuse it)."""

from __future__ import annotations

import shlex

import pytest

from quorum_dr.adapters.wal_archive import ArchiveTarget, archive_command, restore_command
from quorum_dr.config import ColdSite, WalArchive

pytestmark = pytest.mark.unit

KEY = "arn:aws:kms:eu-west-2:123456789012:key/0b6a1f52-6f0e-4c2b-9b53-2f0d8f6f4a10"


def cold(**archive: object) -> ColdSite:
    return ColdSite(
        region="eu-west-2",
        ami_id="ami-0123456789abcdef0",
        backup_bucket="booking-backups",
        backup_prefix="postgres/",
        wal_archive=WalArchive.model_validate({"server": "booking", **archive}),
    )


def test_the_archive_command_asks_for_sse_kms_only_with_a_key() -> None:
    with_key = ArchiveTarget.of(cold(kms_key_arn=KEY))
    argv = shlex.split(archive_command(with_key))
    assert argv[argv.index("--encryption") + 1] == "aws:kms"
    assert argv[-3:] == ["s3://booking-backups/postgres", "booking", "%p"]
    assert "--encryption" not in shlex.split(archive_command(ArchiveTarget.of(cold())))
    assert "--encryption" not in shlex.split(restore_command(with_key))


@pytest.mark.parametrize("bad", ["alias/backups", "arn:aws:kms:eu-west-2:1234:key/x", "arn:aws:s3:::bucket"])
def test_a_kms_key_that_is_not_a_key_arn_is_refused_naming_the_field(bad: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        WalArchive(server="booking", kms_key_arn=bad)
    assert "kms_key_arn" in str(caught.value)
