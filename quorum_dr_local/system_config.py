"""The local system's watchdog config, built from the models production loads (`quorum_dr.config`).

The drill (`drill/config.py`) and the end-to-end rig (`rig.py`) both run the real watchdog against
local stand-ins: a booking application per site behind the Cloudflare emulator and edge proxy,
PostgreSQL main and standby, one control target per probe region. This module is the one place
that says how such a system is configured; the callers give what differs between them (addresses,
timings, the edge, the failover policy, the cold site, hooks). Each builder returns a validated
model, so a mistake fails here, naming its field, not later in a function that loads the file.

`config_json(config)` is what goes into the file the functions read (`QUORUM_DR_CONFIG_PATH`):
every field written out, defaults included, so the file says everything the functions will see.
"""

from __future__ import annotations

from typing import Any

from quorum_dr.config import (
    CloudflareEdge,
    ColdSite,
    Confirmation,
    ControlTarget,
    Database,
    DatabaseEndpoint,
    DnsRecord,
    FailoverPolicy,
    Hooks,
    HttpCheck,
    LoadBalancerPools,
    Notifications,
    PostgresCheck,
    Probe,
    Service,
    Site,
    Sites,
    TcpCheck,
    WalArchive,
    WatchdogConfig,
)

HOME_REGION = "eu-west-2"
PROBE_REGIONS = ("eu-west-2", "us-east-1", "us-west-2")
COLD_REGION = "us-west-2"
QUORUM = 2
ALERT_TOPIC = "quorum-dr-alerts"
APP_DB = "app"  # the booking application's database, on every site
REPLAY_WAIT_SECONDS = 5
COLD_READY_TIMEOUT_SECONDS = 60


def _given(**values: Any) -> dict[str, Any]:
    """The keyword arguments that were given: None leaves the model's own default."""
    return {key: value for key, value in values.items() if value is not None}


def postgres_check(host: str, port: int, credentials_secret: str) -> PostgresCheck:
    """The informational database check of a site (it reports role and WAL positions, never votes)."""
    return PostgresCheck(
        name="postgres",
        type="postgres",
        host=host,
        port=port,
        dbname=APP_DB,
        credentials_secret=credentials_secret,
        sslmode="disable",
        vote=False,
    )


def local_site(
    name: str,
    host: str,
    app_port: int,
    *,
    label: str | None = None,
    host_header: str | None = None,
    verify_tls: bool = True,
    check_timeout_seconds: float | None = None,
    database_check: PostgresCheck | None = None,
) -> Site:
    """A site whose booking application listens on `host:app_port` and says its name in `X-Site`."""
    health = HttpCheck(
        name="health",
        type="http",
        url=f"http://{host}:{app_port}/health",
        expect_headers={"X-Site": name},
        host_header=host_header,
        verify_tls=verify_tls,
        timeout_seconds=check_timeout_seconds,
    )
    checks: list[HttpCheck | PostgresCheck] = [health]
    if database_check is not None:
        checks.append(database_check)
    return Site(label=label or name, marker=name, origin=f"{host}:{app_port}", checks=checks)


def emulator_edge(
    zone_id: str,
    api_token_secret: str,
    api_base_url: str | None,
    *,
    records: list[DnsRecord] | None = None,
    account_id: str | None = None,
    pools: LoadBalancerPools | None = None,
) -> CloudflareEdge:
    """The edge through the Cloudflare API emulator: DNS records, or load-balancer pools."""
    return CloudflareEdge(
        kind="dns" if pools is None else "load_balancer",
        zone_id=zone_id,
        api_token_secret=api_token_secret,
        api_base_url=api_base_url,
        **_given(records=records, account_id=account_id, pools=pools),
    )


def database(
    main: tuple[str, int],
    dr: tuple[str, int],
    credentials_secret: str,
    *,
    dr_credentials_secret: str | None = None,
    max_lag_bytes: int | None = None,
) -> Database:
    """Main and DR databases as (host, port), reached with the admin secret (DR with its own when
    given, so that each function reads only the secret of the database it acts on)."""

    def endpoint(address: tuple[str, int], secret: str) -> DatabaseEndpoint:
        host, port = address
        return DatabaseEndpoint(host=host, port=port, dbname=APP_DB, credentials_secret=secret)

    return Database(
        main=endpoint(main, credentials_secret),
        dr=endpoint(dr, dr_credentials_secret or credentials_secret),
        replay_wait_seconds=REPLAY_WAIT_SECONDS,
        **_given(max_lag_bytes=max_lag_bytes),
    )


def cold_site(
    ami_id: str | None,
    backup_bucket: str,
    *,
    backup_prefix: str | None = None,
    ami_ssm_parameter: str | None = None,
    elastic_ip_allocation_id: str | None = None,
    wal_archive: WalArchive | None = None,
) -> ColdSite:
    """How to launch the cold site: from an AMI id, or from the SSM parameter that names it; with
    `wal_archive` it restores base backup + archived WAL instead of the signed dump."""
    return ColdSite(
        region=COLD_REGION,
        backup_bucket=backup_bucket,
        ready_timeout_seconds=COLD_READY_TIMEOUT_SECONDS,
        wal_archive=wal_archive,
        **_given(
            ami_id=ami_id,
            backup_prefix=backup_prefix,
            ami_ssm_parameter=ami_ssm_parameter,
            elastic_ip_allocation_id=elastic_ip_allocation_id,
        ),
    )


def local_service(
    name: str,
    *,
    public_hostname: str,
    public_endpoint: str | None,
    main: Site,
    dr: Site,
    edge: CloudflareEdge,
    database: Database,
    failover: FailoverPolicy,
    cold: tuple[Site, ColdSite] | None = None,
    hooks: Hooks | None = None,
) -> Service:
    """One protected service; `cold` is the cold site's Site and how to launch it, or None."""
    return Service(
        name=name,
        public_hostname=public_hostname,
        public_endpoint=public_endpoint,
        sites=Sites(main=main, dr=dr, cold=cold[0] if cold else None),
        edge=edge,
        database=database,
        failover=failover,
        cold_site=cold[1] if cold else None,
        **_given(hooks=hooks),
    )


def watchdog_config(
    service: Service,
    *,
    control: tuple[str, int],
    interval_seconds: float,
    timeout_seconds: float,
    down_after_rounds: int,
    confirmation_rounds: int,
    confirmation_wait_seconds: int,
    freshness_seconds: float | None = None,
) -> WatchdogConfig:
    """The whole config: the local probe regions, each checking the control address (host, port)
    over TCP before its votes count, and the one service."""
    host, port = control
    probe = Probe(
        interval_seconds=interval_seconds,
        timeout_seconds=timeout_seconds,
        down_after_rounds=down_after_rounds,
        control_target=ControlTarget(checks=[TcpCheck(name="control", type="tcp", host=host, port=port)]),
        **_given(freshness_seconds=freshness_seconds),
    )
    return WatchdogConfig(
        home_region=HOME_REGION,
        probe_regions=list(PROBE_REGIONS),
        quorum=QUORUM,
        probe=probe,
        confirmation=Confirmation(max_rounds=confirmation_rounds, wait_seconds=confirmation_wait_seconds),
        notifications=Notifications(sns_topic_name=ALERT_TOPIC),
        services=[service],
    )


def config_json(config: WatchdogConfig) -> dict[str, Any]:
    """The config as the functions' bundle holds it (JSON-ready, every field written out)."""
    return config.model_dump(mode="json")
