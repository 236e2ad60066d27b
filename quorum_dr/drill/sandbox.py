"""The drill's world on one machine: sites, databases, edge, probe regions; and the faults on it.

`DrillSandbox` starts every real part the drill needs and records each process it starts (by
PID) so that `teardown()` stops exactly those, whatever happened. It implements the fault plan's
`FaultTarget` (quorum_dr.drill.schedule): killing a site, partitioning a region from a site,
pausing replay, injecting Cloudflare API errors, bringing an old primary back.

Addresses. As root, probe regions are network namespaces on a bridge (`RegionNetwork`): the
bridge address (10.213.N.1, N from the PID) is the control address (the AWS endpoint, the edge proxy, the
regions' self-check target) and each site has its own address on the bridge (main 10.213.N.2,
dr .3, cold .4) on which its application and database listen. Without root everything listens
on 127.0.0.1 and the probe agents are plain processes (no partition is possible then).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quorum_dr.drill.scenario import FaultKind, ReplicaLagParams, ReplicationCutParams, Scenario
from quorum_dr.drill.timeline import EventLog
from quorum_dr.sandbox import netns
from quorum_dr.sandbox.postgres import PgCluster, free_port, make_primary, make_standby

SERVICE = "booking"
HOSTNAME = "booking.drill.example"
ZONE_ID = "drillzone0000000000000000000000001"
RECORD_ID = "drill-record-1"
HOME_REGION = "eu-west-2"
PROBE_REGIONS = ("eu-west-2", "us-east-1", "us-west-2")
COLD_REGION = "us-west-2"
QUORUM = 2
STATE_TABLE = "quorum-dr-state"
RESULTS_TABLE = "quorum-dr-results"
EVENT_BUS = "quorum-dr"
EVENT_QUEUE = "quorum-dr-drill-events"
ALERT_TOPIC = "quorum-dr-alerts"
BACKUP_BUCKET = "quorum-dr-drill-backups"
BACKUP_PREFIX = "postgres/"
MONITOR_SECRET = "quorum-dr/drill/db-monitor"
ADMIN_SECRET = "quorum-dr/drill/db-admin"
TOKEN_SECRET = "quorum-dr/drill/cloudflare-token"
READY_TIMEOUT_S = 20.0
BOOTSTRAP = Path(__file__).resolve().parent.parent.parent / "cold_site" / "bootstrap.sh"
STOP_TIMEOUT_S = 5.0


class SandboxError(RuntimeError):
    """A part of the sandbox could not be started; the message says which and why."""


@dataclass
class Started:
    """A process we started: stopped by its own PID, never by name."""

    name: str
    pid: int
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return _state(self.pid) != "Z"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> None:
        for signal_to_send, wait in ((sig, timeout), (signal.SIGKILL, timeout)):
            if not self.alive():
                break
            try:
                os.kill(self.pid, signal_to_send)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
        if self.popen is not None:
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL was sent
                pass


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (OSError, IndexError):
        return "?"


@dataclass
class Layout:
    """Who listens where. Ports are chosen before anything starts, so the config can name them."""

    namespaces: bool
    control: str
    sites: dict[str, str]
    regions: dict[str, str]
    app_ports: dict[str, int] = field(default_factory=dict)
    db_ports: dict[str, int] = field(default_factory=dict)
    aws_port: int = 0
    edge_port: int = 0
    emulator_port: int = 0

    @property
    def aws_endpoint(self) -> str:
        return f"http://{self.control}:{self.aws_port}"

    def origin(self, site: str) -> str:
        return f"{self.sites[site]}:{self.app_ports[site]}"


def plan_layout(network: netns.RegionNetwork | None) -> Layout:
    if network is not None:
        sites = {site: network.add_site(site) for site in ("main", "dr", "cold")}
        regions = {name: network.region(name).address for name in PROBE_REGIONS}
        layout = Layout(True, network.bridge_address, sites, regions)
    else:
        local = "127.0.0.1"
        layout = Layout(
            False, local, dict.fromkeys(("main", "dr", "cold"), local), dict.fromkeys(PROBE_REGIONS, local)
        )
    for site, host in layout.sites.items():
        layout.app_ports[site] = free_port(host)
        layout.db_ports[site] = free_port(host)
    layout.aws_port = free_port(layout.control)
    layout.edge_port = free_port(layout.control)
    layout.emulator_port = free_port("127.0.0.1")
    return layout


def _site(layout: Layout, site: str, label: str) -> dict[str, Any]:
    host, app, db = layout.sites[site], layout.app_ports[site], layout.db_ports[site]
    return {
        "label": label,
        "marker": site,
        "origin": layout.origin(site),
        "checks": [
            {
                "name": "health",
                "type": "http",
                "url": f"http://{host}:{app}/health",
                "host_header": HOSTNAME,
                "expect_status": [200],
                "expect_headers": {"X-Site": site},
                "verify_tls": False,
            },
            {
                "name": "postgres",
                "type": "postgres",
                "host": host,
                "port": db,
                "dbname": "app",
                "credentials_secret": MONITOR_SECRET,
                "sslmode": "disable",
                "vote": False,
            },
        ],
    }


def uses_cold_site(scenario: Scenario) -> bool:
    dual = any(f.kind == FaultKind.DUAL_OUTAGE for f in scenario.faults)
    return dual or (scenario.manual_start is not None and scenario.manual_start.to == "cold")


def watchdog_config(scenario: Scenario, layout: Layout, *, cold_ami: str) -> dict[str, Any]:
    """The watchdog's config for this drill, in the same schema as production's.

    Timings from the scenario: a region votes DOWN once its scheduled round and every
    confirmation round failed (`down_after_rounds` = confirmation rounds + 1), and the state
    machine may run one round more than that before it calls the outcome undecided.
    """
    timings = scenario.probe
    limited = (FaultKind.REPLICA_LAG, FaultKind.REPLICATION_CUT)
    lag = next((f.typed for f in scenario.faults if f.kind in limited), None)
    max_lag = (
        lag.max_lag_bytes if isinstance(lag, ReplicaLagParams | ReplicationCutParams) else 16 * 1024 * 1024
    )
    db = {"dbname": "app", "credentials_secret": ADMIN_SECRET}
    service: dict[str, Any] = {
        "name": SERVICE,
        "public_hostname": HOSTNAME,
        "public_health_path": "/health",
        "public_endpoint": f"http://{layout.control}:{layout.edge_port}",
        "sites": {"main": _site(layout, "main", "main (drill)"), "dr": _site(layout, "dr", "dr (drill)")},
        "edge": {
            "kind": "dns",
            "zone_id": ZONE_ID,
            "api_token_secret": TOKEN_SECRET,
            "api_base_url": f"http://127.0.0.1:{layout.emulator_port}/client/v4",
            "records": [{"name": HOSTNAME, "type": "A", "record_id": RECORD_ID, "proxied": True}],
        },
        "database": {
            "main": {"host": layout.sites["main"], "port": layout.db_ports["main"], **db},
            "dr": {"host": layout.sites["dr"], "port": layout.db_ports["dr"], **db},
            "max_lag_bytes": max_lag,
            "max_lag_seconds": 30,
            "replay_wait_seconds": 5,
        },
        "failover": {"mode": "auto", "cooldown_seconds": 3600, "daily_cap": 1},
    }
    if uses_cold_site(scenario):
        service["sites"]["cold"] = _site(layout, "cold", "cold (drill)")
        service["cold_site"] = {
            "region": COLD_REGION,
            "ami_id": cold_ami,
            "instance_type": "t3.small",
            "backup_bucket": BACKUP_BUCKET,
            "backup_prefix": BACKUP_PREFIX,
            "ready_timeout_seconds": 60,
        }
    return {
        "home_region": HOME_REGION,
        "probe_regions": list(PROBE_REGIONS),
        "quorum": QUORUM,
        "probe": {
            "interval_seconds": timings.interval_seconds,
            "timeout_seconds": timings.timeout_seconds,
            "freshness_seconds": max(10.0, 5 * timings.interval_seconds),
            "down_after_rounds": timings.confirmation_rounds + 1,
            "control_target": {
                "checks": [
                    {"name": "control", "type": "tcp", "host": layout.control, "port": layout.aws_port}
                ]
            },
        },
        "confirmation": {
            "max_rounds": timings.confirmation_rounds + 1,
            "wait_seconds": max(1, round(timings.confirmation_wait_seconds)),
        },
        "notifications": {"sns_topic_name": ALERT_TOPIC, "webhooks": []},
        "services": [service],
    }


def aws_env(layout: Layout, region: str | None = None) -> dict[str, str]:
    """Environment for a child process that talks to the drill's AWS (the moto server)."""
    env = {
        "AWS_ENDPOINT_URL": layout.aws_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region or HOME_REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "QuorumDR",
    }
    if region:
        env["AWS_REGION"] = region
    return env


def _wait_for_file(path: Path, started: Started, what: str, log: Path | None = None) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        if not started.alive():
            tail = log.read_text(errors="replace")[-600:] if log and log.exists() else ""
            raise SandboxError(f"{what} exited before it was ready: {tail}")
        time.sleep(0.05)
    raise SandboxError(f"{what} was not ready within {READY_TIMEOUT_S:g} s")


def wait_http(
    url: str, what: str, timeout: float = READY_TIMEOUT_S, headers: dict[str, str] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2) as answer:  # noqa: S310 - our own server
                if answer.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise SandboxError(f"{what} did not answer at {url} within {timeout:g} s ({last})")


class DrillSandbox:
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
        self.layout: Layout | None = None
        self.processes: list[Started] = []
        self.apps: dict[str, Started] = {}
        self.clusters: dict[str, PgCluster] = {}
        self.partitions: dict[tuple[str, str], netns.Partition] = {}
        self.old_primary_return: tuple[str, float] | None = None
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
        self.layout = plan_layout(self.network)
        return self.layout

    @property
    def config_path(self) -> Path:
        return self.workdir / "watchdog.json"

    def write_config(self, config: dict[str, Any]) -> Path:
        """The config as the functions' bundle holds it, with the cold-site bootstrap next to it."""
        self.config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        bundle = self.workdir / "cold_site"
        bundle.mkdir(exist_ok=True)
        shutil.copy(BOOTSTRAP, bundle / f"{SERVICE}.sh")
        return self.config_path

    def start_databases(self) -> None:
        layout = self._layout()
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
            from quorum_dr.sandbox.booking_app import SCHEMA

            cur.execute(SCHEMA)

    def make_cold_cluster(self) -> PgCluster:
        """A fresh, empty PostgreSQL for the cold site (the instance's own database)."""
        layout = self._layout()
        cold = make_primary(
            self.workdir / "pg",
            layout.db_ports["cold"],
            name="cold",
            listen_addresses=(layout.sites["cold"],),
        )
        self.clusters["cold"] = cold
        return cold

    def app_command(self, site: str) -> tuple[list[str], dict[str, str]]:
        layout = self._layout()
        cluster = self.clusters[site]
        creds = cluster.roles.app
        dsn = f"host={cluster.host} port={cluster.port} dbname={cluster.app_db} user={creds.username}"
        argv = [self.python, "-m", "quorum_dr.sandbox.booking_app", "--site", site]
        argv += ["--host", layout.sites[site], "--port", str(layout.app_ports[site]), "--dsn", dsn]
        return argv, {**os.environ, "PGPASSWORD": creds.password, "PGCONNECT_TIMEOUT": "2"}

    def start_app(self, site: str) -> None:
        layout = self._layout()
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

    def start_edge(self, seed: dict[str, Any]) -> None:
        layout = self._layout()
        state = self.workdir / "cloudflare-state.json"
        state.write_text(json.dumps(seed), encoding="utf-8")
        ready = self.workdir / "emulator.port"
        self._spawn(
            "cloudflare-emulator",
            [
                "-m",
                "quorum_dr.sandbox.cloudflare_emulator",
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
                "quorum_dr.sandbox.edge_proxy",
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
        return f"http://127.0.0.1:{self._layout().emulator_port}"

    def start_probe_agents(self) -> None:
        layout = self._layout()
        interval = self.scenario.probe.interval_seconds
        for region in PROBE_REGIONS:
            ready = self.workdir / f"agent-{region}.port"
            argv = [
                self.python,
                "-m",
                "quorum_dr.drill.probe_agent",
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
            _wait_for_file(ready, started, f"the probe agent of {region}", logfile)

    def agent_url(self, region: str) -> str:
        layout = self._layout()
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
        _wait_for_file(ready, started, name, logfile)
        return started

    def adopt(self, name: str, pid: int) -> None:
        """Record a process started on our behalf (the cold site's application) to stop it later."""
        self.processes.append(Started(name, pid))

    def _layout(self) -> Layout:
        if self.layout is None:
            raise SandboxError("plan() first")
        return self.layout

    # -- reading the world -------------------------------------------------------------------

    def serving_site(self) -> str | None:
        """The site the edge record points at now (from the emulator's state)."""
        layout = self._layout()
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

    # -- FaultTarget ----------------------------------------------------------------------------

    def stop_site(self, site: str, parts: str) -> None:
        if parts in ("all", "app") and site in self.apps:
            self.apps[site].stop(signal.SIGKILL)
        if parts in ("all", "database") and site in self.clusters:
            self.clusters[site].crash()

    def start_site(self, site: str, parts: str) -> None:
        if parts in ("all", "database") and site in self.clusters:
            self.clusters[site].start()
        if parts in ("all", "app"):
            old = self.apps.get(site)
            if old is None or not old.alive():
                if old is not None and old in self.processes:
                    self.processes.remove(old)
                self.start_app(site)

    def _network(self, what: str) -> netns.RegionNetwork:
        if self.network is None:
            raise SandboxError(f"{what} needs network namespaces (run the drill as root)")
        return self.network

    def partition(self, region: str, site: str) -> None:
        cut = self._network("a partition").partition(region, self._layout().sites[site])
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
        self.clusters["dr"].pause_replay()
        self._write_filler(extra_write_bytes)

    def cut_replication(self, extra_write_bytes: int, max_lag_bytes: int) -> None:
        """DR stops receiving WAL from main; then main writes `extra_write_bytes` that DR will never
        have (the limit is in the config). Client orders committed from now on exist on main only."""
        standby = self.clusters["dr"]
        standby.cut_streaming(primary=self.clusters["main"])
        time.sleep(0.5)  # the startup process restarts the WAL receiver with the dead conninfo
        standby.wait_until(
            "SELECT count(*) = 0 FROM pg_stat_wal_receiver WHERE status = 'streaming'", timeout=10
        )
        if extra_write_bytes:
            self._write_filler(extra_write_bytes)

    def _write_filler(self, extra_write_bytes: int) -> None:
        rows = max(1, extra_write_bytes // 1100)
        self.clusters["main"].sql(
            "CREATE TABLE IF NOT EXISTS drill_filler (id bigserial PRIMARY KEY, pad text)", dbname="app"
        )
        self.clusters["main"].sql(
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
            self.emulator_url + "/__admin/faults",
            data=json.dumps(fault).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=3):  # noqa: S310 - our own emulator
            pass

    def skew_clock(self, region: str, seconds: float) -> None:
        raise SandboxError(
            "clock_skew is not supported by this drill: the probe handler reads the real clock"
        )

    def arm_old_primary_return(self, site: str, after_failover_seconds: float) -> None:
        self.old_primary_return = (site, after_failover_seconds)

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
