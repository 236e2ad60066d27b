"""Drill scenarios: what to break, when, and what must then be true.

A scenario is a YAML file (the shipped ones live in `scenarios/`, e.g. `scenarios/main-outage.yaml`):

    name: main-outage
    description: The main site goes down hard; the DR standby must take over.
    replication: async            # async | sync (synchronous_standby_names on main)
    probe: {interval_seconds: 2, confirmation_rounds: 2}
    traffic: {rate_per_second: 10}
    duration_seconds: 45          # hard bound on the drill's run phase
    faults:
      - at: 10                    # seconds after the traffic starts
        kind: site_down
        params: {site: main}
    expectations:
      failover: true
      target: dr
      rto_seconds_max: 10
      promotions: 1
      edge_writes: 1

Every model forbids unknown fields: a typo is an error naming its field. Each fault kind has its
own parameter model (below), checked against `kind`. An expectation left out is not checked;
`target: null` written out means "no site may become the target".
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from quorum_dr.config import describe_errors
from quorum_dr.config_file import FileRefused, read_yaml
from quorum_dr.config_types import DAY, MAX_REASON_CHARS, Count, Flag, Number, StrictModel

SCENARIO_DIR = Path(__file__).resolve().parent.parent.parent / "scenarios"
DEFAULT_SCENARIO = "main-outage"


class ScenarioError(Exception):
    """A scenario could not be found or is invalid; `problems` holds one `path: reason` per error."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class Strict(StrictModel):
    """Unknown fields are errors, strings printable, numbers strict and finite (config_types)."""


# The drill's run phase lasts at most DRILL_MAX_SECONDS: every delay in a scenario fits inside it.
DRILL_MAX_SECONDS = 600
DrillSeconds = Annotated[Number, Field(le=DRILL_MAX_SECONDS)]
DrillBytes = Annotated[Count, Field(ge=0, le=1 << 30)]


Site = Literal["main", "dr", "cold"]


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------


class FaultKind(StrEnum):
    SITE_DOWN = "site_down"
    PARTITION = "partition"
    LINK_DOWN = "link_down"
    FLAP = "flap"
    REPLICA_LAG = "replica_lag"
    REPLICATION_CUT = "replication_cut"
    CLOUDFLARE_API = "cloudflare_api"
    DUAL_OUTAGE = "dual_outage"
    CLOCK_SKEW = "clock_skew"
    OLD_PRIMARY_RETURNS = "old_primary_returns"
    PAUSE_TRAFFIC = "pause_traffic"
    BACKUP_STOP = "backup_stop"


class SiteDownParams(Strict):
    """A whole site stops: its application and (by default) its database, killed, not drained."""

    site: Site = "main"
    parts: Literal["all", "app", "database"] = Field(
        default="all", description="what stops: the app and its database, only the app, only the database"
    )
    restore_after_seconds: DrillSeconds | None = Field(
        default=None, gt=0, description="bring it back after this"
    )


class PartitionParams(Strict):
    """A real network partition between one probe region and one site (needs network namespaces)."""

    region: str = Field(min_length=1, description="probe region name, e.g. eu-west-2")
    site: Site = "main"
    heal_after_seconds: DrillSeconds | None = Field(
        default=None, gt=0, description="heal after this; never when absent"
    )


class LinkDownParams(Strict):
    """A whole probe region loses its network (its votes stop; it must not count)."""

    region: str = Field(min_length=1)
    restore_after_seconds: DrillSeconds | None = Field(default=None, gt=0)


class FlapParams(Strict):
    """The site's application goes down and up again `cycles` times."""

    site: Site = "main"
    down_seconds: DrillSeconds = Field(default=1.5, gt=0)
    up_seconds: DrillSeconds = Field(default=3.0, gt=0)
    cycles: Count = Field(default=4, ge=1, le=50)


class ReplicaLagParams(Strict):
    """Replay pauses on the DR standby while main keeps writing, so the lag exceeds the limit."""

    extra_write_bytes: DrillBytes = Field(
        default=32 * 1024 * 1024, description="WAL written on main while replay is paused"
    )
    max_lag_bytes: DrillBytes = Field(
        default=16 * 1024 * 1024, description="the watchdog's promotion limit during this drill"
    )


class ReplicationCutParams(Strict):
    """The DR standby stops receiving WAL from main (its WAL receiver points at a closed port and
    main's walsender is dropped) while main keeps committing: those commits exist on main only.
    `extra_write_bytes` of filler are written on main after the cut, so the loss a probe can see
    is beyond the watchdog's `max_lag_bytes` whatever the clients' order rate."""

    extra_write_bytes: DrillBytes = Field(
        default=256 * 1024, description="WAL written on main right after the cut"
    )
    max_lag_bytes: DrillBytes = Field(
        default=64 * 1024, description="the watchdog's promotion limit during this drill"
    )


class CloudflareApiParams(Strict):
    """The Cloudflare API emulator answers the next `count` calls with `status`."""

    status: Count = Field(default=429, ge=400, le=599)
    count: Count = Field(default=2, ge=1, le=100)
    retry_after_seconds: DrillSeconds | None = Field(default=1, ge=0, description="Retry-After header on 429")


def _main_and_dr() -> list[Site]:
    return ["main", "dr"]


class DualOutageParams(Strict):
    """Main and DR go down together: only the cold site (restored from the backup) can serve."""

    sites: list[Site] = Field(default_factory=_main_and_dr, min_length=2)


class ClockSkewParams(Strict):
    """A probe region's clock runs off by `seconds`; decisions must use receive time."""

    region: str = Field(min_length=1)
    seconds: Number = Field(
        ge=-DAY, le=DAY, description="added to the region's probe clock (negative: behind)"
    )


class OldPrimaryReturnsParams(Strict):
    """After the failover the old primary comes back as a writable primary (split-brain risk)."""

    site: Site = "main"
    after_failover_seconds: DrillSeconds = Field(default=3, ge=0, description="delay after the edge switch")


class PauseTrafficParams(Strict):
    """The clients stop ordering (a quiet hour: an idle primary writes no WAL), then maybe resume."""

    resume_after_seconds: DrillSeconds | None = Field(
        default=None, gt=0, description="the clients order again after this; never when absent"
    )


class BackupStopParams(Strict):
    """The base-backup job on the DR host stops (a timer that no longer fires): no backup after
    this; WAL archiving goes on. Needs `backups.every_seconds` (a job that runs)."""


PARAMS_BY_KIND: dict[FaultKind, type[Strict]] = {
    FaultKind.SITE_DOWN: SiteDownParams,
    FaultKind.PARTITION: PartitionParams,
    FaultKind.LINK_DOWN: LinkDownParams,
    FaultKind.FLAP: FlapParams,
    FaultKind.REPLICA_LAG: ReplicaLagParams,
    FaultKind.REPLICATION_CUT: ReplicationCutParams,
    FaultKind.CLOUDFLARE_API: CloudflareApiParams,
    FaultKind.DUAL_OUTAGE: DualOutageParams,
    FaultKind.CLOCK_SKEW: ClockSkewParams,
    FaultKind.OLD_PRIMARY_RETURNS: OldPrimaryReturnsParams,
    FaultKind.PAUSE_TRAFFIC: PauseTrafficParams,
    FaultKind.BACKUP_STOP: BackupStopParams,
}
NEEDS_NAMESPACES = {FaultKind.PARTITION, FaultKind.LINK_DOWN}


class Fault(Strict):
    at: DrillSeconds = Field(ge=0, description="seconds after the traffic starts")
    kind: FaultKind
    params: dict[str, Any] = Field(default_factory=dict, description="checked by the kind's model")
    during_state: str | None = Field(
        default=None,
        pattern=r"^[A-Z][A-Za-z]{0,79}$",
        description="played when an execution (failover or switchover) enters this state, not before `at`; "
        "skipped with a note if none does",
    )

    @model_validator(mode="after")
    def _params_match_kind(self) -> Fault:
        try:
            PARAMS_BY_KIND[self.kind].model_validate(self.params)
        except ValidationError as exc:
            raise ValueError(f"{self.kind} " + "; ".join(describe_errors(exc, prefix="params."))) from None
        return self

    @property
    def typed(self) -> Strict:
        """The parameters as the kind's model (defaults filled in)."""
        return PARAMS_BY_KIND[self.kind].model_validate(self.params)


# ---------------------------------------------------------------------------------------------
# Run settings
# ---------------------------------------------------------------------------------------------


class ProbeTimings(Strict):
    """Probe and confirmation timings the drill's watchdog uses (shorter than production)."""

    interval_seconds: DrillSeconds = Field(default=2, gt=0, description="scheduled probe round per region")
    timeout_seconds: DrillSeconds = Field(default=1, gt=0, description="one check's timeout")
    confirmation_rounds: Count = Field(default=2, ge=1, le=20, description="on-demand rounds before deciding")
    confirmation_wait_seconds: DrillSeconds = Field(
        default=2, ge=0, description="wait between confirmation rounds"
    )

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> ProbeTimings:
        if self.timeout_seconds >= self.interval_seconds:
            raise ValueError(
                f"timeout_seconds ({self.timeout_seconds:g}) must be below interval_seconds "
                f"({self.interval_seconds:g})"
            )
        return self


class ReadinessTimings(Strict):
    """How often the drill evaluates readiness (the scheduled function's code, `ScheduledReadiness`,
    against the drill's moto, emulator and PostgreSQL); `interval_seconds: null` never evaluates
    (say when a fault counts the Cloudflare API calls: readiness reads the edge too)."""

    interval_seconds: DrillSeconds | None = Field(
        default=5, ge=1, description="one evaluation this often from the run's start; null: none"
    )
    results_lookback_seconds: DrillSeconds = Field(
        default=30,
        ge=5,
        description="the probe results one evaluation reads (production reads 10 minutes): the drill "
        "keeps each evaluation cheap, since it shares the process with the watchdog it measures",
    )


class BackupSchedule(Strict):
    """The DR host's base-backup job during the run (barman-cloud-backup into the drill's S3): the
    cold site is configured with the WAL archive (`cold_site.wal_archive`) even without a cold fault,
    so readiness judges the backups; a `backup_stop` fault ends the job."""

    every_seconds: DrillSeconds | None = Field(
        default=None, gt=0, description="a base backup this often from the run's start; null: only the first"
    )
    max_age_seconds: int = Field(
        default=26 * 3600,
        ge=60,
        le=30 * 86_400,
        description="the config's cold_site.wal_archive.max_backup_age_seconds (readiness FAILs past it)",
    )


class Traffic(Strict):
    rate_per_second: Number = Field(default=10, gt=0, le=200, description="orders placed per second")
    timeout_seconds: Number = Field(default=1, gt=0, le=30, description="one order's timeout")


class OperatorCommand(Strict):
    """One command an operator types during the drill, at `at` seconds after the traffic starts.
    The drill runs it through the same code as `drctl`; the commands of one scenario run one after
    another in the order of `at` (then of the file), as one person types them.

    `after`: an operator reacts to what happened, not to a clock: the command waits, past `at`,
    until the drill has seen that event (`escalation`: a person was paged; `switch`: the edge
    moved; `split_brain_alert`: a second primary was seen; `rejoin`, `switchover`: the operator's
    own earlier command of that kind ended), and is skipped with a note if it never comes before
    the run ends."""

    at: DrillSeconds = Field(ge=0, description="seconds after the traffic starts")
    after: Literal["escalation", "switch", "split_brain_alert", "rejoin", "switchover"] | None = Field(
        default=None, description="not before the drill has seen this event"
    )


class FailoverCommand(OperatorCommand):
    """`drctl failover --to TO --reason ... [--dry-run] [--allow-data-loss] [--skip-confirm]`,
    validated like the real one."""

    command: Literal["failover"]
    to: Literal["dr", "cold"]
    reason: str = Field(min_length=3, max_length=MAX_REASON_CHARS)
    dry_run: Flag = False
    allow_data_loss: Flag = False
    skip_confirm: Flag = False


class ResetCommand(OperatorCommand):
    """`drctl reset --reason ...`: clears NEEDS_ATTENTION and the incident lock an escalation keeps."""

    command: Literal["reset"]
    reason: str = Field(min_length=3, max_length=MAX_REASON_CHARS)


class AutomationCommand(OperatorCommand):
    """`drctl pause|resume --reason ...`: the kill switch of automatic failover."""

    command: Literal["pause", "resume"]
    reason: str = Field(min_length=3, max_length=MAX_REASON_CHARS)


class RejoinCommand(OperatorCommand):
    """`drctl rejoin --site SITE [--allow-rebuild]`: the old primary becomes a streaming standby of
    the active site (through the site agents the drill then runs on both database hosts)."""

    command: Literal["rejoin"]
    site: Literal["main", "dr"] = "main"
    allow_rebuild: Flag = False
    timeout_seconds: DrillSeconds = Field(default=60, gt=0, description="the bounded wait for streaming")


class SwitchoverCommand(OperatorCommand):
    """`drctl switchover --to TO --reason ... [--dry-run] --wait`: the planned switchover state
    machine, run to its end before the operator's next command."""

    command: Literal["switchover"]
    to: Literal["main", "dr"]
    reason: str = Field(min_length=3, max_length=MAX_REASON_CHARS)
    dry_run: Flag = False


class RehearseCommand(OperatorCommand):
    """`drctl rehearse cold-site`: the restore rehearsal state machine, run to its end (launch the
    cold site as a failover would, restore, compare the row counts, record, terminate)."""

    command: Literal["rehearse"]
    what: Literal["cold-site"] = "cold-site"


OperatorAction = Annotated[
    FailoverCommand | ResetCommand | AutomationCommand | RejoinCommand | SwitchoverCommand | RehearseCommand,
    Field(discriminator="command"),
]


# ---------------------------------------------------------------------------------------------
# Expectations
# ---------------------------------------------------------------------------------------------


class Expectations(Strict):
    """What must be true at the end. A field left out is not checked."""

    failover: Flag | None = Field(default=None, description="did traffic move off main")
    target: Literal["dr", "cold"] | None = Field(
        default=None, description="where it moved; write `target: null` to require that it moved nowhere"
    )
    rto_seconds_max: DrillSeconds | None = Field(
        default=None, gt=0, description="clients' outage through the edge"
    )
    detection_seconds_max: DrillSeconds | None = Field(default=None, gt=0, description="fault to quorum")
    promotions: Count | None = Field(
        default=None, ge=0, le=1_000_000, description="exact number of promotions"
    )
    edge_writes: Count | None = Field(
        default=None, ge=0, le=1_000_000, description="exact number of edge record changes"
    )
    orders_lost_max: Count | None = Field(
        default=None, ge=0, le=1_000_000, description="committed orders missing afterwards"
    )
    orders_lost_min: Count | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="at least this many committed orders missing (a real data loss)",
    )
    orders_lost_zero: Flag | None = Field(default=None, description="shorthand for orders_lost_max: 0")
    loss_receipt_nonzero_when_lost: Flag | None = Field(
        default=None, description="orders_lost > 0 implies the watchdog's loss_receipt_bytes > 0"
    )
    data_loss_allowed: Flag | None = Field(
        default=None, description="a promotion went ahead on an operator's allow_data_loss (recorded)"
    )
    false_failovers_max: Count | None = Field(default=None, ge=0, le=1_000_000)
    escalation: Flag | None = Field(default=None, description="an escalation (NEEDS_ATTENTION) was recorded")
    split_brain_alert: Flag | None = Field(default=None, description="a split-brain alert was recorded")
    split_brain_alerts_max: Count | None = Field(
        default=None, ge=0, le=1_000_000, description="at most this many alerts that a second primary came"
    )
    split_brain_resolved: Count | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="exact number of alerts that the second primary went (all regions)",
    )
    restored_orders_equal_backup: Flag | None = Field(
        default=None, description="the cold site holds exactly the orders in the backup it restored"
    )
    serving_site: Site | None = Field(default=None, description="the site serving clients at the end")
    switchovers_done: Count | None = Field(
        default=None, ge=0, le=20, description="planned switchovers that switched over (exact)"
    )
    switchovers_refused: Count | None = Field(
        default=None, ge=0, le=20, description="planned switchovers refused before any change (exact)"
    )
    switchovers_rolled_back: Count | None = Field(
        default=None, ge=0, le=20, description="planned switchovers rolled back (exact)"
    )
    switchover_write_outage_seconds_max: DrillSeconds | None = Field(
        default=None, gt=0, description="each planned switchover's write outage, as clients saw it"
    )
    switchover_orders_lost_max: Count | None = Field(
        default=None, ge=0, le=1_000_000, description="orders the source site acknowledged and the end lacks"
    )
    rejoined: Count | None = Field(
        default=None, ge=0, le=20, description="operator rejoins that ended streaming within the lag limit"
    )
    verified: Flag | None = Field(default=None, description="the switch was verified through the edge")
    api_errors_min: Count | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="at least this many injected Cloudflare API errors were served",
    )
    shadow_decisions: Count | None = Field(
        default=None, ge=0, le=20, description="mode shadow: 'would have failed over' decisions (exact)"
    )
    clients_failing_at_end: Flag | None = Field(
        default=None, description="the clients' last outage had not ended when the run did"
    )
    dry_run_plan: Flag | None = Field(
        default=None, description="a dry run recorded what it would have done, and did none of it"
    )
    readiness_fail_notified: list[Annotated[str, Field(pattern=r"^[a-z_]{1,40}$")]] | None = Field(
        default=None,
        max_length=20,
        description="each of these readiness checks was OK (or WARN), then turned FAIL during the run, "
        "and a ReadinessChanged naming that change (the alert topic's notification) was recorded",
    )
    rehearsal: Literal["PASSED", "FAILED"] | None = Field(
        default=None,
        description="the operator's restore rehearsal ended with this outcome, instance terminated",
    )
    watchdog_says_contains: str | None = Field(
        default=None,
        min_length=3,
        description="a sentence of the watchdog (quorum, escalation, loss receipt) contains this text",
    )

    def checked(self) -> set[str]:
        """The names of the expectations this scenario states."""
        return {name for name in self.model_fields_set if getattr(self, name) is not None or name == "target"}


class Scenario(Strict):
    prose_fields = frozenset({"description"})

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    description: str = Field(min_length=1)
    replication: Literal["async", "sync"] = "async"
    failover_mode: Literal["auto", "shadow"] = Field(
        default="auto", description="the service's failover.mode: shadow decides for real and changes nothing"
    )
    probe: ProbeTimings = Field(default_factory=ProbeTimings)
    cold_restore: Literal["wal_archive", "dump"] = Field(
        default="wal_archive",
        description="how the cold site restores: base backup + archived WAL (barman-cloud, DR archives "
        "every `archive_timeout_seconds`), or the signed pg_dump taken before the first fault",
    )
    archive_timeout_seconds: int = Field(
        default=5, ge=1, le=60, description="main's archive_timeout in the drill (wal_archive only)"
    )
    traffic: Traffic = Field(default_factory=Traffic)
    readiness: ReadinessTimings = Field(default_factory=ReadinessTimings)
    backups: BackupSchedule | None = Field(
        default=None, description="base backups on a schedule during the run (the WAL archive configured)"
    )
    duration_seconds: Number = Field(
        default=60, gt=0, le=DRILL_MAX_SECONDS, description="hard bound on the run phase"
    )
    settle_seconds: DrillSeconds = Field(
        default=5, ge=0, description="traffic keeps running this long after the end"
    )
    faults: list[Fault] = Field(default_factory=list)
    operator: list[OperatorAction] = Field(
        default_factory=list, max_length=20, description="the operator's commands, each at its time"
    )
    expectations: Expectations

    @model_validator(mode="after")
    def _inside_duration(self) -> Scenario:
        for index, fault in enumerate(self.faults):
            if fault.at >= self.duration_seconds:
                raise ValueError(
                    f"faults.{index}.at ({fault.at:g}) must be below "
                    f"duration_seconds ({self.duration_seconds:g})"
                )
        for index, action in enumerate(self.operator):
            if action.at >= self.duration_seconds:
                raise ValueError(
                    f"operator.{index}.at ({action.at:g}) must be below "
                    f"duration_seconds ({self.duration_seconds:g})"
                )
        stops = [i for i, f in enumerate(self.faults) if f.kind == FaultKind.BACKUP_STOP]
        if stops and (self.backups is None or self.backups.every_seconds is None):
            raise ValueError(
                f"faults.{stops[0]}: backup_stop needs a backup job to stop: set backups.every_seconds"
            )
        if self.backups is not None and self.cold_restore != "wal_archive":
            raise ValueError("backups needs cold_restore: wal_archive (the job feeds the WAL archive)")
        return self

    @property
    def uses_site_agents(self) -> bool:
        """The operator's commands that reach the databases through the site agents."""
        return any(isinstance(action, RejoinCommand | SwitchoverCommand) for action in self.operator)

    @property
    def failover_commands(self) -> list[FailoverCommand]:
        return [action for action in self.operator if isinstance(action, FailoverCommand)]

    @property
    def needs_namespaces(self) -> bool:
        """True when a fault needs network namespaces (root): skipped with a message otherwise."""
        return any(f.kind in NEEDS_NAMESPACES for f in self.faults)

    @property
    def first_fault_at(self) -> float | None:
        return min((f.at for f in self.faults), default=None)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def shipped_scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def resolve(name_or_path: str | Path) -> Path:
    """A path to a file, or the name of a shipped scenario (`main-outage`)."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists() or "/" in str(name_or_path):
        if not candidate.exists():  # a FIFO or a device exists: load_scenario refuses it by name
            raise ScenarioError(str(name_or_path), ["(file): no such scenario file"])
        return candidate
    shipped = SCENARIO_DIR / f"{name_or_path}.yaml"
    if not shipped.is_file():
        raise ScenarioError(
            str(name_or_path), [f"(name): no shipped scenario; known: {', '.join(shipped_scenarios())}"]
        )
    return shipped


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError(source, ["(top level): expected a mapping of fields"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, describe_errors(exc)) from None


def load_scenario(name_or_path: str | Path = DEFAULT_SCENARIO) -> Scenario:
    """The scenario, read with the config's bounds (`quorum_dr.config_file`: a regular UTF-8 file
    of at most 1 MiB, nesting and integers bounded, no duplicate keys), or ScenarioError."""
    path = resolve(name_or_path)
    try:
        data = read_yaml(path)
    except FileRefused as exc:
        raise ScenarioError(str(path), [f"(file): {exc}"]) from None
    return parse_scenario(data, str(path))
