"""The watchdog's typed configuration.

One YAML file describes the whole deployment: where the control plane lives, which regions probe,
how many of them make a quorum, and every protected service with its sites, edge and database.
Every model forbids unknown fields, so a typo is an error that names its field, never a silent
default.
"""

from __future__ import annotations

import functools
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    field_validator,
    model_validator,
)

from quorum_dr.config_file import FileRefused, read_yaml
from quorum_dr.config_types import (
    DAY,
    HOUR,
    LAMBDA_MAX_SECONDS,
    LOCK_TTL_MAX,
    RESULT_TTL_MAX,
    STEP_FUNCTIONS_WAIT_MAX,
    Bytes,
    Count,
    DnsTtl,
    Flag,
    Number,
    Seconds,
    StrictModel,
    TaskSeconds,
    UrlPath,
    WaitSeconds,
)

AWS_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

Name = Annotated[str, Field(pattern=NAME.pattern, description="lower-case letters, digits and dashes")]


class Strict(StrictModel):
    """Unknown fields are errors, strings printable; the number types are in config_types."""


class SiteRole(StrEnum):
    MAIN = "main"
    DR = "dr"
    COLD = "cold"


class FailoverMode(StrEnum):
    AUTO = "auto"
    VETO = "veto"
    APPROVE = "approve"
    MANUAL = "manual"
    # Every check and decision of an automatic failover runs for real; where auto would act, the
    # decision is recorded and told ("would have failed over to dr at T because ...") and nothing
    # is changed: a team watches it decide next to its manual process before it turns on auto.
    SHADOW = "shadow"


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


class _CheckBase(Strict):
    name: Name
    timeout_seconds: TaskSeconds | None = Field(
        default=None, description="overrides probe.timeout_seconds for this check"
    )
    vote: Flag = Field(
        default=True,
        description="a failing voting check makes the site DOWN for that round; "
        "informational checks (vote: false) are recorded but never vote",
    )


class HttpCheck(_CheckBase):
    type: Literal["http"] = "http"
    url: HttpUrl
    method: Literal["GET", "HEAD"] = "GET"
    expect_status: list[Annotated[Count, Field(ge=100, le=599)]] = Field(default_factory=lambda: [200])
    body_contains: str | None = None
    body_regex: str | None = None
    expect_headers: dict[str, str] = Field(
        default_factory=dict, description="header name -> exact value, e.g. the site marker"
    )
    host_header: str | None = Field(
        default=None,
        description="Host header and TLS SNI to send, to check an origin directly behind Cloudflare",
    )
    verify_tls: Flag = True
    ca_bundle: str | None = Field(
        default=None, description="path to a CA bundle to trust instead of the system's"
    )

    @field_validator("body_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            compile_body_regex(value)
        return value


@functools.lru_cache(maxsize=256)
def compile_body_regex(pattern: str) -> Any:
    """`body_regex` compiled by RE2: linear time in the body, whatever the pattern. RE2 has no
    backreferences or lookaround; a pattern it cannot compile is a ValueError (a config error)."""
    import re2  # google-re2

    options = re2.Options()
    options.log_errors = False  # the error is raised, not printed to stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        said = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(
            f"RE2 (linear-time, no backreferences or lookaround) cannot compile it: {said}"
        ) from None


class TcpCheck(_CheckBase):
    type: Literal["tcp"] = "tcp"
    host: str = Field(min_length=1)
    port: Count = Field(ge=1, le=65535)


class PostgresCheck(_CheckBase):
    """Connects to a database and reports its role and WAL positions.

    Credentials come from the secret named by `credentials_secret` (JSON with `username` and
    `password`), never from the config file itself.
    """

    type: Literal["postgres"] = "postgres"
    host: str = Field(min_length=1)
    port: Count = Field(default=5432, ge=1, le=65535)
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


class SiteAgent(Strict):
    """The site agent on this site's database host (`drctl agent`): signed operations on its
    local PostgreSQL (freeze, stop, follow, rewind, promote, ...)."""

    url: HttpUrl = Field(description="the agent's base URL, e.g. https://10.0.1.5:8443")
    signing_secret: str = Field(
        min_length=1, description="Secrets Manager name of the HMAC key the agent verifies requests with"
    )


class Site(Strict):
    label: str = Field(min_length=1, description="human name, e.g. 'London'")
    marker: str = Field(
        min_length=1,
        description="what the site's /health (or the marker header) says, used to verify a switch",
    )
    origin: str = Field(min_length=1, description="the origin address the edge points at for this site")
    checks: list[Check] = Field(min_length=1)
    agent: SiteAgent | None = Field(
        default=None, description="the site agent of this site's database host, when it runs one"
    )

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
    ttl: DnsTtl = Field(
        default=1, description="1 means automatic (as Cloudflare uses for proxied records), else 60 to 86400"
    )
    proxied: Flag = True


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
    edit_proof_interval_seconds: int | None = Field(
        default=86_400,
        ge=300,
        le=30 * 86_400,
        description="the readiness function proves the token may edit the records (pools) this often, "
        "by rewriting only a marker in each one's comment (description), never what the edge serves; "
        "null: never (the cloudflare_token check says edit permission is not tested)",
    )
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
    port: Count = Field(default=5432, ge=1, le=65535)
    dbname: str = Field(default="postgres", min_length=1)
    credentials_secret: str = Field(min_length=1)


# A PostgreSQL role name as quorum-dr accepts it in config: at most 63 bytes (NAMEDATALEN - 1),
# printable, and not one of the names PostgreSQL reserves for itself.
_RESERVED_ROLES = {"public", "none", "current_role", "current_user", "session_user"}


# An unquoted SQL identifier as the sync check accepts it (the catalog's spelling: compared as
# written, never folded); at most 63 bytes (NAMEDATALEN - 1).
SQL_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
DEFAULT_SYNC_MAX_TABLE_BYTES = 64 * 1024 * 1024


def _identifier(value: str, what: str) -> str:
    if not SQL_IDENTIFIER.match(value):
        raise ValueError(
            f"{value[:80]!r} is not {what}: a letter or '_' then letters, digits, '_' or '$', at most "
            "63 characters, as the catalog spells it"
        )
    return value


class SyncCheck(Strict):
    """The database sync check before a planned switch (`drctl sync-check`,
    `quorum_dr/adapters/postgres_sync.py`): which tables are compared, row counts and an ordered hash
    of each, on both sites at the active site's final WAL position."""

    # `schema` would shadow BaseModel.schema: the field is app_schema, written `schema` in the file
    # and in every dump (a dumped config loads again).
    model_config = ConfigDict(serialize_by_alias=True)

    tables: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="schema-qualified table names (schema.table, as the catalog spells them); default "
        "every ordinary (logged) table of `schema`",
    )
    app_schema: str = Field(
        default="public",
        alias="schema",
        description="the application schema whose tables are compared when `tables` is not given",
    )
    max_table_bytes: Bytes = Field(
        default=DEFAULT_SYNC_MAX_TABLE_BYTES,
        description="a table larger than this (pg_table_size) is counted but not hashed, and the "
        "evidence says so; 0 counts every table and hashes none",
    )
    timeout_seconds: TaskSeconds = Field(
        default=30,
        description="bound of each part of the check: the wait for the target's replay, and each "
        "site's digest (every statement runs under a statement_timeout of what is left)",
    )

    @field_validator("tables")
    @classmethod
    def _table_names(cls, tables: list[str] | None) -> list[str] | None:
        for table in tables or []:
            schema, dot, name = table.partition(".")
            if not dot:
                raise ValueError(f"{table[:80]!r} is not schema-qualified: write it as schema.table")
            _identifier(schema, "a schema name")
            _identifier(name, "a table name")
        _unique(tables or [], "table")
        return tables

    @field_validator("app_schema")
    @classmethod
    def _schema_name(cls, value: str) -> str:
        return _identifier(value, "a schema name")


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
    max_lag_bytes: Bytes = Field(default=16 * 1024 * 1024, description="no automatic promotion above this")
    max_lag_seconds: Number = Field(default=30, ge=0, le=DAY)
    replay_wait_seconds: Number = Field(
        default=30, ge=0, le=LAMBDA_MAX_SECONDS, description="bounded wait for replay to catch up"
    )
    veto_heard_within_seconds: Number | None = Field(
        default=None,
        gt=0,
        le=HOUR,
        description="database veto: the DR standby hears from main if its last message from it (data or "
        "keepalive) is this recent; default half the standby's wal_receiver_timeout plus 5 s",
    )
    sync_check: SyncCheck = Field(
        default_factory=SyncCheck, description="what the database sync check before a planned switch compares"
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
    timeout_seconds: TaskSeconds = 10
    required: Flag = Field(default=False, description="a failing required hook stops the failover")


class Hooks(Strict):
    fence_main: Hook | None = None
    before_promote: Hook | None = None
    after_promote: Hook | None = None


class FailoverPolicy(Strict):
    mode: FailoverMode = FailoverMode.AUTO
    veto_seconds: WaitSeconds = Field(default=120, description="mode veto: how long an operator may veto")
    approval_timeout_seconds: WaitSeconds = Field(default=1800, description="mode approve: abort after this")
    cooldown_seconds: Count = Field(
        default=3600, ge=0, le=30 * DAY, description="no second automatic failover inside this"
    )
    daily_cap: Count = Field(default=1, ge=0, le=24, description="automatic failovers allowed per UTC day")
    lock_ttl_seconds: Count | None = Field(
        default=None,
        ge=60,
        le=LOCK_TTL_MAX,
        description="how long an incident lock lasts if its execution dies without releasing it; at "
        "least the longest execution the timings allow (checked at load), which is the default",
    )


class BackupManifestPolicy(Strict):
    """How the cold site trusts a backup: the signed manifest's key and the oldest it restores."""

    key_secret: str = Field(
        default="quorum-dr/backup-manifest-key",
        min_length=1,
        max_length=512,
        pattern=r"^[A-Za-z0-9/_+=.@-]+$",
        description="Secrets Manager name (in the cold site's region) of the manifest HMAC key; "
        "the backup job signs latest.json with it, the cold site verifies it",
    )
    max_age_seconds: int = Field(
        default=86_400,
        ge=60,
        le=30 * 86_400,
        description="the cold site refuses to restore a backup older than this (the cold RPO bound)",
    )


class WalArchive(Strict):
    """Base backups and continuous WAL archiving with barman's cloud commands, in the cold site's
    backup bucket under `backup_prefix`/`server` (quorum_dr/adapters/wal_archive.py). With it the
    cold site restores the newest base backup and replays the archive to its end instead of
    restoring a daily dump: its loss is bounded by `archive_timeout_seconds`, not by a day."""

    server: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="barman's server name: the folder of this database under the prefix",
    )
    archive_timeout_seconds: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="main's archive_timeout: main closes a WAL segment at least this often, so the "
        "archive (and the cold site) is never further behind than about this",
    )
    max_backup_age_seconds: int = Field(
        default=26 * 3600,
        ge=60,
        le=30 * 86_400,
        description="readiness FAIL when the newest base backup is older (the timer runs daily)",
    )
    max_archive_delay_seconds: int = Field(
        default=300,
        ge=2,
        le=86_400,
        description="readiness FAIL when the newest archived segment is older than this",
    )
    retention_days: int = Field(default=14, ge=1, le=3650, description="how long backups and WAL are kept")
    kms_key_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$",
        description="the KMS key the backup bucket encrypts with by default (SSE-KMS): uploads ask for "
        "aws:kms, readiness checks the newest backup and segment carry this key, and the cold "
        "instance and readiness roles may decrypt with it through S3",
    )
    endpoint_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s'\"]+$",
        description="an S3-compatible endpoint instead of AWS S3 (the drill's moto server)",
    )
    pgdata: str = Field(
        default="/var/lib/postgresql/15/main",
        pattern=r"^/[^\s'\"]*$",
        description="the cold AMI's data directory, replaced by the restore (the old one is moved aside)",
    )
    start_command: str = Field(
        default="systemctl start postgresql@15-main", min_length=1, max_length=512, pattern=r"^[^'\n]+$"
    )
    stop_command: str = Field(
        default="systemctl stop postgresql@15-main", min_length=1, max_length=512, pattern=r"^[^'\n]+$"
    )

    @model_validator(mode="after")
    def _delay_covers_timeout(self) -> WalArchive:
        if self.max_archive_delay_seconds <= self.archive_timeout_seconds:
            raise ValueError(
                f"max_archive_delay_seconds ({self.max_archive_delay_seconds}) must be above "
                f"archive_timeout_seconds ({self.archive_timeout_seconds}): a healthy archive is up to "
                "archive_timeout_seconds old"
            )
        return self


SCHEDULE_EXPRESSION = re.compile(
    r"^(cron\([0-9A-Za-z*?/,#\- ]{9,100}\)|rate\([1-9][0-9]{0,3} (hour|hours|day|days)\))$"
)


class Rehearsal(Strict):
    """The cold site's restore rehearsal (`drctl rehearse cold-site`, and on a schedule): launch the
    cold site exactly as a failover would, restore, compare the restored row counts with the figures
    recorded with the backup, record the result, terminate. It never touches the edge."""

    schedule_enabled: bool = Field(default=True, description="run it on `schedule` (a deployment)")
    schedule: str = Field(
        default="cron(0 3 ? * MON *)",
        description="EventBridge Scheduler expression, UTC: cron(...) or rate(N hours|days)",
    )
    timeout_seconds: int = Field(
        default=1800,
        ge=60,
        le=STEP_FUNCTIONS_WAIT_MAX,
        description="how long to wait for the cold site's ready report before the rehearsal fails",
    )
    max_age_seconds: int = Field(
        default=8 * DAY,
        ge=HOUR,
        le=90 * DAY,
        description="readiness FAILs when the last rehearsal is older than this",
    )
    row_tolerance: int = Field(
        default=0,
        ge=0,
        le=1_000_000_000,
        description="rows a table may have fewer than at the backup; 0: none (the restore replays to the "
        "newest point, so a table never has fewer rows unless rows were deleted since)",
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if not SCHEDULE_EXPRESSION.match(value):
            raise ValueError(
                f"{value!r} is not a schedule expression: give cron(min hour day month weekday year) or "
                "rate(N hours|days)"
            )
        return value


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
    create_backup_bucket: bool = Field(
        default=False,
        description="the CDK app creates backup_bucket in this region: SSE-KMS with wal_archive.kms_key_arn "
        "(else SSE-S3), versioned, private, TLS only, old versions expire after the retention",
    )
    ready_timeout_seconds: Count = Field(default=900, ge=30, le=STEP_FUNCTIONS_WAIT_MAX)
    backup_manifest: BackupManifestPolicy = Field(default_factory=BackupManifestPolicy)
    wal_archive: WalArchive | None = Field(
        default=None,
        description="restore base backup + archived WAL (point in time) instead of the signed pg_dump",
    )
    rehearsal: Rehearsal = Field(default_factory=Rehearsal)

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


class FileSync(Strict):
    """The replicated file tree's lag, read from a marker: main writes its time into the tree every
    minute (`deploy/systemd/quorum-dr-file-sync-marker.timer`), the DR site serves the replicated copy."""

    url: HttpUrl = Field(
        description="where the DR site serves the marker, e.g. https://dr.example.com/.sync-marker"
    )
    max_lag_seconds: Seconds = Field(
        default=300, description="readiness FAILs when the marker DR serves is older than this"
    )
    timeout_seconds: TaskSeconds = 5
    verify_tls: bool = True


class Service(Strict):
    name: Name
    public_hostname: str = Field(min_length=1, description="what clients use; verified after a switch")
    public_health_path: UrlPath = "/health"
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
    file_sync: FileSync | None = Field(
        default=None, description="the file-replication marker readiness reads (none: not checked)"
    )

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
    timeout_seconds: TaskSeconds = 5
    max_concurrency: Count = Field(default=64, ge=1, le=4096)
    freshness_seconds: Seconds = Field(
        default=90, description="a result older than this, by receive time, is stale and not a vote"
    )
    down_after_rounds: Count = Field(
        default=2, ge=1, le=100, description="consecutive failing rounds before a region votes DOWN"
    )
    result_ttl_seconds: Count = Field(default=86400, ge=60, le=RESULT_TTL_MAX)
    retrigger_rounds: Count = Field(
        default=10,
        ge=1,
        le=10_000,
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
    max_rounds: Count = Field(default=4, ge=1, le=50, description="on-demand rounds before 'no decision'")
    wait_seconds: Count = Field(default=10, ge=0, le=HOUR, description="wait between rounds")


VERIFY_WINDOW_MAX_SECONDS = 300


class Verify(Strict):
    """How long the switch's verification through the public hostname may keep trying: an edge
    change takes a while to reach every point of presence (and a DNS answer its TTL)."""

    window_seconds: float = Field(
        default=30,
        gt=0,
        le=VERIFY_WINDOW_MAX_SECONDS,
        allow_inf_nan=False,
        description="retry the verification (with backoff) for this long before escalating",
    )


class Webhook(Strict):
    url: HttpUrl
    signing_secret: str = Field(min_length=1)
    timeout_seconds: TaskSeconds = 10


class Notifications(Strict):
    sns_topic_name: Name = "quorum-dr-alerts"
    webhooks: list[Webhook] = Field(default_factory=list)


class WatchdogConfig(Strict):
    home_region: str
    probe_regions: list[str] = Field(min_length=1)
    quorum: Count = Field(ge=1)
    probe: Probe
    confirmation: Confirmation = Field(default_factory=Confirmation)
    verify: Verify = Field(default_factory=Verify)
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

    def lock_ttl_seconds(self, service: Service) -> int:
        """The service's lock TTL: the configured one, else the longest execution's duration."""
        from quorum_dr.failover.longest_path import longest_execution

        return service.failover.lock_ttl_seconds or longest_execution(self, service).seconds

    def control_target(self, region: str) -> ControlTarget:
        return self.probe.region_control_targets.get(region, self.probe.control_target)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


class ConfigError(Exception):
    """The config could not be loaded; `problems` holds one `dotted.path: reason` per error
    (`(file): reason` when the file itself could not be read)."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def lines(self, limit: int = 50) -> list[str]:
        """One `source: path: reason` line per problem (`source: reason` for the file itself), at
        most `limit` of them."""
        lines = [f"{self.source}: {p.removeprefix('(file): ')}" for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"{self.source}: ... and {len(self.problems) - limit} more problems")
        return lines


MAX_MESSAGE_CHARS = 300


def describe_errors(error: ValidationError, prefix: str = "") -> list[str]:
    """One `dotted.field.path: reason` line per validation error, in the file's own terms."""
    lines = []
    for item in error.errors():
        # a key is the file's text: one that is blank or holds a control character is shown quoted
        path = prefix + ".".join(_path_part(part) for part in item["loc"] if not _is_union_tag(part))
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        message = " ".join(message.split())
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 3] + "..."
        lines.append(f"{path[:MAX_MESSAGE_CHARS] or '(top level)'}: {message}")
    return lines


def _path_part(part: Any) -> str:
    text = str(part)
    printable = text.strip() and all(c.isprintable() for c in text)
    return text if printable else repr(text)[:40]


def _is_union_tag(part: Any) -> bool:
    # Discriminated unions add the tag ("http", "tcp", "postgres") to the location.
    return part in ("http", "tcp", "postgres")


def parse_config(data: Any, source: str = "<config>") -> WatchdogConfig:
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping of fields"])
    try:
        config = WatchdogConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, describe_errors(exc)) from None
    problems = lock_ttl_problems(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def lock_ttl_problems(config: WatchdogConfig) -> list[str]:
    """A lock that expires while its execution still runs lets a second execution act (invariant
    5): an explicit `lock_ttl_seconds` must outlast the longest execution the timings allow
    (`quorum_dr.failover.longest_path` says how that is counted, and why not renewal)."""
    from quorum_dr.failover.longest_path import longest_execution

    problems = []
    for index, service in enumerate(config.services):
        ttl = service.failover.lock_ttl_seconds
        if ttl is None:
            continue
        longest = longest_execution(config, service)
        if ttl < longest.seconds:
            problems.append(
                f"services.{index}.failover.lock_ttl_seconds: {ttl} s is shorter than the longest "
                f"execution these timings allow, {longest.sentence()}; give at least "
                f"{longest.seconds} or leave it out to use that"
            )
    return problems


def load_config(path: str | Path) -> WatchdogConfig:
    """The validated config in the file, or ConfigError. The file is read with the bounds of
    `quorum_dr.config_file` (a regular UTF-8 file of at most 1 MiB, no duplicate keys, ...)."""
    try:
        data = read_yaml(path)
    except FileRefused as exc:
        raise ConfigError(str(path), [f"(file): {exc}"]) from None
    return parse_config(data, str(path))
