"""The monthly AWS cost of a deployment at its config's settings, line by line, beside the price of
what it would replace (Route 53 health checks, Cloudflare Load Balancing): pure arithmetic.

Three inputs, none read here: the typed config; a price table (`PriceTable`: every price with its
unit, its source, where the figure was read and its `as_of` date, or `amount: null` with a note
when no source gave it); and the usage figures (`UsageTable`: what `bench/cost_inputs.py` measured
on the real code, and the assumptions, each saying which it is). `quorum_dr/pricing` loads the two
tables shipped with the package; `drctl cost` prints the report.

What the stacks deploy (memory, alarms, dashboard, keys, metrics) is named below as constants;
`tests/infrastructure/test_cost_inventory.py` holds each against the synthesized templates, so the
model cannot quietly price a deployment that no longer exists.

Beside the probe's own work, each round's standby watch (`probes/service.py`) reads the state
table in the home region for every service, and the readiness function (`stacks/readiness_function.py`)
evaluates every service every `READINESS_RATE_MINUTES` minutes: both are priced line by line.

The probe's cadence is the schedule's (`stacks/probe_schedule.py`): EventBridge Scheduler fires at
most once a minute, so an interval below 60 s has `ceil(60 / interval)` rounds `interval` apart a
minute. As deployed, each round is an invocation of its own: the schedule's, and the minute's later
rounds through the region's round queue (SQS: a delayed SendMessage per round, the event source
mapping's ReceiveMessage and DeleteMessage, and its polling of the queue while it is empty), so
nothing is billed for waiting. The design before it (the minute's rounds in one invocation, Lambda
billing the wait between them) is priced beside it as a lever. `ProbeDesign` prices a design and
the alternatives beside it (`design_levers`); it changes nothing in the deployment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from quorum_dr.config import Check, HttpCheck, PostgresCheck, Service, WatchdogConfig
from quorum_dr.domain.readiness import (
    BackupFacts,
    ColdSiteFacts,
    EdgeFacts,
    FileSyncFacts,
    ReadinessFacts,
    ResultFacts,
    StateFacts,
    TokenFacts,
    assess,
)

# -- what the stacks deploy (checked against the synthesized templates) --------------------------

PROBE_MEMORY_MB = 256  # stacks/probe_stack.py
ACTION_MEMORY_MB = 256  # stacks/function.py's default, every action function
ARCHITECTURE = "arm64"  # stacks/lambda_asset.py
PROBE_ALARM_METRICS_PER_REGION = 2  # probe errors; region silent: FILL(invocations, 0), one metric each
CONTROL_ALARM_METRICS = 8  # per state machine: failed (failed + timed out + aborted: 3) and escalated (1)
READINESS_MEMORY_MB = ACTION_MEMORY_MB  # stacks/readiness_function.py (QuorumDrFunction's default)
READINESS_RATE_MINUTES = 5  # stacks/readiness_function.py RATE_MINUTES
# lambdas/readiness/handler.py: ReadinessEvaluations, once per invocation (the default dimensions)
READINESS_HANDLER_METRICS = ("ReadinessEvaluations",)
READINESS_LOOKBACK_MIN_SECONDS = 600.0  # quorum_dr/adapters/readiness.py LOOKBACK_MIN_SECONDS


def readiness_alarm_metrics(config: WatchdogConfig) -> int:
    """stacks/readiness_function.py: one FAIL alarm per service, one on the function's errors."""
    return len(config.services) + 1


def readiness_checks(config: WatchdogConfig, service: Service) -> list[str]:
    """The checks the readiness function judges for `service`, by the domain's own `assess`, given
    the facts `ReadinessGatherer.gather` would bring for this config (each one saying nothing could
    be read): the cold site's check with a cold site, the backup checks with its `wal_archive`
    (encryption with its KMS key), the file-sync check with `file_sync`."""
    cold = service.cold_site
    facts = ReadinessFacts(
        service=service.name,
        now=0.0,
        state=StateFacts(error="not read"),
        results=ResultFacts(since=0.0, error="not read"),
        edge=EdgeFacts(error="not read"),
        token=TokenFacts(secret=service.edge.api_token_secret, reads="", error="not read"),
        cold=ColdSiteFacts(region=cold.region, image_source="", template="") if cold else None,
        file_sync=FileSyncFacts(url="", error="not read") if service.file_sync else None,
        backups=BackupFacts(archive="", backup_error="not read", segment_error="not read")
        if cold and cold.wal_archive
        else None,
    )
    return [check.name for check in assess(facts, config).checks]


def readiness_metrics(config: WatchdogConfig) -> int:
    """The readiness function's custom metrics (`quorum_dr/readiness_service.py`): `ReadinessStatus`
    per service and check, and per service as check `overall`; and the handler's own."""
    return sum(len(readiness_checks(config, s)) + 1 for s in config.services) + len(READINESS_HANDLER_METRICS)


def readiness_lookback_seconds(config: WatchdogConfig) -> float:
    """How far back the readiness function reads the probe results (`adapters/readiness.py`
    `lookback_seconds`; a test holds the two together)."""
    return max(
        READINESS_LOOKBACK_MIN_SECONDS, 10 * config.probe.interval_seconds, 2 * config.probe.freshness_seconds
    )


DASHBOARDS = 1
KMS_KEYS = 1  # the alert topic's key, automatic rotation on
# lambdas/probe/handler.py `_record`: one dimension set (service, region) per probe region
PROBE_METRICS = ("ChecksRun", "ChecksFailed", "RoundAbstained", "RoundSeconds")
PROBE_LOG_RETENTION_MONTHS = 3  # stacks/function.py LOG_RETENTION
STATE_MACHINE_LOG_RETENTION_MONTHS = 12  # stacks/failover_state_machine.py
SCHEDULE_FINEST_MINUTES = 1  # EventBridge Scheduler's finest rate
# The round queue (stacks/probe_schedule.py RoundQueue), below a 60 s interval: each queued round
# is one SendMessage, and the event source mapping's one ReceiveMessage and one DeleteMessage
# (batch size 1); bodies are far below 64 KB, so each request counts once.
SQS_REQUESTS_PER_QUEUED_ROUND = 3

WRITE_UNIT_BYTES = 1024  # one write request unit writes up to 1 KB
READ_UNIT_BYTES = 4096  # one read request unit reads up to 4 KB (strongly consistent)
EVENTUALLY_CONSISTENT = 0.5  # an eventually consistent read costs half (the store's Query is one)
GIB = 1024**3
SECONDS_PER_DAY = 86_400

# -- the price table and the usage figures (the contract of quorum_dr/pricing/*.yaml) ------------

REQUIRED_PRICES = frozenset(
    {
        "lambda_duration_arm64",
        "lambda_duration_x86_64",
        "lambda_requests",
        "scheduler_invocations",
        "sqs_requests",
        "eventbridge_custom_events",
        "dynamodb_write_request_units",
        "dynamodb_read_request_units",
        "dynamodb_storage",
        "dynamodb_point_in_time_recovery",
        "data_transfer_inter_region",
        "step_functions_state_transitions",
        "cloudwatch_alarm_metrics",
        "cloudwatch_custom_metrics",
        "cloudwatch_dashboards",
        "cloudwatch_logs_ingestion",
        "cloudwatch_logs_storage",
        "xray_traces_recorded",
        "sns_publishes",
        "sns_email_deliveries",
        "secrets_manager_secrets",
        "secrets_manager_api_calls",
        "kms_keys",
        "kms_requests",
        "public_ipv4_addresses",
        "route53_health_check_non_aws",
        "route53_health_check_aws",
        "route53_optional_feature_non_aws",
        "route53_optional_feature_aws",
        "cloudflare_load_balancing_base",
        "cloudflare_load_balancing_endpoint",
        "cloudflare_load_balancing_monitor_region",
    }
)

REQUIRED_USAGE = frozenset(
    {
        "probe_round_local_seconds",
        "probe_round_cold_down_local_seconds",
        "probe_round_cold_down_timeout_seconds",
        "wan_checks_seconds",
        "wan_store_seconds",
        "wan_standby_watch_seconds",
        "state_item_bytes",
        "standby_record_bytes",
        "readiness_local_seconds",
        "readiness_wan_seconds",
        "readiness_item_bytes",
        "readiness_log_bytes_per_invocation",
        "item_bytes_http",
        "item_bytes_tcp",
        "item_bytes_postgres",
        "item_storage_overhead_bytes",
        "log_bytes_per_invocation",
        "log_bytes_per_round",
        "log_bytes_round_queue_per_invocation",
        "platform_log_bytes_per_invocation",
        "probe_secret_cache_seconds",
        "round_queue_idle_receives_per_minute",
        "ttl_deletion_lag_days",
        "false_alarm_executions_per_month",
        "dry_run_executions_per_month",
        "transitions_false_alarm",
        "transitions_failover",
        "action_invocations_false_alarm",
        "action_invocations_failover",
        "action_seconds_false_alarm",
        "action_seconds_failover",
        "probe_invocations_false_alarm",
        "probe_invocations_failover",
        "execution_log_bytes_false_alarm",
        "execution_log_bytes_failover",
        "action_steps_false_alarm",
        "action_steps_failover",
        "alarm_notifications_per_month",
        "email_subscribers",
    }
)


class Price(BaseModel):
    """One price: `amount` US dollars per `per` `unit`, or `amount: null` when no source gave it
    (then `note` says where we looked)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = Field(min_length=1)
    item: str = Field(min_length=1)
    amount: float | None = Field(ge=0, allow_inf_nan=False)
    per: float = Field(default=1, gt=0, allow_inf_nan=False)
    unit: str = Field(min_length=1)
    region: str = Field(min_length=1, description="where the figure applies, as the source says")
    source: str = Field(pattern=r"^https://", description="the official page of the price")
    evidence: str = Field(default="", description="where the figure was read, when not the source itself")
    as_of: date
    free_per_month: float = Field(default=0, ge=0, description="the always-free allowance, in `unit`s")
    note: str = ""

    @model_validator(mode="after")
    def _missing_price_says_why(self) -> Price:
        if self.amount is None and not self.note:
            raise ValueError("a price that was not found needs a note saying where it was looked for")
        return self

    @property
    def found(self) -> bool:
        return self.amount is not None

    def of(self, quantity: float, *, free: bool = False) -> float | None:
        """The monthly cost of `quantity` units (after the free allowance with `free`)."""
        if self.amount is None:
            return None
        billable = max(0.0, quantity - self.free_per_month) if free else quantity
        return billable * self.amount / self.per

    def label(self) -> str:
        if self.amount is None:
            return "price not found"
        per = {1: "", 1_000: "1,000 ", 10_000: "10,000 ", 100_000: "100,000 ", 1_000_000: "1M "}.get(
            int(self.per) if float(self.per).is_integer() else -1, f"{self.per:g} "
        )
        return f"${decimal_text(self.amount)} / {per}{self.unit}"


def decimal_text(amount: float) -> str:
    """0.2 -> "0.20", 0.0000133334 -> "0.0000133334", 3 -> "3.00": at least cents, no exponent."""
    text = f"{amount:.10f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: Literal["USD"]
    month_hours: float = Field(gt=0, le=744, description="hours in the priced month (AWS prices use 730)")
    prices: dict[str, Price]

    @model_validator(mode="after")
    def _exactly_the_priced_items(self) -> PriceTable:
        unknown = sorted(set(self.prices) - REQUIRED_PRICES)
        missing = sorted(REQUIRED_PRICES - set(self.prices))
        if unknown:
            raise ValueError(f"unknown price {unknown[0]!r}: the model prices {sorted(REQUIRED_PRICES)}")
        if missing:
            raise ValueError(f"missing price {missing[0]!r}")
        return self

    def __getitem__(self, key: str) -> Price:
        return self.prices[key]


class UsageFigure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float = Field(ge=0, allow_inf_nan=False)
    unit: str = Field(min_length=1)
    basis: Literal["measured", "estimate", "assumption", "documented"]
    source: str = Field(min_length=1, description="what measured it, or why it is assumed")
    note: str = ""


class UsageTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    measured_on: date
    figures: dict[str, UsageFigure]

    @model_validator(mode="after")
    def _exactly_the_used_figures(self) -> UsageTable:
        unknown = sorted(set(self.figures) - REQUIRED_USAGE)
        missing = sorted(REQUIRED_USAGE - set(self.figures))
        if unknown:
            raise ValueError(f"unknown usage figure {unknown[0]!r}")
        if missing:
            raise ValueError(f"missing usage figure {missing[0]!r}")
        return self

    def __getitem__(self, key: str) -> float:
        return self.figures[key].value


# -- the design being priced ---------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeDesign:
    """How the probe runs: as deployed by default."""

    # True: the design before issue 14's part 4, the rounds of a minute inside one invocation, waiting
    # between them; False (as deployed): each round its own invocation, the later ones queued (SQS)
    wait_between_rounds: bool = False
    # False (as deployed): scheduled rounds leave out a cold site that is not launched
    # (domain/cold_probe.py); True: its checks run every round, launched or not (before issue 14)
    cold_checked_while_idle: bool = False
    memory_mb: int = PROBE_MEMORY_MB
    architecture: Literal["arm64", "x86_64"] = ARCHITECTURE  # type: ignore[assignment]


AS_DEPLOYED = ProbeDesign()


@dataclass(frozen=True)
class Cadence:
    """The probe's schedule, as `stacks/probe_schedule.py` deploys it (its `ProbeCadence` is this
    class): below 60 s, one scheduled invocation a minute and the minute's `rounds` rounds
    `spacing_seconds` apart (the later ones through the round queue); from 60 s, one round every
    `rate_minutes`."""

    rate_minutes: int
    rounds: int
    spacing_seconds: float

    @classmethod
    def of(cls, interval_seconds: float) -> Cadence:
        if interval_seconds < 60:
            return cls(SCHEDULE_FINEST_MINUTES, math.ceil(60 / interval_seconds), float(interval_seconds))
        return cls(max(1, round(interval_seconds / 60)), 1, 0.0)

    @property
    def queued(self) -> bool:
        """Whether the minute has rounds after the scheduled one (the round queue exists)."""
        return self.rounds > 1

    @property
    def round_period_seconds(self) -> float:
        """The average time between two rounds of one region."""
        return self.rate_minutes * 60 / self.rounds


# -- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostLine:
    scope: str  # "probe", "home", "cold site", "comparison"
    region: str
    service: str
    item: str
    quantity: float
    unit: str
    price_key: str
    monthly: float | None  # None: the price was not found
    driver: str  # what drives the quantity, in words
    standing: bool = False  # charged whatever the traffic (a metric, an alarm, a secret, a key)

    def as_dict(self, prices: PriceTable) -> dict[str, Any]:
        price = prices[self.price_key]
        return {
            "scope": self.scope,
            "region": self.region,
            "service": self.service,
            "item": self.item,
            "quantity": self.quantity,
            "unit": self.unit,
            "price_key": self.price_key,
            "unit_price": price.label(),
            "monthly_usd": None if self.monthly is None else round(self.monthly, 6),
            "driver": self.driver,
            "source": price.source,
            "as_of": price.as_of.isoformat(),
        }


@dataclass(frozen=True)
class Comparison:
    name: str
    lines: list[CostLine]
    summary: str

    @property
    def total(self) -> float | None:
        if any(line.monthly is None for line in self.lines):
            return None
        return sum(line.monthly or 0.0 for line in self.lines)


@dataclass(frozen=True)
class Lever:
    name: str
    change: str
    design: ProbeDesign
    total: float
    total_with_free_tier: float
    probe_lambda: float  # the probe's Lambda duration line, every region


@dataclass(frozen=True)
class StandbyWatchCost:
    """What the DR-down alert's standby watch adds: its reads of the state table and their bytes
    across regions, and its share of the probe's duration (the same month priced without its time)."""

    reads: float
    duration: float
    seconds_per_round: float

    @property
    def total(self) -> float:
        return self.reads + self.duration


@dataclass
class CostReport:
    config_summary: str
    design: ProbeDesign
    lines: list[CostLine]
    total: float
    total_with_free_tier: float
    monitoring_total: float  # less what the alternatives would hold too (the cold site's Elastic IP)
    probing_total: float  # the probing alone: what the health checks it is set beside do
    comparisons: list[Comparison] = field(default_factory=list)
    levers: list[Lever] = field(default_factory=list)
    standby_watch: StandbyWatchCost | None = None
    figures_used: dict[str, UsageFigure] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# -- the probe's month ---------------------------------------------------------------------------


def _item_bytes(check: Check, usage: UsageTable) -> float:
    if isinstance(check, PostgresCheck):
        return usage["item_bytes_postgres"]
    if isinstance(check, HttpCheck):
        return usage["item_bytes_http"]
    return usage["item_bytes_tcp"]


def _sites(service: Service) -> list[tuple[str, Any]]:
    sites = service.sites
    return [
        (name, site) for name, site in (("main", sites.main), ("dr", sites.dr), ("cold", sites.cold)) if site
    ]


def round_checks(config: WatchdogConfig, region: str, service: Service, *, cold: bool = True) -> list[Check]:
    """What one scheduled round of `region` stores for `service`: the control target's checks
    (one result each per service, `probes/round.py`), then every check of every site (the cold
    site's only with `cold`)."""
    checks: list[Check] = list(config.control_target(region).checks)
    for name, site in _sites(service):
        if cold or name != "cold":
            checks.extend(site.checks)
    return checks


def cold_wait_seconds(config: WatchdogConfig, usage: UsageTable) -> float:
    """How long a round waits for a cold site that is not launched: its longest check's timeout
    (an Elastic IP with no instance behind it takes the connection and never answers), plus what
    the measured round spent around that wait."""
    timeouts = [
        check.timeout_seconds or config.probe.timeout_seconds
        for service in config.services
        if service.sites.cold is not None
        for check in service.sites.cold.checks
    ]
    if not timeouts:
        return 0.0
    overrun = usage["probe_round_cold_down_local_seconds"] - usage["probe_round_cold_down_timeout_seconds"]
    return max(timeouts) + max(0.0, overrun)


@dataclass(frozen=True)
class ProbeMonth:
    """One probe region's month."""

    region: str
    cadence: Cadence
    rounds: float
    invocations: float
    scheduled_invocations: float  # what EventBridge Scheduler fires
    queued_rounds: float  # rounds that came through the round queue (SQS)
    round_seconds: float
    billed_seconds: float  # per invocation
    wait_seconds: float  # of which waiting between rounds
    items_per_round: int
    write_units_per_round: float
    read_units_per_round: float
    read_units_per_invocation: float
    round_bytes_written: float
    round_bytes_read: float
    log_bytes_per_invocation: float
    cold_events: float  # ProbeFailed of a cold site that is not launched


def _round_seconds(config: WatchdogConfig, usage: UsageTable, design: ProbeDesign) -> float:
    """The checks (or the idle cold site's timeout), the store, then each service's standby watch
    (its two reads of the state table, one after the other)."""
    checks = usage["probe_round_local_seconds"] + usage["wan_checks_seconds"]
    if design.cold_checked_while_idle:
        checks = max(checks, cold_wait_seconds(config, usage))
    watch = len(config.services) * usage["wan_standby_watch_seconds"]
    return checks + usage["wan_store_seconds"] + watch


def get_item_read_units(item_bytes: float) -> float:
    """A strongly consistent GetItem: one read unit per 4 KB of the item, at least one (an item
    that is not there costs one too)."""
    return max(1, math.ceil(item_bytes / READ_UNIT_BYTES))


def standby_watch_read_units(usage: UsageTable) -> float:
    """One service's standby watch in one round (`ProbeService._watch_standby`): GetItem of its state
    and of its standby record, both strongly consistent (`DynamoStandbyWatch._get`)."""
    return get_item_read_units(usage["state_item_bytes"]) + get_item_read_units(usage["standby_record_bytes"])


def lookback_seconds(config: WatchdogConfig) -> float:
    return max(config.probe.freshness_seconds, 3 * config.probe.interval_seconds)


def lookback_bytes(
    config: WatchdogConfig,
    usage: UsageTable,
    service: Service,
    period: float,
    *,
    cold: bool = True,
    window: float | None = None,
) -> float:
    """What one round's Query of `service`'s recent results returns (`ProbeService._recent_results`):
    every region's items of the look-back window, max(freshness, 3 intervals); or of `window`."""
    window = lookback_seconds(config) if window is None else window
    per_round = sum(
        sum(_item_bytes(c, usage) for c in round_checks(config, r, service, cold=cold))
        for r in config.probe_regions
    )
    return per_round * window / period


def query_read_units(returned_bytes: float) -> float:
    """A Query's read units: the bytes of every item it returns, rounded up to 4 KB, halved for an
    eventually consistent read (the store's Query is one)."""
    return math.ceil(returned_bytes / READ_UNIT_BYTES) * EVENTUALLY_CONSISTENT


def probe_month(
    config: WatchdogConfig, region: str, usage: UsageTable, design: ProbeDesign, month_minutes: float
) -> ProbeMonth:
    cadence = Cadence.of(config.probe.interval_seconds)
    rounds = month_minutes / cadence.rate_minutes * cadence.rounds
    round_seconds = _round_seconds(config, usage, design)
    if design.wait_between_rounds:
        invocations = month_minutes / cadence.rate_minutes
        rounds_per_invocation = cadence.rounds
        wait = (cadence.rounds - 1) * max(0.0, cadence.spacing_seconds - round_seconds)
        billed = (cadence.rounds - 1) * max(cadence.spacing_seconds, round_seconds) + round_seconds
    else:
        invocations, rounds_per_invocation, wait, billed = rounds, 1, 0.0, round_seconds
    scheduled = month_minutes / cadence.rate_minutes
    queued = 0.0 if design.wait_between_rounds else rounds - scheduled
    cold = design.cold_checked_while_idle
    checks = [c for s in config.services for c in round_checks(config, region, s, cold=cold)]
    sizes = [_item_bytes(c, usage) for c in checks]
    returned = [
        lookback_bytes(config, usage, s, cadence.round_period_seconds, cold=cold) for s in config.services
    ]
    logs = (
        usage["log_bytes_per_invocation"]
        + usage["log_bytes_per_round"] * rounds_per_invocation
        + usage["platform_log_bytes_per_invocation"]
        # with the round queue, every invocation also logs the queue's sentence (queued, lost, dropped)
        + (usage["log_bytes_round_queue_per_invocation"] if queued else 0.0)
    )
    cold_services = sum(1 for s in config.services if s.sites.cold is not None)
    cold_events = (
        rounds / config.probe.retrigger_rounds * cold_services if design.cold_checked_while_idle else 0
    )
    return ProbeMonth(
        region=region,
        cadence=cadence,
        rounds=rounds,
        invocations=invocations,
        scheduled_invocations=scheduled,
        queued_rounds=queued,
        round_seconds=round_seconds,
        billed_seconds=billed,
        wait_seconds=wait,
        items_per_round=len(checks),
        write_units_per_round=sum(math.ceil(b / WRITE_UNIT_BYTES) for b in sizes),
        read_units_per_round=sum(query_read_units(b) for b in returned),
        read_units_per_invocation=EVENTUALLY_CONSISTENT,  # the store's clock query (Limit 1)
        round_bytes_written=sum(sizes),
        round_bytes_read=sum(returned),
        log_bytes_per_invocation=logs,
        cold_events=cold_events,
    )


# -- secrets ------------------------------------------------------------------------------------


def probe_secret_names(config: WatchdogConfig) -> set[str]:
    """The secrets the probe reads: its PostgreSQL checks' credentials (and the control targets')."""
    checks = [
        c
        for t in [config.probe.control_target, *config.probe.region_control_targets.values()]
        for c in t.checks
    ]
    checks += [c for service in config.services for _, site in _sites(service) for c in site.checks]
    return {c.credentials_secret for c in checks if isinstance(c, PostgresCheck)}


def secret_copies(config: WatchdogConfig) -> dict[str, set[str]]:
    """Region -> the secrets that must exist there (a replica counts as a secret of its region):
    the probe's in every probe region (README: create once, replicate); the action functions' in
    the home region (`stacks/secret_access.py`); the backup manifest key in each cold-site region."""
    home: set[str] = {hook.signing_secret for hook in config.notifications.webhooks}
    cold: dict[str, set[str]] = {}
    for service in config.services:
        home.add(service.edge.api_token_secret)
        home.update(site.agent.signing_secret for _, site in _sites(service) if site.agent is not None)
        if service.database is not None:
            home.update({service.database.main.credentials_secret, service.database.dr.credentials_secret})
        hooks = (service.hooks.fence_main, service.hooks.before_promote, service.hooks.after_promote)
        home.update(hook.signing_secret for hook in hooks if hook is not None)
        if service.cold_site is not None:
            cold.setdefault(service.cold_site.region, set()).add(service.cold_site.backup_manifest.key_secret)
    copies: dict[str, set[str]] = {region: probe_secret_names(config) for region in config.probe_regions}
    copies.setdefault(config.home_region, set()).update(home)
    for region, names in cold.items():
        copies.setdefault(region, set()).update(names)
    return copies


# -- the lines -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Month:
    """The priced month and the inputs every line builder reads."""

    config: WatchdogConfig
    prices: PriceTable
    usage: UsageTable
    design: ProbeDesign

    @property
    def hours(self) -> float:
        return self.prices.month_hours

    @property
    def minutes(self) -> float:
        return self.prices.month_hours * 60

    def line(
        self,
        scope: str,
        region: str,
        key: str,
        item: str,
        quantity: float,
        unit: str,
        driver: str,
        *,
        standing: bool = False,
    ) -> CostLine:
        price = self.prices[key]
        return CostLine(
            scope, region, price.service, item, quantity, unit, key, price.of(quantity), driver, standing
        )


def _gb(value: float) -> float:
    return value / GIB


def _probe_lines(m: _Month, p: ProbeMonth) -> list[CostLine]:
    config, usage, design = m.config, m.usage, m.design
    gb = design.memory_mb / 1024
    cadence = p.cadence
    how = (
        f"{cadence.rounds} rounds {cadence.spacing_seconds:g} s apart in each, {p.wait_seconds:.1f} s of "
        "it waiting between them; "
        if design.wait_between_rounds and cadence.rounds > 1
        else f"one round each (the schedule's, and {cadence.rounds - 1} a minute from the round queue); "
        if cadence.queued
        else "one round each; "
    )
    cold = (
        " (it waits for the cold site's checks to time out)"
        if design.cold_checked_while_idle and any(s.sites.cold for s in config.services)
        else ""
    )
    duration = (
        f"{p.invocations:,.0f} invocations x {p.billed_seconds:.2f} s billed x {gb:g} GB; {how}"
        f"a round takes {p.round_seconds:.2f} s{cold}"
    )
    written, returned = p.rounds * p.round_bytes_written, p.rounds * p.round_bytes_read
    logs = _gb(p.invocations * p.log_bytes_per_invocation)
    reads = p.rounds * p.read_units_per_round + p.invocations * p.read_units_per_invocation
    region, key = p.region, f"lambda_duration_{design.architecture}"
    lines = [
        m.line(
            "probe",
            region,
            key,
            "probe function duration",
            p.invocations * p.billed_seconds * gb,
            "GB-seconds",
            duration,
        ),
        m.line(
            "probe",
            region,
            "lambda_requests",
            "probe function requests",
            p.invocations,
            "requests",
            f"{p.invocations:,.0f} invocations a month",
        ),
        m.line(
            "probe",
            region,
            "scheduler_invocations",
            "schedule invocations",
            p.scheduled_invocations,
            "invocations",
            (f"one every {cadence.rate_minutes} minutes" if cadence.rate_minutes > 1 else "one a minute")
            + (
                f" (the minute's other {cadence.rounds - 1} round(s) come through the round queue)"
                if p.queued_rounds
                else ""
            ),
        ),
        m.line(
            "probe",
            region,
            "dynamodb_write_request_units",
            "results written (home table)",
            p.rounds * p.write_units_per_round,
            "write request units",
            f"{p.rounds:,.0f} rounds x {p.items_per_round} results = {p.write_units_per_round:g} WRU a round "
            f"(a result over 1 KB, as a PostgreSQL one of {usage['item_bytes_postgres']:.0f} bytes, costs 2)",
        ),
        m.line(
            "probe",
            region,
            "dynamodb_read_request_units",
            "recent results read (home table)",
            reads,
            "read request units",
            f"each round reads every region's last {lookback_seconds(config):g} s "
            f"of results ({p.round_bytes_read / 1024:.1f} KB, {p.read_units_per_round:g} RRU eventually "
            "consistent); each invocation one clock query",
        ),
    ]
    if p.queued_rounds:
        idle = usage["round_queue_idle_receives_per_minute"]
        lines += [
            m.line(
                "probe",
                region,
                "sqs_requests",
                "round queue: the queued rounds",
                p.queued_rounds * SQS_REQUESTS_PER_QUEUED_ROUND,
                "requests",
                f"{p.queued_rounds:,.0f} rounds a month through the region's queue, "
                f"{SQS_REQUESTS_PER_QUEUED_ROUND} requests each: the SendMessage that queues it (delay "
                f"{cadence.spacing_seconds:g} s), the event source mapping's ReceiveMessage and "
                "DeleteMessage",
            ),
            m.line(
                "probe",
                region,
                "sqs_requests",
                "round queue: the mapping's polling",
                m.minutes * idle,
                "requests",
                f"{idle:g} empty ReceiveMessage a minute (estimate): AWS documents that Lambda long-polls a "
                "standard queue, with five concurrent pollers at low traffic (as few as two), and "
                "SQS's longest long poll is 20 s; 5 pollers x 3 polls a minute, the upper end; the "
                "queue is empty but for a message every few seconds",
            ),
        ]
    services = len(config.services)
    watched = usage["state_item_bytes"] + usage["standby_record_bytes"]
    lines.append(
        m.line(
            "probe",
            region,
            "dynamodb_read_request_units",
            "standby watch reads (state table)",
            p.rounds * services * standby_watch_read_units(usage),
            "read request units",
            f"{p.rounds:,.0f} rounds x {services} service(s) x 2 strongly consistent GetItems in the home "
            f"region (the service's state and its standby record, {standby_watch_read_units(usage):g} RRU "
            "together), for the DR-down alert; a change of the standby's health adds one conditional "
            "UpdateItem, a few a month: not counted",
        )
    )
    if region != config.home_region:
        lines.append(
            m.line(
                "probe",
                region,
                "data_transfer_inter_region",
                "standby watch reads across regions",
                _gb(p.rounds * services * watched),
                "GB",
                f"{watched:,.0f} bytes a service a round (the state item and the standby record) from "
                "the home region",
            )
        )
        lines.append(
            m.line(
                "probe",
                region,
                "data_transfer_inter_region",
                "results to and from the home region",
                _gb(written + returned),
                "GB",
                f"{p.round_bytes_written / 1024:.1f} KB written and {p.round_bytes_read / 1024:.1f} KB "
                f"read a round, across regions",
            )
        )
    events = p.cold_events * (1 if region == config.home_region else 2)
    lines += [
        m.line(
            "probe",
            region,
            "cloudwatch_logs_ingestion",
            "probe log lines",
            logs,
            "GB",
            f"{p.log_bytes_per_invocation:,.0f} bytes an invocation (JSON lines, EMF metrics, Lambda's "
            "START/END/REPORT)",
        ),
        m.line(
            "probe",
            region,
            "cloudwatch_logs_storage",
            "probe logs kept",
            logs * PROBE_LOG_RETENTION_MONTHS,
            "GB-months",
            f"{PROBE_LOG_RETENTION_MONTHS} months' retention, uncompressed (an upper bound)",
        ),
        m.line(
            "probe",
            region,
            "xray_traces_recorded",
            "probe traces",
            p.invocations,
            "traces",
            "tracing on; the default sampling rule keeps the first request each second",
        ),
        m.line(
            "probe",
            region,
            "cloudwatch_custom_metrics",
            "probe metrics",
            len(PROBE_METRICS),
            "metrics",
            f"{', '.join(PROBE_METRICS)} by region",
            standing=True,
        ),
        m.line(
            "probe",
            region,
            "cloudwatch_alarm_metrics",
            "probe alarms",
            PROBE_ALARM_METRICS_PER_REGION,
            "alarm metrics",
            "probe errors; region silent for 15 minutes",
            standing=True,
        ),
        m.line(
            "probe",
            region,
            "eventbridge_custom_events",
            "ProbeFailed of the idle cold site",
            events,
            "events",
            f"a cold site that is not launched fails every round: ProbeFailed every "
            f"{config.probe.retrigger_rounds} rounds"
            + ("" if region == config.home_region else ", put and forwarded home")
            if p.cold_events
            else "no steady-state events",
        ),
    ]
    return lines


def _secret_lines(m: _Month) -> list[CostLine]:
    lines = []
    probe = probe_secret_names(m.config)
    reads = m.hours * 3600 / m.usage["probe_secret_cache_seconds"] * len(probe)
    for region, names in sorted(secret_copies(m.config).items()):
        lines.append(
            m.line(
                "secrets",
                region,
                "secrets_manager_secrets",
                "secrets (a replica counts)",
                len(names),
                "secrets",
                ", ".join(sorted(names)),
                standing=True,
            )
        )
        if region in m.config.probe_regions and probe:
            lines.append(
                m.line(
                    "secrets",
                    region,
                    "secrets_manager_api_calls",
                    "probe secret reads",
                    reads,
                    "API calls",
                    f"{len(probe)} secret(s) read again when the "
                    f"{m.usage['probe_secret_cache_seconds']:g} s cache expires",
                )
            )
            lines.append(
                m.line(
                    "secrets",
                    region,
                    "kms_requests",
                    "decrypts of those reads",
                    reads,
                    "requests",
                    "each read decrypts under the secret's key",
                )
            )
    return lines


def _execution_lines(m: _Month, round_seconds: float) -> list[CostLine]:
    u, home = m.usage, m.config.home_region
    runs = {
        "false_alarm": u["false_alarm_executions_per_month"],
        "failover": u["dry_run_executions_per_month"],
    }
    executions = sum(runs.values())
    transitions = sum(n * u[f"transitions_{k}"] for k, n in runs.items())
    probe_gb = m.design.memory_mb / 1024
    gb_seconds = sum(
        n
        * (
            u[f"action_seconds_{k}"] * ACTION_MEMORY_MB / 1024
            + u[f"probe_invocations_{k}"] * round_seconds * probe_gb
        )
        for k, n in runs.items()
    )
    requests = sum(n * (u[f"action_invocations_{k}"] + u[f"probe_invocations_{k}"]) for k, n in runs.items())
    log_gb = _gb(sum(n * u[f"execution_log_bytes_{k}"] for k, n in runs.items()))
    # A metric is billed for each hour it receives data, however often: the share of hours with at
    # least one such execution (executions spread at random, so 1 - e^(-runs per hour)).
    metric_months = sum(u[f"action_steps_{k}"] * 2 * -math.expm1(-n / m.hours) for k, n in runs.items())
    assumed = (
        f"{u['false_alarm_executions_per_month']:,g} false triggers "
        f"({m.usage.figures['false_alarm_executions_per_month'].basis}: the policy benchmark's world) + "
        f"{u['dry_run_executions_per_month']:g} production dry run a month (assumed)"
    )
    publishes = u["dry_run_executions_per_month"] + u["alarm_notifications_per_month"]
    return [
        m.line(
            "home",
            home,
            "step_functions_state_transitions",
            "failover executions",
            transitions,
            "state transitions",
            f"{assumed}; {u['transitions_false_alarm']:g} and "
            f"{u['transitions_failover']:g} transitions each (measured)",
        ),
        m.line(
            "home",
            home,
            f"lambda_duration_{m.design.architecture}",
            "functions of those executions",
            gb_seconds,
            "GB-seconds",
            "action functions and on-demand probe rounds",
        ),
        m.line("home", home, "lambda_requests", "their requests", requests, "requests", assumed),
        m.line(
            "home",
            home,
            "cloudwatch_logs_ingestion",
            "state machine log (level ALL)",
            log_gb,
            "GB",
            "every history event with its data",
        ),
        m.line(
            "home",
            home,
            "cloudwatch_logs_storage",
            "state machine log kept",
            log_gb * STATE_MACHINE_LOG_RETENTION_MONTHS,
            "GB-months",
            f"{STATE_MACHINE_LOG_RETENTION_MONTHS} months' retention",
        ),
        m.line("home", home, "xray_traces_recorded", "execution traces", executions, "traces", assumed),
        m.line(
            "home",
            home,
            "cloudwatch_custom_metrics",
            "step metrics",
            metric_months,
            "metrics",
            "StepSeconds and StepSucceeded by step, billed for the hours they are published (the share "
            "of hours with such an execution)",
        ),
        m.line(
            "home",
            home,
            "sns_publishes",
            "alerts",
            publishes,
            "publishes",
            f"{u['alarm_notifications_per_month']:g} alarm changes (assumed) and the dry runs' notices",
        ),
        m.line(
            "home",
            home,
            "sns_email_deliveries",
            "alert e-mails",
            publishes * u["email_subscribers"],
            "deliveries",
            f"{u['email_subscribers']:g} e-mail subscriber(s) (assumed)",
        ),
    ]


def _home_lines(m: _Month, months: Sequence[ProbeMonth]) -> list[CostLine]:
    config, u, home = m.config, m.usage, m.config.home_region
    per_day = sum(p.rounds * p.items_per_round for p in months) / (m.hours / 24)
    size = sum(p.round_bytes_written for p in months) / max(1, sum(p.items_per_round for p in months))
    kept_days = config.probe.result_ttl_seconds / SECONDS_PER_DAY + u["ttl_deletion_lag_days"]
    stored = _gb(per_day * kept_days * (size + u["item_storage_overhead_bytes"]))
    kept = (
        f"{per_day:,.0f} results a day kept {kept_days:g} days (TTL and the deletion lag), "
        f"{size + u['item_storage_overhead_bytes']:.0f} bytes each"
    )
    return [
        m.line("home", home, "dynamodb_storage", "results table", stored, "GB-months", kept),
        m.line(
            "home",
            home,
            "dynamodb_point_in_time_recovery",
            "its point-in-time recovery",
            stored,
            "GB-months",
            "PITR is on for both tables",
        ),
        m.line(
            "home",
            home,
            "cloudwatch_alarm_metrics",
            "control alarms",
            CONTROL_ALARM_METRICS + readiness_alarm_metrics(config),
            "alarm metrics",
            "failed (3 metrics) and escalated (1), for failover and switchover; readiness FAIL per "
            "service and readiness errors (1 each)",
            standing=True,
        ),
        m.line(
            "home",
            home,
            "cloudwatch_dashboards",
            "dashboard",
            DASHBOARDS,
            "dashboards",
            "quorum-dr",
            standing=True,
        ),
        m.line(
            "home",
            home,
            "kms_keys",
            "alert topic key",
            KMS_KEYS,
            "keys",
            "rotation on: each yearly rotation adds a key-month",
            standing=True,
        ),
    ]


def _readiness_lines(m: _Month, round_period: float) -> list[CostLine]:
    """The scheduled readiness function (`lambdas/readiness/handler.py`), every service every
    `READINESS_RATE_MINUTES` minutes in the home region."""
    config, u, home = m.config, m.usage, m.config.home_region
    services = config.services
    invocations = m.minutes / READINESS_RATE_MINUTES
    n = len(services)
    seconds = n * (u["readiness_local_seconds"] + u["readiness_wan_seconds"])
    gb = READINESS_MEMORY_MB / 1024
    window = readiness_lookback_seconds(config)
    returned = [
        lookback_bytes(config, u, s, round_period, cold=m.design.cold_checked_while_idle, window=window)
        for s in services
    ]
    state_units = get_item_read_units(u["state_item_bytes"])
    # per service: the home clock (a Query, Limit 1, eventually consistent), the results of the
    # look-back, GetItem of the state, the lock and the previous readiness (strongly consistent)
    reads = sum(
        EVENTUALLY_CONSISTENT
        + query_read_units(b)
        + state_units
        + get_item_read_units(0)
        + get_item_read_units(u["readiness_item_bytes"])
        for b in returned
    )
    writes = n * math.ceil(u["readiness_item_bytes"] / WRITE_UNIT_BYTES)
    described = sum(
        len(names)
        for s in services
        for names in secret_copies(config.model_copy(update={"services": [s]})).values()
    )
    metrics = readiness_metrics(config)
    checks = ", ".join(f"{s.name}: {len(readiness_checks(config, s))} checks" for s in services)
    logs = _gb(
        invocations * (n * u["readiness_log_bytes_per_invocation"] + u["platform_log_bytes_per_invocation"])
    )
    every = f"{invocations:,.0f} invocations (one every {READINESS_RATE_MINUTES} minutes)"
    key = f"lambda_duration_{m.design.architecture}"
    return [
        m.line(
            "readiness",
            home,
            key,
            "readiness function duration",
            invocations * seconds * gb,
            "GB-seconds",
            f"{every} x {seconds:.2f} s x {gb:g} GB; {n} service(s) evaluated one after the other, "
            f"{u['readiness_local_seconds']:.2f} s each on the real code locally (measured) + "
            f"{u['readiness_wan_seconds']:g} s of network to AWS in three regions and Cloudflare (estimate)",
        ),
        m.line(
            "readiness",
            home,
            "lambda_requests",
            "readiness function requests",
            invocations,
            "requests",
            every,
        ),
        m.line(
            "readiness",
            home,
            "scheduler_invocations",
            "readiness schedule invocations",
            invocations,
            "invocations",
            f"rate({READINESS_RATE_MINUTES} minutes)",
        ),
        m.line(
            "readiness",
            home,
            "dynamodb_read_request_units",
            "readiness reads (state, results)",
            invocations * reads,
            "read request units",
            f"each service each time: the home clock (0.5 RRU), every region's last {window:g} s of "
            f"results ({sum(returned) / max(1, n) / 1024:.1f} KB, eventually consistent), GetItem of the "
            "state, the lock and the previous readiness (strongly consistent, 1 RRU each)",
        ),
        m.line(
            "readiness",
            home,
            "dynamodb_write_request_units",
            "readiness records written",
            invocations * writes,
            "write request units",
            f"one PutItem a service each time ({u['readiness_item_bytes']:,.0f} bytes: "
            f"{math.ceil(u['readiness_item_bytes'] / WRITE_UNIT_BYTES)} WRU); a ReadinessChanged event "
            "only on a change: not counted",
        ),
        m.line(
            "readiness",
            home,
            "secrets_manager_api_calls",
            "readiness secret calls",
            invocations * (n + described),
            "API calls",
            f"each time: GetSecretValue of each service's Cloudflare token (no cache between runs) and "
            f"DescribeSecret of every copy its functions read ({described} in all regions)",
        ),
        m.line(
            "readiness",
            home,
            "kms_requests",
            "decrypts of the token reads",
            invocations * n,
            "requests",
            "each GetSecretValue decrypts under the secret's key; DescribeSecret does not",
        ),
        m.line(
            "readiness",
            home,
            "cloudwatch_custom_metrics",
            "readiness metrics",
            metrics,
            "metrics",
            f"ReadinessStatus by service and check, and overall ({checks}), and ReadinessEvaluations",
            standing=True,
        ),
        m.line(
            "readiness",
            home,
            "cloudwatch_logs_ingestion",
            "readiness log lines",
            logs,
            "GB",
            f"{u['readiness_log_bytes_per_invocation']:,.0f} bytes a service each time (JSON lines, EMF "
            "metrics) and Lambda's START/END/REPORT",
        ),
        m.line(
            "readiness",
            home,
            "cloudwatch_logs_storage",
            "readiness logs kept",
            logs * PROBE_LOG_RETENTION_MONTHS,
            "GB-months",
            f"{PROBE_LOG_RETENTION_MONTHS} months' retention, uncompressed (an upper bound)",
        ),
        m.line(
            "readiness",
            home,
            "xray_traces_recorded",
            "readiness traces",
            invocations,
            "traces",
            "tracing on; one invocation every few minutes, each one sampled",
        ),
    ]


def _cold_lines(m: _Month) -> list[CostLine]:
    lines = []
    for service in m.config.services:
        cold = service.cold_site
        if cold is not None and cold.elastic_ip_allocation_id:
            lines.append(
                m.line(
                    "cold site",
                    cold.region,
                    "public_ipv4_addresses",
                    f"{service.name}'s Elastic IP",
                    m.hours,
                    "IP-hours",
                    "held while the cold site is not launched",
                    standing=True,
                )
            )
    return lines


def cost_lines(
    config: WatchdogConfig, prices: PriceTable, usage: UsageTable, design: ProbeDesign = AS_DEPLOYED
) -> list[CostLine]:
    m = _Month(config, prices, usage, design)
    months = [probe_month(config, r, usage, design, m.minutes) for r in config.probe_regions]
    lines = [line for p in months for line in _probe_lines(m, p)]
    lines += _secret_lines(m)
    lines += _home_lines(m, months)
    lines += _execution_lines(m, months[0].round_seconds)
    lines += _readiness_lines(m, months[0].cadence.round_period_seconds)
    lines += _cold_lines(m)
    return lines


def _total(lines: Iterable[CostLine]) -> float:
    return sum(line.monthly or 0.0 for line in lines)


def total_with_free_tier(lines: Iterable[CostLine], prices: PriceTable) -> float:
    """The total after each price's always-free monthly allowance (per account: an account that
    uses it for nothing else)."""
    quantities: dict[str, float] = {}
    for line in lines:
        quantities[line.price_key] = quantities.get(line.price_key, 0.0) + line.quantity
    return sum(prices[key].of(q, free=True) or 0.0 for key, q in quantities.items())


# -- what it would replace -----------------------------------------------------------------------


def _probed_sites(config: WatchdogConfig) -> list[tuple[Service, str, Any]]:
    return [(service, name, site) for service in config.services for name, site in _sites(service)]


def route53(config: WatchdogConfig, prices: PriceTable, interval_seconds: int) -> Comparison:
    """One Route 53 health check per probed site: HTTPS, string matching, at `interval_seconds`
    (10 is the priced fast interval). The cold site runs in AWS (an EC2 instance of this account):
    an AWS endpoint; main and DR are taken as endpoints outside AWS."""
    m = _Month(config, prices, UsageTable.model_construct(measured_on=date.today(), figures={}), AS_DEPLOYED)
    lines = []
    for service, name, site in _probed_sites(config):
        kind = "aws" if name == "cold" and service.cold_site is not None else "non_aws"
        https = any(isinstance(c, HttpCheck) and str(c.url).startswith("https://") for c in site.checks)
        features = ["HTTPS"] * https + ["string matching"] + ["fast interval"] * (interval_seconds == 10)
        where = "an AWS endpoint" if kind == "aws" else "outside AWS"
        label = f"{service.name} {name}"
        lines.append(
            m.line(
                "comparison",
                "",
                f"route53_health_check_{kind}",
                f"{label}: health check",
                1,
                "health checks",
                f"{site.label}, {where}",
            )
        )
        lines.append(
            m.line(
                "comparison",
                "",
                f"route53_optional_feature_{kind}",
                f"{label}: optional features",
                len(features),
                "features",
                ", ".join(features),
            )
        )
    return Comparison(
        f"Route 53 health checks, {interval_seconds} s",
        lines,
        f"one per site ({len(lines) // 2}), HTTPS + string matching"
        + (" + fast interval (10 s)" if interval_seconds == 10 else ", standard 30 s interval"),
    )


def cloudflare_load_balancing(config: WatchdogConfig, prices: PriceTable) -> Comparison:
    m = _Month(config, prices, UsageTable.model_construct(measured_on=date.today(), figures={}), AS_DEPLOYED)
    endpoints = len(_probed_sites(config))
    regions = len(config.probe_regions)
    lines = [
        m.line(
            "comparison",
            "",
            "cloudflare_load_balancing_base",
            "subscription",
            1,
            "subscriptions",
            "the Load Balancing add-on",
        ),
        m.line(
            "comparison",
            "",
            "cloudflare_load_balancing_endpoint",
            "endpoints",
            endpoints,
            "endpoints",
            "one per site",
        ),
        m.line(
            "comparison",
            "",
            "cloudflare_load_balancing_monitor_region",
            "health monitor regions",
            regions,
            "regions",
            f"as many as our probe regions ({regions}); 1 is included",
        ),
    ]
    return Comparison(
        "Cloudflare Load Balancing", lines, f"{endpoints} endpoints, monitors from {regions} regions"
    )


# -- the report ----------------------------------------------------------------------------------

LEVERS: Sequence[tuple[str, str, ProbeDesign]] = (
    (
        "as deployed",
        "each round its own invocation, nothing billed while waiting: the schedule's round, and the "
        "minute's later rounds through the region's round queue (SQS requests)",
        AS_DEPLOYED,
    ),
    ("x86_64 instead of arm64", "as deployed, on x86_64", ProbeDesign(architecture="x86_64")),
    (
        "cold site probed while not launched (before)",
        "as deployed, but every round checks the cold site, launched or not: each of its checks waits "
        "for its timeout (the design before the cold rule of issue 14)",
        ProbeDesign(cold_checked_while_idle=True),
    ),
    (
        "before: the minute's rounds in one invocation",
        "as deployed, but the schedule's invocation runs the minute's rounds, waiting between them "
        "(Lambda bills the wait), and no queue (the design before issue 14's part 4)",
        ProbeDesign(wait_between_rounds=True),
    ),
    (
        "before issue 14: all three",
        "the minute's rounds in one invocation, the cold site probed while not launched, the probe at 512 MB",
        ProbeDesign(wait_between_rounds=True, cold_checked_while_idle=True, memory_mb=512),
    ),
)


def design_levers(config: WatchdogConfig, prices: PriceTable, usage: UsageTable) -> list[Lever]:
    levers = []
    for name, change, design in LEVERS:
        lines = cost_lines(config, prices, usage, design)
        probe = [
            line for line in lines if line.scope == "probe" and line.price_key.startswith("lambda_duration")
        ]
        levers.append(
            Lever(name, change, design, _total(lines), total_with_free_tier(lines, prices), _total(probe))
        )
    return levers


def _notes(config: WatchdogConfig, prices: PriceTable, lines: Sequence[CostLine]) -> list[str]:
    notes = []
    missing = sorted({line.price_key for line in lines if line.monthly is None})
    if missing:
        notes.append("no price found (line counted as $0): " + ", ".join(missing))
    elsewhere = sorted({p.service for p in prices.prices.values() if "US East" in p.region})
    notes.append(
        f"list prices, most of them US East (N. Virginia) figures ({', '.join(elsewhere)}): the stored pages "
        f"gave no {config.home_region} table; each price's region is in prices.yaml"
    )
    notes.append(
        "not counted: the backup bucket (S3), the cold site's EC2 instance while it runs, Cloudflare, "
        "the probes' requests to the Internet, KMS calls made for DynamoDB's AWS managed key"
    )
    notes.append(
        "the readiness function's calls that cost nothing: Cloudflare (token verify and the edge's "
        "reads, within the token's 1,200 requests per 5 minutes), EC2 (DescribeImages, "
        "DescribeLaunchTemplates, the RunInstances dry run), SSM GetParameter (a standard parameter), "
        "Step Functions DescribeExecution (only while a lock is held)"
    )
    archived = [s.name for s in config.services if s.cold_site is not None and s.cold_site.wal_archive]
    if archived:
        notes.append(
            "not counted: the readiness function's S3 requests (the backup listings of "
            + ", ".join(archived)
            + ", with the bucket)"
        )
    return notes


STANDBY_WATCH_ITEMS = ("standby watch reads (state table)", "standby watch reads across regions")


def standby_watch_cost(
    config: WatchdogConfig, prices: PriceTable, usage: UsageTable, design: ProbeDesign = AS_DEPLOYED
) -> StandbyWatchCost:
    lines = cost_lines(config, prices, usage, design)
    figures = dict(usage.figures)
    figures["wan_standby_watch_seconds"] = figures["wan_standby_watch_seconds"].model_copy(
        update={"value": 0.0}
    )
    without = cost_lines(config, prices, usage.model_copy(update={"figures": figures}), design)

    def duration(of: Sequence[CostLine]) -> float:
        return _total(x for x in of if x.scope == "probe" and x.price_key.startswith("lambda_duration"))

    return StandbyWatchCost(
        reads=_total(x for x in lines if x.item in STANDBY_WATCH_ITEMS),
        duration=duration(lines) - duration(without),
        seconds_per_round=len(config.services) * usage["wan_standby_watch_seconds"],
    )


def probing_total(config: WatchdogConfig, prices: PriceTable, lines: Iterable[CostLine]) -> float:
    """The probing alone, the part a health-check service does: every probe-scope line (the
    probe function in every region, its schedule and round queue, the results it writes and reads,
    its logs, traces, metrics and alarms, the standby watch's reads), the results table's storage
    and the probe's own secret copies with their reads. Not the control plane (state machine,
    action functions, alert topic, dashboard), the readiness function or the cold site: Route 53
    health checks have none of those."""
    probe_secrets = probe_secret_names(config)
    copies = sum(len(names & probe_secrets) for names in secret_copies(config).values())
    secrets = prices["secrets_manager_secrets"].of(copies) or 0.0
    theirs = ("probe secret reads", "decrypts of those reads", "results table")
    return _total(line for line in lines if line.scope == "probe" or line.item in theirs) + secrets


def cost_report(
    config: WatchdogConfig, prices: PriceTable, usage: UsageTable, design: ProbeDesign = AS_DEPLOYED
) -> CostReport:
    lines = cost_lines(config, prices, usage, design)
    cadence = Cadence.of(config.probe.interval_seconds)
    sites = len(_probed_sites(config))
    summary = (
        f"{len(config.probe_regions)} probe regions ({', '.join(config.probe_regions)}), home "
        + f"{config.home_region}; a round every {config.probe.interval_seconds:g} s "
        + (
            f"({cadence.rounds} a minute, one per invocation: 1 scheduled, {cadence.rounds - 1} through "
            "the round queue); "
            if cadence.queued and not design.wait_between_rounds
            else f"({cadence.rounds} per invocation every {cadence.rate_minutes} min); "
        )
        + f"{len(config.services)} service(s), {sites} sites"
    )
    return CostReport(
        config_summary=summary,
        design=design,
        lines=lines,
        total=_total(lines),
        total_with_free_tier=total_with_free_tier(lines, prices),
        monitoring_total=_total(line for line in lines if line.scope != "cold site"),
        probing_total=probing_total(config, prices, lines),
        comparisons=[
            route53(config, prices, 10),
            route53(config, prices, 30),
            cloudflare_load_balancing(config, prices),
        ],
        levers=design_levers(config, prices, usage),
        standby_watch=standby_watch_cost(config, prices, usage, design),
        figures_used=dict(usage.figures),
        notes=_notes(config, prices, lines),
    )


def with_services(config: WatchdogConfig, names: Sequence[str]) -> WatchdogConfig:
    """The deployment as if it protected only `names` (KeyError naming the first unknown one)."""
    for name in names:
        config.service(name)
    return config.model_copy(update={"services": [s for s in config.services if s.name in set(names)]})
