"""The watchdog's config for one drill run, in the same schema as production's."""

from __future__ import annotations

from typing import Any

from quorum_dr_local.drill.layout import (
    ADMIN_SECRET,
    ALERT_TOPIC,
    BACKUP_BUCKET,
    BACKUP_PREFIX,
    COLD_REGION,
    HOME_REGION,
    HOSTNAME,
    MONITOR_SECRET,
    PROBE_REGIONS,
    QUORUM,
    RECORD_ID,
    SERVICE,
    TOKEN_SECRET,
    ZONE_ID,
    Layout,
)
from quorum_dr_local.drill.scenario import FaultKind, ReplicaLagParams, ReplicationCutParams, Scenario


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
        "failover": {"mode": "auto", "cooldown_seconds": 3600, "daily_cap": 1, "lock_ttl_seconds": 600},
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
