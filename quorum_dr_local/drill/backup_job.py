"""The DR host's base-backup job during a drill (`backups.every_seconds` in the scenario).

A deployment runs `quorum-dr-base-backup.timer` on the DR host (deploy/systemd); the drill runs the
same tool (barman-cloud-backup, `DrillWorld.take_base_backup`) on a short schedule into its S3, so
that readiness's `base_backup` check sees fresh backups, and a `backup_stop` fault can stop the
job as a timer that no longer fires would. The first backup is the one the build takes; the job
waits one period before each of its own. Each backup is a `backup_taken` event, each failure a
`backup_failed`. Bounded: one backup at a time (barman's own timeout), no backup once stopped,
none at the end of the run.
"""

from __future__ import annotations

from quorum_dr.config import WalArchive
from quorum_dr_local.drill.observe import Watcher
from quorum_dr_local.drill.timeline import EventLog
from quorum_dr_local.drill.world import DrillWorld


class BackupJob(Watcher):
    name = "backup-job"

    def __init__(
        self, world: DrillWorld, archive: WalArchive, log: EventLog, *, every_seconds: float
    ) -> None:
        super().__init__(interval=every_seconds)
        self.world = world
        self.archive = archive
        self.log = log
        self.halted = False
        self.taken = 0

    def halt(self) -> None:
        """The `backup_stop` fault: no backup starts after this (one under way finishes)."""
        self.halted = True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval) and not self.halted:
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - recorded; the next period tries again
                self.log.record("backup_failed", reason=f"{type(exc).__name__}: {exc}")
                if len(self.errors) < 50:
                    self.errors.append(f"{type(exc).__name__}: {exc}")

    def poll(self) -> None:
        made = self.world.take_base_backup(self.archive)
        self.taken += 1
        self.log.record(
            "backup_taken",
            at=made.finished_at,
            method="barman-cloud",
            backup_id=made.backup_id,
            lsn=made.end_xlog,
            scheduled=True,
        )

    def stop(self) -> None:
        """No last backup at the end of the run (the base Watcher's last look would take one)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
