"""The watchdog's config for one drill run, in the same schema as production's.

Built by the local system's one config builder (`quorum_dr_local.system_config`) from the
scenario's timings and the run's layout.
"""

from __future__ import annotations

from typing import Any

from quorum_dr.config import (
    DnsRecord,
    FailoverMode,
    FailoverPolicy,
    Site,
    SiteAgent,
    WalArchive,
    WatchdogConfig,
)
from quorum_dr.domain.redact import redact_url
from quorum_dr_local import system_config as local
from quorum_dr_local.drill.file_sync import drill_file_sync
from quorum_dr_local.drill.layout import (
    ADMIN_SECRET,
    AGENT_SECRET,
    AGENT_SITES,
    BACKUP_BUCKET,
    BACKUP_PREFIX,
    HOSTNAME,
    MONITOR_SECRET,
    RECORD_ID,
    SERVICE,
    TOKEN_SECRET,
    ZONE_ID,
    Layout,
)
from quorum_dr_local.drill.scenario import FaultKind, ReplicaLagParams, ReplicationCutParams, Scenario


def _site(layout: Layout, site: str, *, agents: bool = False) -> Site:
    host = layout.sites[site]
    built = local.local_site(
        site,
        host,
        layout.app_ports[site],
        label=f"{site} (drill)",
        host_header=HOSTNAME,
        verify_tls=False,
        database_check=local.postgres_check(host, layout.db_ports[site], MONITOR_SECRET),
    )
    if not agents or site not in AGENT_SITES:
        return built
    agent = SiteAgent(url=layout.agent_url(site), signing_secret=AGENT_SECRET)
    return built.model_copy(update={"agent": agent})


def uses_cold_site(scenario: Scenario) -> bool:
    """The scenario may launch the cold site (the drill then plays its instance)."""
    dual = any(f.kind == FaultKind.DUAL_OUTAGE for f in scenario.faults)
    rehearsed = any(command.command == "rehearse" for command in scenario.operator)
    return dual or rehearsed or any(command.to == "cold" for command in scenario.failover_commands)


def configures_cold_site(scenario: Scenario) -> bool:
    """The config names a cold site: one the scenario may launch, or whose backups it schedules
    (readiness then judges the base backups and the WAL archive)."""
    return uses_cold_site(scenario) or scenario.backups is not None


def drill_config(scenario: Scenario, layout: Layout, *, cold_ami: str) -> WatchdogConfig:
    """The watchdog's config for this drill.

    Timings from the scenario: a region votes DOWN once its scheduled round and every
    confirmation round failed (`down_after_rounds` = confirmation rounds + 1), and the state
    machine may run one round more than that before it calls the outcome undecided.
    """
    timings = scenario.probe
    limited = (FaultKind.REPLICA_LAG, FaultKind.REPLICATION_CUT)
    lag = next((f.typed for f in scenario.faults if f.kind in limited), None)
    max_lag = lag.max_lag_bytes if isinstance(lag, ReplicaLagParams | ReplicationCutParams) else None
    cold = None
    if configures_cold_site(scenario):
        archive = None
        if scenario.cold_restore == "wal_archive":
            backups = scenario.backups
            archive = WalArchive(
                server=SERVICE,
                archive_timeout_seconds=scenario.archive_timeout_seconds,
                max_archive_delay_seconds=max(60, 4 * scenario.archive_timeout_seconds),
                endpoint_url=layout.aws_endpoint,
                **({"max_backup_age_seconds": backups.max_age_seconds} if backups else {}),
            )
        cold = (
            _site(layout, "cold"),
            local.cold_site(cold_ami, BACKUP_BUCKET, backup_prefix=BACKUP_PREFIX, wal_archive=archive),
        )
    service = local.local_service(
        SERVICE,
        public_hostname=HOSTNAME,
        public_endpoint=f"http://{layout.control}:{layout.edge_port}",
        main=_site(layout, "main", agents=scenario.uses_site_agents),
        dr=_site(layout, "dr", agents=scenario.uses_site_agents),
        edge=local.emulator_edge(
            ZONE_ID,
            TOKEN_SECRET,
            f"http://127.0.0.1:{layout.emulator_port}/client/v4",
            records=[DnsRecord(name=HOSTNAME, type="A", record_id=RECORD_ID, proxied=True)],
        ),
        database=local.database(
            (layout.sites["main"], layout.db_ports["main"]),
            (layout.sites["dr"], layout.db_ports["dr"]),
            ADMIN_SECRET,
            max_lag_bytes=max_lag,
        ),
        failover=FailoverPolicy(
            mode=FailoverMode(scenario.failover_mode), cooldown_seconds=3600, daily_cap=1
        ),
        cold=cold,
    ).model_copy(update={"file_sync": drill_file_sync(layout.marker_url)})
    return local.watchdog_config(
        service,
        control=(layout.control, layout.aws_port),
        interval_seconds=timings.interval_seconds,
        timeout_seconds=timings.timeout_seconds,
        freshness_seconds=max(10.0, 5 * timings.interval_seconds),
        down_after_rounds=timings.confirmation_rounds + 1,
        confirmation_rounds=timings.confirmation_rounds + 1,
        confirmation_wait_seconds=max(1, round(timings.confirmation_wait_seconds)),
    )


def replay_config_json(config: WatchdogConfig) -> dict[str, Any]:
    """The run's config as the report folder keeps it (watchdog.json), for `drctl replay --config`:
    every URL redacted as stored results are (user-info and query values masked), since an operator
    may have put a secret in a check's URL; the probe, quorum and confirmation settings intact."""

    def redacted(value: Any) -> Any:
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return redact_url(value)
        if isinstance(value, dict):
            return {k: redacted(v) for k, v in value.items()}
        if isinstance(value, list):
            return [redacted(v) for v in value]
        return value

    return dict(redacted(config.model_dump(mode="json")))
