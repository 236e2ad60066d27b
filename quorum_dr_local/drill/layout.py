"""Where the drill's parts live: the fixed names of the drill's world and who listens where.

Addresses. As root, probe regions are network namespaces on a bridge (`RegionNetwork`): the
bridge address (10.213.N.1, N from the PID) is the control address (the AWS endpoint, the edge proxy, the
regions' self-check target) and each site has its own address on the bridge (main 10.213.N.2,
dr .3, cold .4) on which its application and database listen. Without root everything listens
on 127.0.0.1 and the probe agents are plain processes (no partition is possible then).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from quorum_dr_local.standins import netns
from quorum_dr_local.standins.postgres import free_port
from quorum_dr_local.system_config import HOME_REGION, PROBE_REGIONS

SERVICE = "booking"
HOSTNAME = "booking.drill.example"
ZONE_ID = "drillzone0000000000000000000000001"
RECORD_ID = "drill-record-1"
STATE_TABLE = "quorum-dr-state"
RESULTS_TABLE = "quorum-dr-results"
EVENT_BUS = "quorum-dr"
EVENT_QUEUE = "quorum-dr-drill-events"
BACKUP_BUCKET = "quorum-dr-drill-backups"
BACKUP_PREFIX = "postgres/"
MONITOR_SECRET = "quorum-dr/drill/db-monitor"
ADMIN_SECRET = "quorum-dr/drill/db-admin"
TOKEN_SECRET = "quorum-dr/drill/cloudflare-token"
AGENT_SECRET = "quorum-dr/drill/site-agent"  # the HMAC key of both site agents
AGENT_SITES = ("main", "dr")  # the database hosts that run a site agent
MARKER_FILE = ".sync-marker"  # in main's replicated tree, as deploy/systemd's marker timer writes it
BOOTSTRAP = Path(__file__).resolve().parent.parent.parent / "cold_site" / "bootstrap.sh"


@dataclass
class Layout:
    """Who listens where. Ports are chosen before anything starts, so the config can name them."""

    namespaces: bool
    control: str
    sites: dict[str, str]
    regions: dict[str, str]
    app_ports: dict[str, int] = field(default_factory=dict)
    db_ports: dict[str, int] = field(default_factory=dict)
    agent_ports: dict[str, int] = field(default_factory=dict)
    aws_port: int = 0
    edge_port: int = 0
    emulator_port: int = 0
    marker_port: int = 0  # DR serves its copy of main's replicated tree (the file-sync marker)

    @property
    def marker_url(self) -> str:
        return f"http://{self.sites['dr']}:{self.marker_port}/{MARKER_FILE}"

    @property
    def aws_endpoint(self) -> str:
        return f"http://{self.control}:{self.aws_port}"

    def agent_url(self, site: str) -> str:
        return f"http://{self.sites[site]}:{self.agent_ports[site]}"

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
    for site in AGENT_SITES:
        layout.agent_ports[site] = free_port(layout.sites[site])
    layout.aws_port = free_port(layout.control)
    layout.edge_port = free_port(layout.control)
    layout.emulator_port = free_port("127.0.0.1")
    layout.marker_port = free_port(layout.sites["dr"])
    return layout


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
