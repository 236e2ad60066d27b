"""The cold site's instance, played by the drill: the backup before, the bootstrap after launch.

Before the fault, `take_drill_backup` backs up main through the real backup path
(`adapters.postgres_backup.take_backup`, pg_dump to the drill's S3) and records `backup_taken`
with the order ids the dump really holds (read back from the dump with pg_restore).

When the state machine's launch step runs RunInstances, `ColdInstance` notices the new instance
tagged as the cold site, creates a fresh PostgreSQL cluster (the instance's own database) and
runs the instance's user data (the filled-in `cold_site/bootstrap.sh`) for real, with the
environment the drill's machine needs: the restore goes through
`python -m quorum_dr.adapters.postgres_backup restore` into the fresh cluster, the application
starts as the cold site, and the script reports ready with the task token it was launched with.
It then records `restored` with the order ids the cold database holds.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import boto3

from quorum_dr.adapters.postgres_backup import pg_tool, read_manifest_key, take_backup
from quorum_dr.config import BackupManifestPolicy, WalArchive
from quorum_dr.domain.cold_report import RestoreLine
from quorum_dr_local.drill.layout import BACKUP_BUCKET, BACKUP_PREFIX, BOOTSTRAP, SERVICE
from quorum_dr_local.drill.observe import Watcher
from quorum_dr_local.drill.timeline import EventLog
from quorum_dr_local.drill.world import DrillWorld
from quorum_dr_local.standins.postgres import PgCluster
from quorum_dr_local.system_config import COLD_REGION, HOME_REGION

BOOTSTRAP_TIMEOUT_S = 120


def take_drill_backup(main: PgCluster, log: EventLog) -> dict[str, Any]:
    s3 = boto3.client("s3", region_name=HOME_REGION)
    key = read_manifest_key(BackupManifestPolicy().key_secret, COLD_REGION)  # as a backup job would
    receipt = take_backup(
        main.dsn(dbname=main.app_db), s3, BACKUP_BUCKET, BACKUP_PREFIX, source="main", manifest_key=key
    )
    with tempfile.TemporaryDirectory(prefix="qdr-backup-check-") as tmp:
        dump = Path(tmp) / "db.dump"
        s3.download_file(BACKUP_BUCKET, receipt.key, str(dump))
        listing = subprocess.run(
            [pg_tool("pg_restore"), "--data-only", "--table=orders", "-f", "-", str(dump)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    ids = _copy_rows(listing)
    log.record("backup_taken", at=receipt.taken_at, order_ids=ids, key=receipt.key, lsn=receipt.lsn)
    return receipt.model_dump()


def _copy_rows(sql_text: str) -> list[str]:
    """The first column of the rows of the `COPY ... FROM stdin` block of a plain-text dump."""
    ids, inside = [], False
    for line in sql_text.splitlines():
        if line.startswith("COPY ") and "orders" in line:
            inside = True
        elif inside and line == "\\.":
            inside = False
        elif inside and line:
            ids.append(line.split("\t", 1)[0])
    return ids


class ColdInstance(Watcher):
    """Watches the cold region for the launched instance and boots it once."""

    name = "cold-instance"

    def __init__(
        self,
        world: DrillWorld,
        log: EventLog,
        aws_env: dict[str, str],
        *,
        wal_archive: WalArchive | None = None,
    ) -> None:
        super().__init__(interval=0.3)
        self.wal_archive = wal_archive
        self.world = world
        self.log = log
        self.aws_env = aws_env
        self.ec2 = boto3.client("ec2", region_name=COLD_REGION)
        self.booted: set[str] = set()
        self.thread: threading.Thread | None = None
        self.outcome: str | None = None
        self.booted_ok = False

    def poll(self) -> None:
        answer = self.ec2.describe_instances(
            Filters=[{"Name": "tag:quorum-dr:role", "Values": ["cold-site"]}]
        )
        for reservation in answer.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                instance_id = instance["InstanceId"]
                if instance_id not in self.booted:
                    self.booted.add(instance_id)
                    self.thread = threading.Thread(target=self.boot, args=(instance_id,), daemon=True)
                    self.thread.start()

    def boot(self, instance_id: str) -> None:
        try:
            self.outcome = self._boot(instance_id)
        except Exception as exc:  # noqa: BLE001 - the state machine's health fallback decides then
            self.outcome = f"the cold instance failed to boot: {type(exc).__name__}: {exc}"

    def _boot(self, instance_id: str) -> str:
        world, layout = self.world, self.world.layout
        attribute = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        encoded = (attribute.get("UserData") or {}).get("Value") or ""
        user_data = base64.b64decode(encoded).decode("utf-8") if encoded else ""
        script = world.workdir / f"user-data-{instance_id}.sh"
        script.write_text(
            user_data if user_data.startswith("#!") else BOOTSTRAP.read_text(), encoding="utf-8"
        )
        cold = world.make_cold_cluster() if self.wal_archive is None else world.restored_cluster()
        app = cold.roles.app
        pidfile = world.workdir / "app-cold.pid"
        argv, app_env = world.app_command("cold")
        start = (
            " ".join(_quote(a) for a in argv) + f" >> {world.workdir}/app-cold.log 2>&1 & echo $! > {pidfile}"
        )
        aws = world.workdir / "aws"
        aws.write_text(f'#!/bin/sh\nexec {_quote(world.python)} -m quorum_dr_local.drill.task_report "$@"\n')
        aws.chmod(0o755)
        env = {
            **os.environ,
            **self.aws_env,
            "PGPASSWORD": app.password,
            "QDR_SERVICE": SERVICE,
            "QDR_BACKUP_BUCKET": BACKUP_BUCKET,
            "QDR_BACKUP_PREFIX": BACKUP_PREFIX,
            "QDR_DSN": f"host={cold.host} port={cold.port} dbname={cold.app_db} user={app.username}",
            "QDR_HEALTH_URL": f"http://{layout.sites['cold']}:{layout.app_ports['cold']}/health",
            "QDR_READY_TIMEOUT": "30",
            "QDR_MANIFEST_KEY_SECRET": BackupManifestPolicy().key_secret,
            "QDR_SECRETS_REGION": COLD_REGION,
            "QDR_MAX_BACKUP_AGE": str(BackupManifestPolicy().max_age_seconds),
            "QDR_START_COMMAND": start,
            "QDR_PYTHON": world.python,
            "QDR_AWS": str(aws),
            "QDR_LOG": str(world.workdir / "cold-bootstrap.log"),
            "QDR_READY_FILE": str(world.workdir / "cold-ready"),
            "QDR_REPORT_ATTEMPTS": "3",
        }
        env.update({k: v for k, v in app_env.items() if k == "PGCONNECT_TIMEOUT"})
        if self.wal_archive is not None:  # base backup + archived WAL into an empty data directory
            pg_ctl = [
                cold.bin("pg_ctl"),
                "-D",
                str(cold.data_dir),
                "-l",
                str(cold.log_path),
                "-w",
                "-t",
                "120",
            ]
            runuser = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
            env.update(
                QDR_RESTORE_METHOD="barman-cloud",
                QDR_WAL_SERVER=self.wal_archive.server,
                QDR_S3_ENDPOINT=self.wal_archive.endpoint_url or "",
                QDR_PGDATA=str(cold.data_dir),
                QDR_PG_START_COMMAND=" ".join(_quote(a) for a in [*runuser, *pg_ctl, "start"]),
                QDR_PG_STOP_COMMAND="true",  # the drill's instance has no PostgreSQL of its own running
                QDR_PG_SETTINGS=f"port={cold.port} listen_addresses={cold.host}",
            )
        done = subprocess.run(
            ["bash", str(script)], env=env, capture_output=True, text=True, timeout=BOOTSTRAP_TIMEOUT_S
        )
        if pidfile.exists() and pidfile.read_text().strip().isdigit():
            world.adopt("app-cold", int(pidfile.read_text().strip()))
        if done.returncode != 0:
            return f"bootstrap exited {done.returncode}: {done.stdout[-400:]} {done.stderr[-400:]}"
        ids = world.order_ids("cold") or []
        self.log.record(
            "restored", site="cold", order_ids=ids, instance=instance_id, **_restore_line(done.stdout)
        )
        self.booted_ok = True
        return f"cold instance {instance_id} bootstrapped: {len(ids)} order(s) restored"


def _restore_line(stdout: str) -> dict[str, Any]:
    """What the bootstrap logged of its restore (`restore: {RestoreLine}`): the method, the backup,
    the WAL position replayed to and the newest data's age."""
    for line in stdout.splitlines():
        _, sep, payload = line.partition(" quorum-dr bootstrap: restore: ")
        if sep:
            try:
                restore = RestoreLine.model_validate_json(payload)
            except ValueError:
                return {}
            return {
                "method": restore.method,
                "backup_id": restore.backup_id,
                "restored_lsn": restore.restored_lsn,
                "wal_segment": restore.wal_segment,
                "data_age_seconds": round(restore.backup_age_seconds, 2),
                "restore_reason": restore.reason,
            }
    return {}


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
