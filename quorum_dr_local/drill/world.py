"""The drill's world on one machine: sites, databases, edge, probe regions.

`DrillWorld` starts every real part the drill needs and records each process it starts (by PID)
so that `teardown()` stops exactly those, whatever happened. Where each part listens is its
`Layout` (quorum_dr_local.drill.layout); the faults a scenario plays on it are `WorldFaults`
(quorum_dr_local.drill.faults).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from quorum_dr.adapters.wal_archive import ArchiveTarget, BaseBackup, archive_command, take_base_backup
from quorum_dr.config import WalArchive, WatchdogConfig
from quorum_dr_local.drill.layout import (
    AGENT_SITES,
    BACKUP_BUCKET,
    BACKUP_PREFIX,
    BOOTSTRAP,
    EVENT_BUS,
    HOSTNAME,
    RESULTS_TABLE,
    SERVICE,
    STATE_TABLE,
    ZONE_ID,
    Layout,
    aws_env,
    plan_layout,
)
from quorum_dr_local.drill.processes import READY_TIMEOUT_S, SandboxError, Started, wait_for_file, wait_http
from quorum_dr_local.drill.scenario import Scenario
from quorum_dr_local.drill.timeline import EventLog
from quorum_dr_local.standins import netns
from quorum_dr_local.standins.postgres import PgCluster, make_primary, make_standby
from quorum_dr_local.system_config import HOME_REGION, PROBE_REGIONS, config_json


class DrillWorld:
    """Every real part of one drill run. Build step by step; `teardown()` always."""

    def __init__(
        self, scenario: Scenario, log: EventLog, *, namespaces: bool, workdir: Path | None = None
    ) -> None:
        self.scenario = scenario
        self.log = log
        self.namespaces = namespaces
        self.workdir = Path(workdir) if workdir else Path("/tmp/qdr-drill-unplanned")
        self._own_workdir = workdir is None
        self.python = sys.executable
        self.network: netns.RegionNetwork | None = None
        self._planned: Layout | None = None
        self.processes: list[Started] = []
        self.apps: dict[str, Started] = {}
        self.clusters: dict[str, PgCluster] = {}
        self.token = "drill-" + os.urandom(12).hex()

    # -- building ----------------------------------------------------------------------------

    def plan(self) -> Layout:
        if self._own_workdir:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"qdr-drill-{os.getpid()}-", dir="/tmp"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)  # the postgres user must reach the clusters' folder inside it
        if self.namespaces:
            netns.cleanup_stale()
            self.network = netns.RegionNetwork(PROBE_REGIONS).create()
        self._planned = plan_layout(self.network)
        return self._planned

    @property
    def layout(self) -> Layout:
        """Who listens where; known once `plan()` has run."""
        if self._planned is None:
            raise SandboxError("plan() first")
        return self._planned

    @property
    def config_path(self) -> Path:
        return self.workdir / "watchdog.json"

    def write_config(self, config: WatchdogConfig) -> Path:
        """The config as the functions' bundle holds it, with the cold-site bootstrap next to it."""
        self.config_path.write_text(json.dumps(config_json(config), indent=2), encoding="utf-8")
        bundle = self.workdir / "cold_site"
        bundle.mkdir(exist_ok=True)
        shutil.copy(BOOTSTRAP, bundle / f"{SERVICE}.sh")
        return self.config_path

    def start_databases(self) -> None:
        layout = self.layout
        sync = self.scenario.replication == "sync"
        base = self.workdir / "pg"
        main = make_primary(
            base,
            layout.db_ports["main"],
            sync_standby=sync,
            name="main",
            listen_addresses=(layout.sites["main"],),
        )
        self.clusters["main"] = main
        self.clusters["dr"] = make_standby(
            main, base, layout.db_ports["dr"], name="dr", listen_addresses=(layout.sites["dr"],)
        )
        with main.connect("app") as conn, conn.cursor() as cur:
            from quorum_dr_local.standins.booking_app import SCHEMA

            cur.execute(SCHEMA)

    def start_wal_archive(self, archive: WalArchive) -> BaseBackup:
        """As a deployment runs it: DR archives every WAL segment it receives (`archive_mode =
        always`, barman-cloud-wal-archive to the drill's S3), main closes a segment at least every
        `archive_timeout_seconds`, and the DR host takes a base backup (barman-cloud-backup) whose
        start, DR's next restartpoint, comes after archiving began."""
        main, dr = self.clusters["main"], self.clusters["dr"]
        target = ArchiveTarget(BACKUP_BUCKET, BACKUP_PREFIX, archive.server, archive.endpoint_url)
        dr.append_config({"archive_mode": "always", "archive_command": archive_command(target)})
        dr.restart()
        dr.wait_streaming()
        main.alter_system("archive_timeout", archive.archive_timeout_seconds)
        main.sql("CHECKPOINT")
        dr.wait_replayed(main.value("SELECT pg_current_wal_lsn()::text"), timeout=30)
        dr.sql("CHECKPOINT")
        return self.take_base_backup(archive)

    def take_base_backup(self, archive: WalArchive) -> BaseBackup:
        """One base backup of DR into the drill's S3 (barman-cloud-backup, run on the DR host), as
        the backup timer of a deployment takes it."""
        import boto3

        dr = self.clusters["dr"]
        target = ArchiveTarget(BACKUP_BUCKET, BACKUP_PREFIX, archive.server, archive.endpoint_url)
        su = dr.roles.superuser
        return take_base_backup(
            boto3.client("s3", region_name=HOME_REGION),
            target,
            host=dr.host,
            port=dr.port,
            user=su.username,
            env={"PGPASSWORD": su.password},
            timeout=120,
            figures_db=self.clusters["main"].app_db,  # the row counts the restore rehearsal compares with
        )

    def restored_cluster(self) -> PgCluster:
        """The cold site's PostgreSQL as a point-in-time restore makes it: a copy of DR's data
        directory (so main's roles), not yet there; the cold bootstrap restores and starts it."""
        layout, main = self.layout, self.clusters["main"]
        cold = PgCluster(
            name="cold",
            base_dir=self.workdir / "pg",
            port=layout.db_ports["cold"],
            roles=main.roles,
            app_db=main.app_db,
            listen_addresses=(layout.sites["cold"],),
        )
        self.clusters["cold"] = cold
        return cold

    def make_cold_cluster(self) -> PgCluster:
        """A fresh, empty PostgreSQL for the cold site (the instance's own database)."""
        layout = self.layout
        cold = make_primary(
            self.workdir / "pg",
            layout.db_ports["cold"],
            name="cold",
            listen_addresses=(layout.sites["cold"],),
        )
        self.clusters["cold"] = cold
        return cold

    def app_command(self, site: str) -> tuple[list[str], dict[str, str]]:
        layout = self.layout
        cluster = self.clusters[site]
        creds = cluster.roles.app
        dsn = f"host={cluster.host} port={cluster.port} dbname={cluster.app_db} user={creds.username}"
        argv = [self.python, "-m", "quorum_dr_local.standins.booking_app", "--site", site]
        argv += ["--host", layout.sites[site], "--port", str(layout.app_ports[site]), "--dsn", dsn]
        return argv, {**os.environ, "PGPASSWORD": creds.password, "PGCONNECT_TIMEOUT": "2"}

    def start_app(self, site: str) -> None:
        layout = self.layout
        argv, env = self.app_command(site)
        log = open(self.workdir / f"app-{site}.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            popen = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        started = Started(f"app-{site}", popen.pid, popen)
        self.processes.append(started)
        self.apps[site] = started
        wait_http(
            f"http://{layout.sites[site]}:{layout.app_ports[site]}/orders/count", f"the {site} application"
        )

    def start_site_agents(self, key: str) -> None:
        """A real `drctl agent` process on each database host (main, dr), as a deployment runs
        one: the operator's rejoin and switchover reach the databases only through them."""
        from quorum_dr.adapters.site_agent import SiteAgentClient
        from quorum_dr_local.standins.site_agents import sandbox_agent_settings

        layout = self.layout
        for site in AGENT_SITES:
            folder = self.workdir / f"agent-{site}"
            settings = sandbox_agent_settings(
                self.clusters[site],
                folder / "secrets",
                folder / "state",
                key=key,
                listen_host=layout.sites[site],
                port=layout.agent_ports[site],
                rewind_as_superuser=True,
            )
            config = folder / "agent.json"
            config.write_text(json.dumps(settings), encoding="utf-8")
            log = open(self.workdir / f"site-agent-{site}.log", "ab")  # noqa: SIM115 - handed to the child
            try:
                popen = subprocess.Popen(
                    [self.python, "-m", "quorum_dr.cli", "agent", "--config", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            finally:
                log.close()
            started = Started(f"site-agent-{site}", popen.pid, popen)
            self.processes.append(started)
            client = SiteAgentClient(layout.agent_url(site), key, timeout=2, attempts=1)
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:  # bounded: until the agent answers a signed status request
                try:
                    client.status()
                    break
                except Exception as exc:  # noqa: BLE001 - not up yet; said if it never comes
                    if not started.alive() or time.monotonic() > deadline:
                        raise SandboxError(f"the site agent of {site} did not answer: {exc}") from None
                    time.sleep(0.1)

    def start_edge(self, seed: dict[str, Any]) -> None:
        layout = self.layout
        state = self.workdir / "cloudflare-state.json"
        state.write_text(json.dumps(seed), encoding="utf-8")
        ready = self.workdir / "emulator.port"
        self._spawn(
            "cloudflare-emulator",
            [
                "-m",
                "quorum_dr_local.standins.cloudflare_emulator",
                "--port",
                str(layout.emulator_port),
                "--state",
                str(state),
                "--ready-file",
                str(ready),
            ],
            ready,
        )
        ready = self.workdir / "edge.port"
        self._spawn(
            "edge-proxy",
            [
                "-m",
                "quorum_dr_local.standins.edge_proxy",
                "--host",
                layout.control,
                "--port",
                str(layout.edge_port),
                "--emulator",
                self.emulator_url,
                "--refresh-seconds",
                "0",  # follow the record at once: the drill measures the watchdog, not propagation
                "--route",
                f"dns:{HOSTNAME}:{ZONE_ID}",
                "--ready-file",
                str(ready),
            ],
            ready,
        )

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.layout.emulator_port}"

    def start_probe_agents(self) -> None:
        layout = self.layout
        interval = self.scenario.probe.interval_seconds
        for region in PROBE_REGIONS:
            ready = self.workdir / f"agent-{region}.port"
            argv = [
                self.python,
                "-m",
                "quorum_dr_local.drill.probe_agent",
                "--region",
                region,
                "--host",
                layout.regions[region],
                "--port",
                "0",
                "--interval",
                f"{interval:g}",
                "--ready-file",
                str(ready),
            ]
            env = {
                **os.environ,
                **aws_env(layout, region),
                "QUORUM_DR_CONFIG_PATH": str(self.config_path),
                "RESULTS_TABLE_NAME": RESULTS_TABLE,
                "STATE_TABLE_NAME": STATE_TABLE,
                "EVENT_BUS_NAME": EVENT_BUS,
            }
            logfile = self.workdir / f"agent-{region}.log"
            log = open(logfile, "ab")  # noqa: SIM115 - handed to the child
            try:
                if self.network is not None:
                    inside = self.network.start(region, argv, env=env, stdout=log, stderr=subprocess.STDOUT)
                    started = Started(f"probe-agent-{region}", inside.pid, inside.popen)
                else:
                    popen = subprocess.Popen(
                        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                    started = Started(f"probe-agent-{region}", popen.pid, popen)
            finally:
                log.close()
            self.processes.append(started)
            wait_for_file(ready, started, f"the probe agent of {region}", logfile)

    def agent_url(self, region: str) -> str:
        layout = self.layout
        port = (self.workdir / f"agent-{region}.port").read_text().strip()
        return f"http://{layout.regions[region]}:{port}"

    def _spawn(self, name: str, args: list[str], ready: Path) -> Started:
        logfile = self.workdir / f"{name}.log"
        log = open(logfile, "ab")  # noqa: SIM115 - handed to the child
        try:
            popen = subprocess.Popen(
                [self.python, *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        started = Started(name, popen.pid, popen)
        self.processes.append(started)
        wait_for_file(ready, started, name, logfile)
        return started

    def adopt(self, name: str, pid: int) -> None:
        """Record a process started on our behalf (the cold site's application) to stop it later."""
        self.processes.append(Started(name, pid))

    # -- reading the world -------------------------------------------------------------------

    def serving_site(self) -> str | None:
        """The site the edge record points at now (from the emulator's state)."""
        layout = self.layout
        try:
            with urllib.request.urlopen(self.emulator_url + "/__admin/state", timeout=3) as answer:  # noqa: S310
                state = json.loads(answer.read())
        except (OSError, ValueError):
            return None
        for record in state.get("zones", {}).get(ZONE_ID, {}).get("records", []):
            for site in layout.app_ports:
                if record.get("content") == layout.origin(site):
                    return site
        return None

    def emulator_log(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.emulator_url + "/__admin/log", timeout=3) as answer:  # noqa: S310
            return list(json.loads(answer.read()))

    def order_ids(self, site: str) -> list[str] | None:
        cluster = self.clusters.get(site)
        if cluster is None or not cluster.is_running():
            return None
        try:
            rows = cluster.sql("SELECT order_id::text FROM orders ORDER BY created_at", dbname=cluster.app_db)
        except Exception:  # noqa: BLE001 - no table yet, or the database refuses: nothing known
            return None
        return [str(r[0]) for r in rows]

    # -- teardown --------------------------------------------------------------------------------

    def teardown(self) -> list[str]:
        """Stop every process we started, remove the clusters, namespaces and the work folder."""
        problems: list[str] = []
        for started in reversed(self.processes):
            try:
                started.stop()
            except Exception as exc:  # noqa: BLE001 - keep tearing down the rest
                problems.append(f"{started.name} (pid {started.pid}): {exc}")
        self.processes.clear()
        for name, cluster in list(self.clusters.items()):
            try:
                cluster.destroy()
            except Exception as exc:  # noqa: BLE001
                problems.append(f"cluster {name}: {exc}")
        self.clusters.clear()
        if self.network is not None:
            try:
                self.network.teardown()
            except Exception as exc:  # noqa: BLE001
                problems.append(f"network: {exc}")
            self.network = None
        if self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)
        return problems
