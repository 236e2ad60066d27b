"""The base_backup, wal_archive and backup_encryption readiness checks: each turns FAIL for its own
reason."""

from __future__ import annotations

import pytest

from quorum_dr.domain.readiness import (
    BackupFacts,
    Status,
    StoredObject,
    backup_encryption_check,
    base_backup_check,
    wal_archive_check,
)

NOW = 1_800_000_000.0
ARCHIVE = "s3://backups/postgres/booking"
DAY = 86_400.0


def facts(**kw: object) -> BackupFacts:
    base: dict[str, object] = {
        "archive": ARCHIVE,
        "backup_id": "20270115T023000",
        "backup_finished_at": NOW - 3 * 3600,
        "segment": "00000001000000A20000003C",
        "segment_archived_at": NOW - 40,
    }
    return BackupFacts.model_validate(base | kw)


@pytest.mark.parametrize(
    ("kw", "status", "starts"),
    [
        ({}, Status.OK, "the newest base backup 20270115T023000 is 3 h old, within the limit 26 h"),
        (
            {"backup_finished_at": NOW - 2 * DAY},
            Status.FAIL,
            f"the newest base backup 20270115T023000 in {ARCHIVE} is 2 d",
        ),
        (
            {"backup_id": None, "backup_finished_at": None},
            Status.FAIL,
            f"no complete base backup in {ARCHIVE}",
        ),
        (
            {"backup_error": "AccessDenied"},
            Status.FAIL,
            f"cannot list the base backups in {ARCHIVE}: AccessDenied",
        ),
    ],
)
def test_base_backup(kw: dict[str, object], status: Status, starts: str) -> None:
    check = base_backup_check(facts(**kw), max_age_seconds=26 * 3600, now=NOW)
    assert (check.name, check.status) == ("base_backup", status)
    assert check.reason.startswith(starts), check.reason


@pytest.mark.parametrize(
    ("kw", "status", "starts"),
    [
        (
            {},
            Status.OK,
            "the newest archived WAL segment 00000001000000A20000003C is 40 s old, within the limit 5 min",
        ),
        (
            {"segment_archived_at": NOW - 900},
            Status.FAIL,
            "the newest archived WAL segment 00000001000000A20000003C in",
        ),
        (
            {"segment": None, "segment_archived_at": None},
            Status.FAIL,
            f"no archived WAL segment in {ARCHIVE}",
        ),
        (
            {"segment_error": "NoSuchBucket"},
            Status.FAIL,
            f"cannot list the WAL archive in {ARCHIVE}: NoSuchBucket",
        ),
    ],
)
def test_wal_archive(kw: dict[str, object], status: Status, starts: str) -> None:
    check = wal_archive_check(facts(**kw), max_delay_seconds=300, now=NOW)
    assert (check.name, check.status) == ("wal_archive", status)
    assert check.reason.startswith(starts), check.reason


def test_a_stale_archive_says_what_a_cold_restore_would_lose() -> None:
    check = wal_archive_check(facts(segment_archived_at=NOW - 900), max_delay_seconds=300, now=NOW)
    assert "15 min old, over the limit 5 min: a cold restore would lose at least that much" in check.reason
    assert check.figures["delay_seconds"] == 900.0


KEY = "arn:aws:kms:eu-west-2:123456789012:key/0b6a1f52-6f0e-4c2b-9b53-2f0d8f6f4a10"
INFO = "postgres/booking/base/20270115T023000/backup.info"


@pytest.mark.parametrize(
    ("stored", "error", "status", "starts"),
    [
        (
            [(INFO, "aws:kms", KEY)],
            None,
            Status.OK,
            f"the newest base backup is encrypted with SSE-KMS under {KEY}",
        ),
        ([(INFO, "aws:kms", KEY.rsplit("/", 1)[-1])], None, Status.OK, "the newest base backup is encrypted"),
        (
            [(INFO, None, None)],
            None,
            Status.FAIL,
            f"{INFO} is stored unencrypted, not with SSE-KMS under {KEY}",
        ),
        ([(INFO, "AES256", None)], None, Status.FAIL, f"{INFO} is stored with AES256, not with SSE-KMS"),
        (
            [(INFO, "aws:kms", KEY[:-4] + "ffff")],
            None,
            Status.FAIL,
            f"{INFO} is stored with SSE-KMS under another key ({KEY[:-4]}ffff)",
        ),
        ([], None, Status.WARN, f"no base backup in {ARCHIVE} to inspect yet"),
        ([], "AccessDenied", Status.FAIL, f"cannot read how the archive {ARCHIVE} is stored: AccessDenied"),
    ],
)
def test_backup_encryption(
    stored: list[tuple[str, str | None, str | None]], error: str | None, status: Status, starts: str
) -> None:
    objects = [StoredObject(key=k, algorithm=a, kms_key_id=i) for k, a, i in stored]
    check = backup_encryption_check(facts(stored=objects, encryption_error=error), kms_key_arn=KEY)
    assert (check.name, check.status) == ("backup_encryption", status)
    assert check.reason.startswith(starts), check.reason


def test_an_age_just_over_the_limit_does_not_read_as_the_limit() -> None:
    check = base_backup_check(facts(backup_finished_at=NOW - 60.04), max_age_seconds=60, now=NOW)
    assert check.status is Status.FAIL
    assert "is 60.04 s old, over the limit 60 s" in check.reason, check.reason
    late = wal_archive_check(facts(segment_archived_at=NOW - 300.2), max_delay_seconds=300, now=NOW)
    assert "is 5.003 min old, over the limit 5 min" in late.reason, late.reason
