"""The faults a scenario plays on the drill's world (the fault plan's `FaultTarget`).

`WorldFaults` kills and restarts sites, partitions a region from a site or cuts its link, pauses
or cuts replication, injects Cloudflare API errors and arms the old primary's return, all on the
real parts `DrillWorld` started.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from typing import Any

from quorum_dr_local.drill.processes import SandboxError
from quorum_dr_local.drill.world import DrillWorld
from quorum_dr_local.standins import netns


class WorldFaults:
    """The fault plan's `FaultTarget` (quorum_dr_local.drill.schedule) on one drill's world."""

    def __init__(self, world: DrillWorld) -> None:
        self.world = world
        self.partitions: dict[tuple[str, str], netns.Partition] = {}
        self.old_primary_return: tuple[str, float] | None = None
        self.traffic: Any = None  # the drill's TrafficClient, set once the traffic starts
        self.backups: Any = None  # the drill's BackupJob, when the scenario schedules backups

    def stop_site(self, site: str, parts: str) -> None:
        if parts in ("all", "app") and site in self.world.apps:
            self.world.apps[site].stop(signal.SIGKILL)
        if parts in ("all", "database") and site in self.world.clusters:
            self.world.clusters[site].crash()

    def start_site(self, site: str, parts: str) -> None:
        if parts in ("all", "database") and site in self.world.clusters:
            self.world.clusters[site].start()
        if parts in ("all", "app"):
            old = self.world.apps.get(site)
            if old is None or not old.alive():
                if old is not None and old in self.world.processes:
                    self.world.processes.remove(old)
                self.world.start_app(site)

    def _network(self, what: str) -> netns.RegionNetwork:
        if self.world.network is None:
            raise SandboxError(f"{what} needs network namespaces (run the drill as root)")
        return self.world.network

    def partition(self, region: str, site: str) -> None:
        cut = self._network("a partition").partition(region, self.world.layout.sites[site])
        self.partitions[(region, site)] = cut

    def heal(self, region: str, site: str) -> None:
        cut = self.partitions.pop((region, site), None)
        if cut is not None:
            self._network("healing a partition").heal(cut)

    def link_down(self, region: str) -> None:
        self._network("link_down").link_down(region)

    def link_up(self, region: str) -> None:
        self._network("link_up").link_up(region)

    def lag_replica(self, extra_write_bytes: int, max_lag_bytes: int) -> None:
        """Pause replay on DR, then write `extra_write_bytes` of WAL on main (the limit is in the config)."""
        self.world.clusters["dr"].pause_replay()
        self._write_filler(extra_write_bytes)

    def cut_replication(self, extra_write_bytes: int, max_lag_bytes: int) -> None:
        """DR stops receiving WAL from main; then main writes `extra_write_bytes` that DR will never
        have (the limit is in the config). Client orders committed from now on exist on main only."""
        standby = self.world.clusters["dr"]
        standby.cut_streaming(primary=self.world.clusters["main"])
        time.sleep(0.5)  # the startup process restarts the WAL receiver with the dead conninfo
        standby.wait_until(
            "SELECT count(*) = 0 FROM pg_stat_wal_receiver WHERE status = 'streaming'", timeout=10
        )
        if extra_write_bytes:
            self._write_filler(extra_write_bytes)

    def _write_filler(self, extra_write_bytes: int) -> None:
        rows = max(1, extra_write_bytes // 1100)
        self.world.clusters["main"].sql(
            "CREATE TABLE IF NOT EXISTS drill_filler (id bigserial PRIMARY KEY, pad text)", dbname="app"
        )
        self.world.clusters["main"].sql(
            "INSERT INTO drill_filler (pad) SELECT repeat('x', 1000) FROM generate_series(1, %s)",
            (rows,),
            dbname="app",
        )

    def inject_api_errors(self, status: int, count: int, retry_after_seconds: float | None) -> None:
        fault: dict[str, Any] = {"count": count}
        if status == 429:
            fault.update(kind="rate_limit", retry_after=retry_after_seconds or 1)
        elif status == 403:
            fault.update(kind="forbidden")
        else:
            fault.update(kind="server_error", status=status)
        request = urllib.request.Request(
            self.world.emulator_url + "/__admin/faults",
            data=json.dumps(fault).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=3):  # noqa: S310 - our own emulator
            pass

    def skew_clock(self, region: str, seconds: float) -> None:
        """The region's probe agent runs its handler on a clock `seconds` off the real one."""
        request = urllib.request.Request(
            self.world.agent_url(region) + "/clock",
            data=json.dumps({"skew_seconds": seconds}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - our own probe agent
            pass

    def pause_traffic(self) -> None:
        if self.traffic is None:
            raise SandboxError("pause_traffic: the clients have not started")
        self.traffic.pause()

    def resume_traffic(self) -> None:
        if self.traffic is not None:
            self.traffic.resume()

    def stop_backups(self) -> None:
        """The DR host's base-backup job stops (WAL archiving goes on)."""
        if self.backups is None:
            raise SandboxError("backup_stop: the scenario schedules no backup job (backups.every_seconds)")
        self.backups.halt()

    def arm_old_primary_return(self, site: str, after_failover_seconds: float) -> None:
        self.old_primary_return = (site, after_failover_seconds)
