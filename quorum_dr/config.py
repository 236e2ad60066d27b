"""The watchdog's typed configuration.

One YAML file describes the whole deployment: where the control plane lives, which regions probe,
how many of them make a quorum, and every protected service with its sites, edge and database.
Every model forbids unknown fields, so a typo is an error that names its field, never a silent
default.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    field_validator,
    model_validator,
)

AWS_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

Name = Annotated[str, Field(pattern=NAME.pattern, description="lower-case letters, digits and dashes")]
Seconds = Annotated[float, Field(gt=0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteRole(StrEnum):
    MAIN = "main"
    DR = "dr"
    COLD = "cold"


class FailoverMode(StrEnum):
    AUTO = "auto"
    VETO = "veto"
    APPROVE = "approve"
    MANUAL = "manual"


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


class _CheckBase(Strict):
    name: Name
    timeout_seconds: Seconds | None = Field(
        default=None, description="overrides probe.timeout_seconds for this check"
    )
    vote: bool = Field(
        default=True,
        description="a failing voting check makes the site DOWN for that round; "
        "informational checks (vote: false) are recorded but never vote",
    )


class HttpCheck(_CheckBase):
    type: Literal["http"] = "http"
    url: HttpUrl
    method: Literal["GET", "HEAD"] = "GET"
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(default_factory=lambda: [200])
    body_contains: str | None = None
    body_regex: str | None = None
    expect_headers: dict[str, str] = Field(
        default_factory=dict, description="header name -> exact value, e.g. the site marker"
    )
    host_header: str | None = Field(
        default=None,
        description="Host header and TLS SNI to send, to check an origin directly behind Cloudflare",
    )
    verify_tls: bool = True
    ca_bundle: str | None = Field(
        default=None, description="path to a CA bundle to trust instead of the system's"
    )

    @field_validator("body_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class TcpCheck(_CheckBase):
    type: Literal["tcp"] = "tcp"
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)


class PostgresCheck(_CheckBase):
    """Connects to a database and reports its role and WAL positions.

    Credentials come from the secret named by `credentials_secret` (JSON with `username` and
    `password`), never from the config file itself.
    """

    type: Literal["postgres"] = "postgres"
    host: str = Field(min_length=1)
    port: int = Field(default=5432, ge=1, le=65535)
    dbname: str = Field(default="postgres", min_length=1)
    credentials_secret: str = Field(min_length=1)
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"


Check = Annotated[HttpCheck | TcpCheck | PostgresCheck, Field(discriminator="type")]


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {what} name {name!r}")
        seen.add(name)


# ---------------------------------------------------------------------------------------------
# Sites, edge, database
# ---------------------------------------------------------------------------------------------


class Site(Strict):
    label: str = Field(min_length=1, description="human name, e.g. 'London'")
    marker: str = Field(
        min_length=1,
        description="what the site's /health (or the marker header) says, used to verify a switch",
    )
    origin: str = Field(min_length=1, description="the origin address the edge points at for this site")
    checks: list[Check] = Field(min_length=1)

    @field_validator("checks")
    @classmethod
    def _unique_checks(cls, checks: list[Check]) -> list[Check]:
        _unique([c.name for c in checks], "check")
        return checks


class Sites(Strict):
    main: Site
    dr: Site
    cold: Site | None = None


class DnsRecord(Strict):
    name: str = Field(min_length=1, description="the public hostname, e.g. app.example.com")
    type: Literal["A", "AAAA", "CNAME"] = "A"
    record_id: str | None = Field(default=None, description="looked up by name and type when absent")
    ttl: int = Field(default=1, description="1 means automatic, as Cloudflare uses for proxied records")
    proxied: bool = True


class LoadBalancerPools(Strict):
    main: str = Field(min_length=1, description="pool id")
    dr: str = Field(min_length=1)
    cold: str | None = None


class CloudflareEdge(Strict):
    kind: Literal["dns", "load_balancer"] = "dns"
    zone_id: str = Field(min_length=1)
    account_id: str | None = Field(default=None, description="required for load-balancer pools")
    api_token_secret: str = Field(min_length=1, description="Secrets Manager name of the API token")
    records: list[DnsRecord] = Field(default_factory=list)
    pools: LoadBalancerPools | None = None
    api_base_url: HttpUrl | None = Field(
        default=None, description="override of the API address (the local emulator in tests and drills)"
    )

    @model_validator(mode="after")
    def _kind_has_targets(self) -> CloudflareEdge:
        if self.kind == "dns" and not self.records:
            raise ValueError("kind 'dns' needs at least one entry in records")
        if self.kind == "load_balancer":
            if self.pools is None:
                raise ValueError("kind 'load_balancer' needs pools")
            if not self.account_id:
                raise ValueError("kind 'load_balancer' needs account_id")
        _unique([f"{r.type} {r.name}" for r in self.records], "record")
        return self


class DatabaseEndpoint(Strict):
    host: str = Field(min_length=1)
    port: int = Field(default=5432, ge=1, le=65535)
    dbname: str = Field(default="postgres", min_length=1)
    credentials_secret: str = Field(min_length=1)


# A PostgreSQL role name as quorum-dr accepts it in config: at most 63 bytes (NAMEDATALEN - 1),
# printable, and not one of the names PostgreSQL reserves for itself.
_RESERVED_ROLES = {"public", "none", "current_role", "current_user", "session_user"}


class Database(Strict):
    main: DatabaseEndpoint
    dr: DatabaseEndpoint
    app_roles: list[str] = Field(
        default_factory=lambda: ["app"],
        min_length=1,
        description="the application's login roles on main: the fence takes their LOGIN away and ends "
        "their sessions (a session cannot undo that); the promotion gives them LOGIN on the promoted DR "
        "database (main's fence replicates to it). Never the role of the db-admin secret",
    )
    max_lag_bytes: int = Field(
        default=16 * 1024 * 1024, ge=0, description="no automatic promotion above this"
    )
    max_lag_seconds: float = Field(default=30, ge=0)
    replay_wait_seconds: float = Field(default=30, ge=0, description="bounded wait for replay to catch up")
    veto_heard_within_seconds: float | None = Field(
        default=None,
        gt=0,
        description="database veto: the DR standby hears from main if its last message from it (data or "
        "keepalive) is this recent; default half the standby's wal_receiver_timeout plus 5 s",
    )

    @field_validator("app_roles")
    @classmethod
    def _role_names(cls, roles: list[str]) -> list[str]:
        for role in roles:
            if not role or len(role.encode()) > 63 or not role.isprintable():
                raise ValueError(f"{role!r} is not a PostgreSQL role name (1 to 63 printable bytes)")
            if role.lower() in _RESERVED_ROLES or role.startswith("pg_"):
                raise ValueError(f"{role!r} is reserved by PostgreSQL, not an application role")
        _unique(roles, "app role")
        return roles


class Hook(Strict):
    url: HttpUrl
    signing_secret: str = Field(min_length=1, description="Secrets Manager name of the HMAC key")
    timeout_seconds: Seconds = 10
    required: bool = Field(default=False, description="a failing required hook stops the failover")


class Hooks(Strict):
    fence_main: Hook | None = None
    before_promote: Hook | None = None
    after_promote: Hook | None = None


class FailoverPolicy(Strict):
    mode: FailoverMode = FailoverMode.AUTO
    veto_seconds: int = Field(default=120, ge=1, description="mode veto: how long an operator may veto")
    approval_timeout_seconds: int = Field(default=1800, ge=1, description="mode approve: abort after this")
    cooldown_seconds: int = Field(default=3600, ge=0, description="no second automatic failover inside this")
    daily_cap: int = Field(default=1, ge=0, description="automatic failovers allowed per UTC day")
    lock_ttl_seconds: int = Field(default=3600, ge=60)


class ColdSite(Strict):
    region: str
    ami_id: str | None = None
    ami_ssm_parameter: str | None = None
    launch_template_name: str | None = None
    instance_type: str = "t3.small"
    subnet_id: str | None = None
    vpc_id: str | None = Field(
        default=None, description="VPC of subnet_id (the security group's); the default VPC when absent"
    )
    elastic_ip_allocation_id: str | None = None
    backup_bucket: str = Field(min_length=3)
    backup_prefix: str = "backups/"
    ready_timeout_seconds: int = Field(default=900, ge=30)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not AWS_REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name")
        return value

    @model_validator(mode="after")
    def _one_image_source(self) -> ColdSite:
        sources = [s for s in (self.ami_id, self.ami_ssm_parameter, self.launch_template_name) if s]
        if not sources:
            raise ValueError("give one of ami_id, ami_ssm_parameter or launch_template_name")
        if self.ami_id and self.ami_ssm_parameter:
            raise ValueError("give ami_id or ami_ssm_parameter, not both")
        return self


class Service(Strict):
    name: Name
    public_hostname: str = Field(min_length=1, description="what clients use; verified after a switch")
    public_health_path: str = "/health"
    public_endpoint: HttpUrl | None = Field(
        default=None,
        description="where to connect to reach public_hostname when verifying a switch, sent with "
        "Host / SNI = public_hostname (e.g. a local edge proxy); default https://{public_hostname}{path}",
    )
    sites: Sites
    edge: CloudflareEdge
    database: Database | None = None
    failover: FailoverPolicy = Field(default_factory=FailoverPolicy)
    hooks: Hooks = Field(default_factory=Hooks)
    cold_site: ColdSite | None = None

    @model_validator(mode="after")
    def _cold_consistent(self) -> Service:
        if (self.sites.cold is None) != (self.cold_site is None):
            raise ValueError("sites.cold and cold_site go together: give both or neither")
        if (
            self.edge.kind == "load_balancer"
            and self.sites.cold
            and self.edge.pools
            and not self.edge.pools.cold
        ):
            raise ValueError("a cold site behind a load balancer needs edge.pools.cold")
        return self


# ---------------------------------------------------------------------------------------------
# Probing, confirmation, notification
# ---------------------------------------------------------------------------------------------


class ControlTarget(Strict):
    """What a region must reach before its votes count (the self-check)."""

    checks: list[Check] = Field(min_length=1)


class Probe(Strict):
    interval_seconds: Seconds = 30
    timeout_seconds: Seconds = 5
    max_concurrency: int = Field(default=64, ge=1, le=4096)
    freshness_seconds: Seconds = Field(
        default=90, description="a result older than this, by receive time, is stale and not a vote"
    )
    down_after_rounds: int = Field(
        default=2, ge=1, description="consecutive failing rounds before a region votes DOWN"
    )
    result_ttl_seconds: int = Field(default=86400, ge=60)
    retrigger_rounds: int = Field(
        default=10,
        ge=1,
        description="a region publishes ProbeFailed when a site turns DOWN, then again every this many "
        "consecutive failing rounds",
    )
    control_target: ControlTarget
    region_control_targets: dict[str, ControlTarget] = Field(
        default_factory=dict, description="per-region override of control_target"
    )

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> Probe:
        if self.timeout_seconds >= self.interval_seconds:
            raise ValueError(
                f"timeout_seconds ({self.timeout_seconds:g}) must be below "
                f"interval_seconds ({self.interval_seconds:g})"
            )
        return self


class Confirmation(Strict):
    max_rounds: int = Field(default=4, ge=1, le=50, description="on-demand rounds before 'no decision'")
    wait_seconds: int = Field(default=10, ge=0, description="wait between rounds")


class Webhook(Strict):
    url: HttpUrl
    signing_secret: str = Field(min_length=1)
    timeout_seconds: Seconds = 10


class Notifications(Strict):
    sns_topic_name: Name = "quorum-dr-alerts"
    webhooks: list[Webhook] = Field(default_factory=list)


class WatchdogConfig(Strict):
    home_region: str
    probe_regions: list[str] = Field(min_length=1)
    quorum: int = Field(ge=1)
    probe: Probe
    confirmation: Confirmation = Field(default_factory=Confirmation)
    notifications: Notifications = Field(default_factory=Notifications)
    services: list[Service] = Field(min_length=1)

    @field_validator("home_region")
    @classmethod
    def _home_region(cls, value: str) -> str:
        if not AWS_REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name")
        return value

    @field_validator("probe_regions")
    @classmethod
    def _probe_regions(cls, regions: list[str]) -> list[str]:
        for region in regions:
            if not AWS_REGION.match(region):
                raise ValueError(f"{region!r} is not an AWS region name")
        _unique(regions, "probe region")
        if len(regions) < 3:
            raise ValueError(f"at least 3 probe regions are needed for a quorum, got {len(regions)}")
        return regions

    @field_validator("services")
    @classmethod
    def _unique_services(cls, services: list[Service]) -> list[Service]:
        _unique([s.name for s in services], "service")
        return services

    @model_validator(mode="after")
    def _quorum_is_majority(self) -> WatchdogConfig:
        regions = len(self.probe_regions)
        if self.quorum * 2 <= regions:
            raise ValueError(
                f"quorum must be more than half of the {regions} probe regions "
                f"(at least {regions // 2 + 1}), got {self.quorum}"
            )
        if self.quorum > regions:
            raise ValueError(f"quorum {self.quorum} is more than the {regions} probe regions")
        unknown = set(self.probe.region_control_targets) - set(self.probe_regions)
        if unknown:
            raise ValueError(f"probe.region_control_targets names unconfigured regions: {sorted(unknown)}")
        return self

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(f"no service named {name!r}; configured: {[s.name for s in self.services]}")

    def control_target(self, region: str) -> ControlTarget:
        return self.probe.region_control_targets.get(region, self.probe.control_target)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


class ConfigError(Exception):
    """The config could not be loaded; `problems` holds one `dotted.path: reason` per error."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def describe_errors(error: ValidationError, prefix: str = "") -> list[str]:
    """One `dotted.field.path: reason` line per validation error, in the file's own terms."""
    lines = []
    for item in error.errors():
        path = prefix + ".".join(str(part) for part in item["loc"] if not _is_union_tag(part))
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        lines.append(f"{path or '(top level)'}: {message}")
    return lines


def _is_union_tag(part: Any) -> bool:
    # Discriminated unions add the tag ("http", "tcp", "postgres") to the location.
    return part in ("http", "tcp", "postgres")


def parse_config(data: Any, source: str = "<config>") -> WatchdogConfig:
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping of fields"])
    try:
        return WatchdogConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, describe_errors(exc)) from None


def load_config(path: str | Path) -> WatchdogConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"(file): cannot read: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"(file): not valid YAML: {exc}"]) from None
    return parse_config(data, str(path))
