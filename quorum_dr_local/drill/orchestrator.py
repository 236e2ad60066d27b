"""`drctl drill`: build the sandbox, run a scenario against the real watchdog, report, tear down.

1. Pre-flight: a scenario that needs network namespaces is skipped (exit 0, a report that says
   `skipped: true` and why) when they are unavailable; PostgreSQL 15 must be installed.
2. Build (`DrillWorld`, `DrillCloud`): PostgreSQL primary (main) + streaming standby (dr), the
   booking application per site, the Cloudflare emulator and the edge proxy, moto (in-process and
   as a server on the control address), one probe agent per probe region (in its namespace when
   root), the failover state machine with the real handlers bound to the real adapters.
3. Run: clients order through the edge; the fault plan plays; the watchers record votes,
   quorum, states, promotions, switches; a manual start goes through `FailoverRequest`.
4. Observe the end (edge writes, API errors, dry-run steps, the orders the serving database
   holds), write report.json, report.md, timeline.png (and events.jsonl, watchdog.log, and the
   run's config with its URLs redacted, watchdog.json: `drctl replay` reads the two).
5. Tear down whatever happened (success, failure, exception, Ctrl-C, SIGTERM).
Exit code: 0 when every expectation is met (or the scenario was skipped), 1 when one is unmet or
the drill failed, 130 when interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import secrets as random_secrets
import shlex
import signal
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

from quorum_dr.cli.exit_codes import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED
from quorum_dr.config import BackupManifestPolicy
from quorum_dr.domain.incident_record import IncidentRecord
from quorum_dr_local.drill.config import drill_config, replay_config_json, uses_cold_site
from quorum_dr_local.drill.faults import WorldFaults
from quorum_dr_local.drill.file_sync import FileReplication
from quorum_dr_local.drill.layout import (
    ADMIN_SECRET,
    AGENT_SECRET,
    EVENT_BUS,
    HOSTNAME,
    MONITOR_SECRET,
    RESULTS_TABLE,
    SERVICE,
    STATE_TABLE,
    TOKEN_SECRET,
    aws_env,
)
from quorum_dr_local.drill.processes import wait_http
from quorum_dr_local.drill.progress import ProgressView
from quorum_dr_local.drill.report import REPORT_KEYS, write_report
from quorum_dr_local.drill.scenario import Scenario
from quorum_dr_local.drill.schedule import plan, play
from quorum_dr_local.drill.timeline import EventLog
from quorum_dr_local.drill.world import DrillWorld
from quorum_dr_local.standins import netns
from quorum_dr_local.standins.postgres import DEFAULT_BIN_DIR
from quorum_dr_local.system_config import COLD_REGION, HOME_REGION, PROBE_REGIONS, QUORUM

EXIT_UNMET, EXIT_INVALID = EXIT_REFUSED, EXIT_BAD_INPUT
EXECUTION_DRAIN_SECONDS = 30.0


class Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into the same clean shutdown as Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted()


def skipped_report(scenario: Scenario, folder: Path, reason: str) -> dict[str, Any]:
    report: dict[str, Any] = dict.fromkeys(REPORT_KEYS)
    report.update(
        scenario=scenario.name, failover=False, expectations={}, ok=None, skipped=True, skip_reason=reason
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (folder / "report.md").write_text(
        f"# Drill `{scenario.name}`: SKIPPED\n\n{reason}\n\nNothing was run and no expectation was judged.\n",
        encoding="utf-8",
    )
    return report


def preflight(scenario: Scenario) -> str | None:
    """None when the drill can run; otherwise why not (an error, not a skip)."""
    if not (DEFAULT_BIN_DIR / "postgres").exists():
        return f"PostgreSQL 15 is not installed ({DEFAULT_BIN_DIR}/postgres is missing): run `make setup`"
    return None


def run(scenario: Scenario, report_dir: str | Path) -> int:
    folder = Path(report_dir)
    why = netns.availability()
    if scenario.needs_namespaces and why is not None:
        reason = netns.SKIP_MESSAGE.format(why=why)
        skipped_report(scenario, folder, f"skipped: {reason}")
        print(f"drill {scenario.name}: skipped: {reason}", file=sys.stderr)
        return EXIT_OK
    problem = preflight(scenario)
    if problem:
        print(f"drill {scenario.name}: {problem}", file=sys.stderr)
        return EXIT_INVALID
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("events.jsonl", "report.json", "report.md", "timeline.png", "watchdog.json"):
        (folder / stale).unlink(missing_ok=True)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return Drill(scenario, folder, namespaces=why is None).run()
    finally:
        signal.signal(signal.SIGTERM, previous)


# The operator types a failover again at most this often when another execution held the lock.
OPERATOR_ATTEMPTS = 5
# The failover's states up to and including the lock: past them, an execution is no longer
# deciding whether it may run.
DETECTION_STATES = frozenset(
    {
        "ValidateInput",
        "TriggerApplies",
        "IsDryRun",
        "AcquireIncidentLock",
        "LockUnavailable",
        "DescribeLockHolder",
    }
)


class Drill:
    def __init__(self, scenario: Scenario, folder: Path, *, namespaces: bool) -> None:
        self.scenario = scenario
        self.folder = folder
        self.log = EventLog(folder / "events.jsonl")
        self.view = ProgressView()
        self.log.subscribe(self.view.on_event)
        self.world = DrillWorld(scenario, self.log, namespaces=namespaces)
        self.faults = WorldFaults(self.world)
        self.cloud: Any = None
        self.files: FileReplication | None = None
        self.watchers: list[Any] = []
        self.traffic: Any = None
        self.stop = threading.Event()
        self.timers: list[threading.Timer] = []
        self.notes: list[str] = []
        self._sink: Any = None
        self.agent_key = random_secrets.token_hex(32)
        self._streams: list[tuple[logging.StreamHandler[Any], Any]] = []

    # -- the whole run ---------------------------------------------------------------------------

    def run(self) -> int:
        outcome, error = EXIT_OK, None
        try:
            self._quiet_watchdog_logs()
            self.build()
            self.exercise()
            self.observe_end()
        except KeyboardInterrupt:
            outcome, error = EXIT_INTERRUPTED, "interrupted (Ctrl-C or SIGTERM): tore everything down"
        except Exception as exc:  # noqa: BLE001 - reported, then torn down
            outcome, error = EXIT_UNMET, f"the drill failed: {type(exc).__name__}: {exc}"
            (self.folder / "drill-error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        finally:
            self.view.phase("tearing down")
            problems = self.teardown()
        if not any(e.kind == "run_finished" for e in self.log.events):
            self.log.record("run_finished")
        self.log.close()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # matplotlib: an empty panel has no legend
            report = write_report(self.log.events, self.folder, self.scenario)
        if error or problems or self.notes:
            report["drill_notes"] = [n for n in [error, *self.notes, *problems] if n]
            (self.folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        self.view.close()
        for handler, stream in reversed(self._streams):  # give the loggers back their streams
            if stream is not None:
                handler.setStream(stream)
        if self._sink is not None:
            self._sink.close()
        self._summary(report, error)
        if outcome != EXIT_OK:
            return outcome
        return EXIT_OK if report["ok"] else EXIT_UNMET

    def _quiet_watchdog_logs(self) -> None:
        """The in-process handlers log JSON lines (Powertools): into watchdog.log, not the terminal."""
        if self._sink is None:
            self._sink = open(self.folder / "watchdog.log", "a", encoding="utf-8")  # noqa: SIM115
        for name in ["quorum-dr", *logging.Logger.manager.loggerDict]:
            if not name.startswith("quorum-dr"):
                continue
            for handler in logging.getLogger(name).handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is not self._sink:
                    self._streams.append((handler, handler.setStream(self._sink)))
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "QuorumDR")
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # EMF is printed, not logged

    # -- build ---------------------------------------------------------------------------------

    def build(self) -> None:
        from quorum_dr.adapters.dynamodb_state import DynamoStateStore
        from quorum_dr.failover import wiring
        from quorum_dr_local.drill.cloud import DrillCloud
        from quorum_dr_local.standins.cloudflare_emulator import seed_for_service

        self.view.phase("building the sandbox: network, AWS (moto), PostgreSQL")
        layout = self.world.plan()
        self.cloud = DrillCloud(layout).start()
        self.world.start_databases()
        main = self.world.clusters["main"]
        secrets = {
            MONITOR_SECRET: json.dumps(main.roles.monitor.as_secret()),
            ADMIN_SECRET: json.dumps(main.roles.superuser.as_secret()),
            TOKEN_SECRET: self.world.token,
            # the backup manifest's HMAC key: the drill's backup signs latest.json, the cold
            # site's bootstrap verifies it (quorum_dr.adapters.postgres_backup)
            BackupManifestPolicy().key_secret: random_secrets.token_hex(32),
            AGENT_SECRET: self.agent_key,  # both site agents verify requests with it
        }
        self.cloud.create_resources(secrets)
        config = drill_config(self.scenario, layout, cold_ami=self.cloud.cold_ami())
        self.config = config
        cold_site = config.service(SERVICE).cold_site
        if cold_site is not None and cold_site.wal_archive is not None:
            self.view.phase("building the sandbox: WAL archiving on DR and a base backup (barman-cloud)")
            made = self.world.start_wal_archive(cold_site.wal_archive)
            self.log.record(
                "backup_taken",
                at=made.finished_at,
                method="barman-cloud",
                backup_id=made.backup_id,
                lsn=made.end_xlog,
                archive_timeout_seconds=cold_site.wal_archive.archive_timeout_seconds,
            )
        self.world.write_config(config)
        # beside events.jsonl, so that `drctl replay --config watchdog.json --results events.jsonl` works
        replayable = json.dumps(replay_config_json(config), indent=2)
        (self.folder / "watchdog.json").write_text(replayable + "\n", encoding="utf-8")
        self.view.phase("building the sandbox: applications, edge, probe regions")
        self.world.start_app("main")
        self.world.start_app("dr")
        self.files = FileReplication(self.world).start()
        self.world.start_edge(seed_for_service(config.service(SERVICE), self.world.token))
        self.world.start_probe_agents()
        agents = {region: self.world.agent_url(region) for region in PROBE_REGIONS}
        timeout = 2 * config.probe.timeout_seconds + 5
        harness = self.cloud.start_state_machine(agents, timeout)
        self.harness = harness
        self._write_drctl_env(harness.machine_arn)
        if self.scenario.uses_site_agents:
            self.world.start_site_agents(self.agent_key)
        store = DynamoStateStore(STATE_TABLE)
        ports = self._ports(config, store)
        wiring.use(ports)
        self._wire_rehearsal(config, ports)
        self._quiet_watchdog_logs()  # again: loading the handlers made their loggers
        wait_http(
            f"http://{layout.control}:{layout.edge_port}/health",
            "the edge proxy",
            headers={"Host": HOSTNAME},
        )

    def _wire_rehearsal(self, config: Any, ports: Any) -> None:
        """The rehearsal's ports: the failover's own cold-site launcher (the same ColdSiteLaunch),
        the figures in the drill's S3, EC2 termination, the state table, the home bus."""
        from quorum_dr.adapters.dynamodb_state import DynamoStandbyWatch
        from quorum_dr.adapters.eventbridge import EventBridgePublisher
        from quorum_dr.adapters.rehearsal import DynamoRehearsalStore, Ec2InstanceTerminator, s3_figures
        from quorum_dr.rehearsal import wiring as rehearsal_wiring
        from quorum_dr.rehearsal.service import RehearsalPorts

        rehearsal_wiring.use(
            RehearsalPorts(
                config=config,
                launcher=ports.launcher,
                figures=s3_figures(),
                terminator=Ec2InstanceTerminator,
                store=DynamoRehearsalStore(STATE_TABLE, region=HOME_REGION),
                events=EventBridgePublisher.from_name(EVENT_BUS, region=HOME_REGION),
                service_state=DynamoStandbyWatch(STATE_TABLE, region=HOME_REGION).service_state,
            )
        )

    def _ports(self, config: Any, store: Any) -> Any:
        from quorum_dr.adapters.secrets import SecretsManagerSecrets
        from quorum_dr.failover.production import production_ports
        from quorum_dr.settings import LambdaSettings

        settings = LambdaSettings.model_validate(
            {
                "QUORUM_DR_CONFIG_PATH": str(self.world.config_path),
                "RESULTS_TABLE_NAME": RESULTS_TABLE,
                "STATE_TABLE_NAME": STATE_TABLE,
                "EVENT_BUS_NAME": EVENT_BUS,
                "ALERT_TOPIC_ARN": self.cloud.topic_arn,
                "PROBE_FUNCTION_ARNS": self.cloud.probe_function_arns(),
                "STATE_MACHINE_ARN": self.harness.machine_arn,
                "AWS_REGION": HOME_REGION,
            }
        )
        return production_ports(
            settings, config=config, store=store, secrets=SecretsManagerSecrets(max_age=300)
        )

    # -- run -----------------------------------------------------------------------------------

    def exercise(self) -> None:
        import boto3

        from quorum_dr.adapters.dynamodb_results import DynamoDbResultStore
        from quorum_dr_local.drill.observe import EventForwarder, ExecutionWatcher, ResultWatcher
        from quorum_dr_local.standins.traffic import TrafficClient

        layout = self.world.layout
        scenario = self.scenario
        self.view.phase("running: traffic through the edge")
        if uses_cold_site(scenario):
            self._start_cold_site_player()
        forwarder = EventForwarder(
            boto3.client("sqs", region_name=HOME_REGION),
            self.cloud.queue_url,
            self._start_execution,
            self.log,
        )
        executions = ExecutionWatcher(self.harness.sfn, self.harness.machine_arn, self.log)
        executions.on_switch.append(self._after_switch)
        self.executions = executions
        switchovers = ExecutionWatcher(self.harness.sfn, self.cloud.switchover_arn, self.log)
        started = time.time()
        results = ResultWatcher(
            DynamoDbResultStore.from_name(RESULTS_TABLE, ttl_seconds=86400, region=HOME_REGION),
            SERVICE,
            self.log,
            since=started,
        )
        # readiness first: its last evaluation (at the end) publishes before the forwarder's last look
        self.watchers = [*self._readiness_watchers(), forwarder, executions, switchovers, results]
        self.traffic = TrafficClient(
            layout.control,
            layout.edge_port,
            HOSTNAME,
            rate_per_second=scenario.traffic.rate_per_second,
            duration_seconds=scenario.duration_seconds + scenario.settle_seconds,
            timeout_seconds=scenario.traffic.timeout_seconds,
            on_attempt=self._attempt,
        )
        self.faults.traffic = self.traffic
        self.log.record(
            "run_started",
            scenario=scenario.name,
            regions=list(PROBE_REGIONS),
            quorum=QUORUM,
            namespaces=self.world.namespaces,
        )
        zero = time.monotonic()
        for watcher in self.watchers:
            watcher.start()
        self.traffic.start()
        if uses_cold_site(scenario) and scenario.cold_restore == "dump":
            self._schedule(min(scenario.first_fault_at or 5.0, 10.0) / 2, self._take_backup)
        if scenario.operator:
            operator = threading.Thread(target=self._operate, args=(zero,), name="operator", daemon=True)
            operator.start()
        actions = plan(scenario)
        player = threading.Thread(target=self._play, args=(actions, zero), name="fault-plan", daemon=True)
        player.start()
        armed = [self._arm_during(fault, zero) for fault in scenario.faults if fault.during_state]
        self.view.phase("running: faults as planned")
        if self.stop.wait(scenario.duration_seconds):
            return
        self.view.phase("settling: traffic goes on, the watchdog finishes")
        self.stop.wait(scenario.settle_seconds)
        self.traffic.stop()
        forwarder.paused = True
        deadline = time.monotonic() + EXECUTION_DRAIN_SECONDS
        while executions.running() and time.monotonic() < deadline:
            time.sleep(0.2)
        if executions.running():
            self.notes.append(f"{executions.running()} execution(s) still running when the drill ended")
        for fault, played in armed:
            if not played.is_set():
                self.notes.append(
                    f"{fault.kind} during {fault.during_state} skipped: no execution entered it"
                )
        player.join(timeout=5)

    def _readiness_watchers(self) -> list[Any]:
        """The readiness evaluation every few seconds, and the DR host's backup job, as the
        scenario asks (quorum_dr_local.drill.readiness, quorum_dr_local.drill.backup_job)."""
        from quorum_dr_local.drill.backup_job import BackupJob
        from quorum_dr_local.drill.readiness import ReadinessWatch

        found: list[Any] = []
        timings = self.scenario.readiness
        if timings.interval_seconds is not None:
            watch = ReadinessWatch(
                self.config,
                SERVICE,
                self.log,
                interval=timings.interval_seconds,
                state_table=STATE_TABLE,
                results_table=RESULTS_TABLE,
                event_bus=EVENT_BUS,
                state_machine_arns={
                    "failover": self.harness.machine_arn,
                    "switchover": self.cloud.switchover_arn,
                },
                results_lookback_seconds=timings.results_lookback_seconds,
            )
            watch.warm_up()
            found.append(watch)
        cold_site = self.config.service(SERVICE).cold_site
        archive = cold_site.wal_archive if cold_site is not None else None
        backups = self.scenario.backups
        if backups is not None and backups.every_seconds is not None and archive is not None:
            job = BackupJob(self.world, archive, self.log, every_seconds=backups.every_seconds)
            self.faults.backups = job
            found.append(job)
        return found

    def _attempt(self, a: Any) -> None:
        self.log.record(
            "attempt",
            at=a.at,
            ok=a.ok,
            status=a.status,
            site=a.site,
            order_id=a.order_id,
            latency_ms=round(a.latency_ms, 1),
            error=a.error,
        )

    def _play(self, actions: list[Any], zero: float) -> None:
        try:
            play(actions, self.faults, self.log, self.stop, started_monotonic=zero)
        except Exception as exc:  # noqa: BLE001 - noted in the report; the run goes on
            self.notes.append(f"a fault could not be played: {type(exc).__name__}: {exc}")

    def _arm_during(self, fault: Any, zero: float) -> tuple[Any, threading.Event]:
        """A fault played when an execution (failover or switchover) first enters
        `fault.during_state`, not before `fault.at`: its first action in the execution's own thread,
        after the state is entered and before the state's work (SfnHarness.on_state_entered), so
        that work meets the fault; any later actions (a heal) on their own thread, as planned after
        it. Played once. The event is set once it was played."""
        from quorum_dr_local.drill.schedule import triggered

        played = threading.Event()
        guard = threading.Lock()

        def entered(execution: str) -> None:
            if self.stop.is_set() or time.monotonic() < zero + fault.at:
                return
            with guard:
                if played.is_set():
                    return
                played.set()
            actions = triggered(fault)
            now = [a for a in actions if a.at <= 0]
            later = [a for a in actions if a.at > 0]
            began = time.monotonic()
            self._play(now, began)
            if later:
                threading.Thread(
                    target=self._play, args=(later, began), name="fault-trigger", daemon=True
                ).start()

        self.harness.on_state_entered(fault.during_state, entered)
        return fault, played

    def _schedule(self, delay: float, call: Any) -> None:
        def guarded() -> None:
            if self.stop.is_set():
                return
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - noted in the report
                self.notes.append(
                    f"{getattr(call, '__name__', 'a step')} failed: {type(exc).__name__}: {exc}"
                )

        timer = threading.Timer(delay, guarded)
        timer.daemon = True
        self.timers.append(timer)
        timer.start()

    def _start_execution(self, event: dict[str, Any], name: str) -> str:
        return self.harness.start(event, name=name)

    def _operate(self, zero: float) -> None:
        """The operator's commands, one after another in the order of their time (a person typing
        them), each through the same code as `drctl`. A command that fails is noted in the report
        and the next one still runs, as the operator would go on."""
        from quorum_dr_local.drill.scenario import (
            AutomationCommand,
            FailoverCommand,
            RehearseCommand,
            RejoinCommand,
            ResetCommand,
            SwitchoverCommand,
        )

        for action in sorted(self.scenario.operator, key=lambda a: a.at):
            if self.stop.wait(max(0.0, zero + action.at - time.monotonic())):
                return
            while action.after and not any(e.kind == action.after for e in self.log.events):
                if self.stop.wait(0.2):  # bounded by the run: the stop event ends every wait
                    self.notes.append(f"operator {action.command} skipped: no {action.after} was seen")
                    return
            try:
                if isinstance(action, FailoverCommand):
                    self._operator_failover(action)
                elif isinstance(action, ResetCommand):
                    self._operator_reset(action.reason)
                elif isinstance(action, AutomationCommand):
                    self._operator_automation(action.command == "resume", action.reason)
                elif isinstance(action, RejoinCommand):
                    self._operator_rejoin(action)
                elif isinstance(action, SwitchoverCommand):
                    self._operator_switchover(action)
                elif isinstance(action, RehearseCommand):
                    self._operator_rehearse()
            except Exception as exc:  # noqa: BLE001 - noted in the report; the run goes on
                self.notes.append(f"operator {action.command} failed: {type(exc).__name__}: {exc}")

    def _operator_failover(self, command: Any) -> None:
        """What `drctl failover` does (the same functions): validate, then start the execution.
        Then what the operator does next: if the execution ended AlreadyHandling (an automatic
        trigger held the incident lock at that moment), wait until the lock is free and type the
        command again, a few times at most."""
        from quorum_dr.adapters.dynamodb_state import DynamoStateStore
        from quorum_dr.cli.failover_cmd import new_incident_id, start_failover
        from quorum_dr.failover.request import parse_manual

        store = DynamoStateStore(STATE_TABLE)
        for attempt in range(1, OPERATOR_ATTEMPTS + 1):
            request = parse_manual(
                {
                    "service": SERVICE,
                    "to": command.to,
                    "reason": command.reason,
                    "dry_run": command.dry_run,
                    "allow_data_loss": command.allow_data_loss,
                    "skip_confirm": command.skip_confirm,
                    "requested_by": "drill-operator",
                    "incident_id": new_incident_id(SERVICE, time.time()),
                }
            )
            arn = start_failover(request, sfn=self.harness.sfn, state_machine_arn=self.harness.machine_arn)
            self.log.record(
                "fault",
                fault="manual_start",
                phase="start",
                to=command.to,
                dry_run=command.dry_run,
                attempt=attempt,
            )
            if not self._ended_already_handling(arn):
                return
            self.notes.append(
                f"operator failover {request.incident_id}: another execution held the incident lock "
                "(AlreadyHandling); typed again once the lock was free"
            )
            while store.get_lock(SERVICE) is not None and not self.stop.wait(0.5):
                pass  # bounded by the run: the stop event ends the wait
            if self.stop.is_set():
                return

    def _ended_already_handling(self, arn: str) -> bool:
        """Whether the execution ended at AlreadyHandling; waits while it is in its first states
        (bounded by the run), and answers False as soon as it went past the lock."""
        while not self.stop.is_set():
            states = self.harness.states_entered(arn)
            if "AlreadyHandling" in states:
                return True
            if any(state not in DETECTION_STATES for state in states):
                return False
            self.stop.wait(0.3)
        return False

    def _operator_reset(self, reason: str) -> None:
        """What `drctl reset` does (the same function): clear NEEDS_ATTENTION and the incident lock."""
        from quorum_dr.adapters.dynamodb_state import DynamoStateStore
        from quorum_dr.failover.operator import reset

        sentence = reset(
            DynamoStateStore(STATE_TABLE),
            SERVICE,
            reason=reason,
            by="drill-operator",
            now=time.time(),
            sfn=self.harness.sfn,
            state_machine_arn=self.harness.machine_arn,
        )
        self.log.record("fault", fault="operator_reset", phase="start", reason=sentence)

    def _operator_automation(self, enabled: bool, reason: str) -> None:
        """What `drctl pause|resume` does (the same function): the kill switch of automation."""
        from quorum_dr.adapters.dynamodb_state import DynamoStateStore
        from quorum_dr.failover.operator import set_automation

        sentence = set_automation(
            DynamoStateStore(STATE_TABLE),
            SERVICE,
            enabled=enabled,
            reason=reason,
            by="drill-operator",
            now=time.time(),
        )
        self.log.record(
            "fault", fault="operator_resume" if enabled else "operator_pause", phase="start", reason=sentence
        )

    def _operator_rejoin(self, command: Any) -> None:
        """What `drctl rejoin` does (the same service and ports): the old primary becomes a
        streaming standby of the active site, through the site agents; each sentence is logged."""
        import boto3

        from quorum_dr.adapters.dynamodb_state import DynamoStateStore
        from quorum_dr.adapters.secrets import SecretsManagerSecrets
        from quorum_dr.cli.rejoin_cmd import _ports
        from quorum_dr.failover.rejoin import RejoinRequest, rejoin

        config = self.config
        service = config.service(SERVICE)
        ports = _ports(
            config,
            service,
            STATE_TABLE,
            self.cloud.topic_arn,
            store=DynamoStateStore(STATE_TABLE),
            secrets=SecretsManagerSecrets(max_age=300),
            sns=boto3.client("sns", region_name=HOME_REGION),
        )

        def progress(sentence: str) -> None:
            self.log.record("rejoin_step", site=command.site, reason=sentence)

        ports.progress = progress
        self.log.record("fault", fault="operator_rejoin", phase="start", site=command.site)
        request = RejoinRequest(
            service=SERVICE,
            site=command.site,
            allow_rebuild=command.allow_rebuild,
            timeout_seconds=command.timeout_seconds,
            requested_by="drill-operator",
        )
        result = rejoin(service, request, ports)
        self.log.record(
            "rejoin",
            site=command.site,
            ok=result.ok,
            outcome=str(result.outcome),
            reason=result.reason,
            lag_bytes=result.lag_bytes,
        )

    def _operator_switchover(self, command: Any) -> None:
        """What `drctl switchover --wait` does (the same request model): start the planned
        switchover state machine and follow it to its end (bounded by the run); then log what it
        did, from its execution and its incident record."""
        from quorum_dr.adapters.dynamodb_state import DynamoStateStore
        from quorum_dr.cli.switchover_cmd import new_incident_id
        from quorum_dr.switchover.request import parse_request

        request = parse_request(
            {
                "service": SERVICE,
                "to": command.to,
                "reason": command.reason,
                "requested_by": "drill-operator",
                "dry_run": command.dry_run,
                "incident_id": new_incident_id(SERVICE, time.time()),
            }
        )
        assert request.incident_id is not None
        started = self.log.now()
        self.log.record(
            "fault", fault="operator_switchover", phase="start", to=command.to, dry_run=command.dry_run
        )
        sfn = self.harness.sfn
        arn = sfn.start_execution(
            stateMachineArn=self.cloud.switchover_arn,
            name=request.incident_id,
            input=request.model_dump_json(),
        )["executionArn"]
        described = sfn.describe_execution(executionArn=arn)
        while described["status"] == "RUNNING" and not self.stop.wait(0.25):  # bounded by the run
            described = sfn.describe_execution(executionArn=arn)
        states = self.harness.states_entered(arn)
        record = DynamoStateStore(STATE_TABLE).get_incident(SERVICE, request.incident_id)
        figures = dict((record.switchover if record is not None else None) or {})
        # the last sentence that says why (a notification's receipt only says it was told)
        reasons = [e.reason for e in record.timeline if not e.step.startswith("notify")] if record else []
        outcome = {"SwitchedOver": "switched_over", "Refused": "refused", "RolledBack": "rolled_back"}.get(
            states[-1] if states else "", "escalated" if "Escalate" in states else "unfinished"
        )
        if figures.get("promoted_at") and not command.dry_run:
            self.log.record(
                "promotion",
                at=figures["promoted_at"],
                site=command.to,
                reason="planned switchover",
                planned=True,
            )
        self.log.record(
            "switchover",
            started_at=started,
            ended_at=self.log.now(),
            execution=request.incident_id,
            to=command.to,
            dry_run=command.dry_run,
            outcome=outcome,
            status=described["status"],
            last_state=states[-1] if states else None,
            figures=figures,
            reason=reasons[-1] if reasons else described.get("cause"),
        )

    def _operator_rehearse(self) -> None:
        """What `drctl rehearse cold-site` does (the same request model): start the rehearsal state
        machine, follow it to its end (bounded by the run), then log its result and whether its
        instance is gone."""
        from quorum_dr.cli.rehearse_cmd import result_of
        from quorum_dr.domain.rehearsal import rehearsal_id
        from quorum_dr.rehearsal.service import RehearsalRequest

        request = RehearsalRequest(service=SERVICE, requested_by="drill-operator")
        started = self.log.now()
        self.log.record("fault", fault="operator_rehearsal", phase="start")
        sfn = self.harness.sfn
        arn = sfn.start_execution(
            stateMachineArn=self.cloud.rehearsal_arn,
            name=f"{rehearsal_id(SERVICE, time.time())}-drill",
            input=request.model_dump_json(),
        )["executionArn"]
        described = sfn.describe_execution(executionArn=arn)
        while described["status"] == "RUNNING" and not self.stop.wait(0.25):  # bounded by the run
            described = sfn.describe_execution(executionArn=arn)
        result = result_of(self.harness.history(arn))
        import boto3

        ec2 = boto3.client("ec2", region_name=COLD_REGION)
        tagged = ec2.describe_instances(
            Filters=[{"Name": "tag:quorum-dr:incident", "Values": [result.rehearsal_id if result else "-"]}]
        )
        states = [i["State"]["Name"] for r in tagged.get("Reservations", []) for i in r.get("Instances", [])]
        self.log.record(
            "rehearsal",
            started_at=started,
            ended_at=self.log.now(),
            status=described["status"],
            outcome=result.outcome if result else None,
            reason=result.reason if result else described.get("cause"),
            backup_id=result.backup_id if result else None,
            restored_lsn=result.restored_lsn if result else None,
            tables={k: v.model_dump() for k, v in result.tables.items()} if result else {},
            terminated=bool(states) and all(s in ("shutting-down", "terminated") for s in states),
        )

    def _after_switch(self, target: str) -> None:
        armed = self.faults.old_primary_return
        if armed is None:
            return
        site, delay = armed
        self.faults.old_primary_return = None

        def come_back() -> None:
            self.faults.start_site(site, "all")
            self.log.record("fault", fault="old_primary_returns", phase="end", site=site)
            self.log.record("site_truth", site=site, up=True)

        self._schedule(delay, come_back)

    def _write_drctl_env(self, failover_arn: str) -> None:
        """`<report>/drctl.env`: what `drctl readiness` / `drctl list` need to look at this drill
        while it runs (README, "Running the drill"): its config, its tables and state machines, and
        its AWS (the moto server on the control address; moto's keys, no secret)."""
        env = {
            "QDR_CONFIG": str(self.world.config_path),
            "STATE_TABLE_NAME": STATE_TABLE,
            "RESULTS_TABLE_NAME": RESULTS_TABLE,
            "STATE_MACHINE_ARN": failover_arn,
            "SWITCHOVER_STATE_MACHINE_ARN": self.cloud.switchover_arn,
            **{k: v for k, v in aws_env(self.world.layout).items() if k.startswith("AWS_")},
        }
        lines = [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
        (self.folder / "drctl.env").write_text(
            "# source this while the drill runs, then: drctl readiness --service booking; drctl list\n"
            + "\n".join(lines)
            + "\n",
            encoding="utf-8",
        )

    def _take_backup(self) -> None:
        from quorum_dr_local.drill.cold_instance import take_drill_backup

        take_drill_backup(self.world.clusters["main"], self.log)

    def _start_cold_site_player(self) -> None:
        from quorum_dr_local.drill.cold_instance import ColdInstance

        env = aws_env(self.world.layout)
        cold_site = self.config.service(SERVICE).cold_site if self.config else None
        player = ColdInstance(
            self.world, self.log, env, wal_archive=cold_site.wal_archive if cold_site else None
        )
        self.cold = player
        player.start()
        self.watchers.append(player)

    # -- the end -------------------------------------------------------------------------------

    def observe_end(self) -> None:
        self.view.phase("observing the end state")
        self._stop_watchers()
        cold = getattr(self, "cold", None)
        if cold is not None and cold.thread is not None:
            cold.thread.join(timeout=60)
            if cold.outcome and not cold.booted_ok:
                self.notes.append(cold.outcome)
        for entry in self.world.emulator_log():
            if entry.get("fault"):
                self.log.record(
                    "api_error", at=entry["at"], status=entry.get("status"), path=entry.get("path")
                )
            elif entry.get("write"):
                self.log.record("edge_write", at=entry["at"], target=entry.get("write"))
        for incident in self.harness_incidents():
            if incident.shadow and incident.outcome == "shadow":
                decided = incident.decided_at or incident.finished_at or time.time()
                said = [step.reason for step in incident.timeline if step.reason.startswith("shadow:")]
                self.log.record("shadow_decision", at=float(decided), reason=said[-1] if said else "shadow")
            for step in incident.timeline:
                if step.reason.startswith("dry run"):
                    self.log.record("dry_run_step", at=float(step.at), sentence=step.reason)
        serving = self.world.serving_site()
        ids = self.world.order_ids(serving) if serving else None
        if serving and ids is not None:
            self.log.record("orders_present", site=serving, order_ids=ids)
        self.log.record("run_finished")

    def _stop_watchers(self) -> None:
        """Stop every watcher and the file replication (started in the build, not with the
        watchers), and note the errors they met."""
        for watcher in [*self.watchers, *([self.files] if self.files is not None else [])]:
            watcher.stop()
            self.notes += [f"{watcher.name}: {e}" for e in watcher.errors[:3]]

    def harness_incidents(self) -> list[IncidentRecord]:
        from quorum_dr.adapters.dynamodb_state import DynamoStateStore

        return DynamoStateStore(STATE_TABLE).list_incidents(SERVICE, limit=200)

    def teardown(self) -> list[str]:
        from quorum_dr.failover import wiring

        self.stop.set()
        for timer in self.timers:
            timer.cancel()
        if self.traffic is not None:
            self.traffic.stop()
        for watcher in self.watchers:
            watcher._stop.set()
        if self.files is not None:
            self.files.stop()
        wiring.use(None)
        from quorum_dr.rehearsal import wiring as rehearsal_wiring

        rehearsal_wiring.use(None)
        problems = self.world.teardown()
        if self.cloud is not None:
            try:
                self.cloud.stop()
            except Exception as exc:  # noqa: BLE001
                problems.append(f"moto: {exc}")
        return problems

    def _summary(self, report: dict[str, Any], error: str | None) -> None:
        verdict = "PASS" if report.get("ok") else "FAIL"
        print(
            f"drill {report['scenario']}: {verdict}: failover={report['failover']} target={report['target']} "
            f"rto={report['rto_seconds']} s promotions={report['promotions']} "
            f"edge_writes={report['edge_writes']} "
            f"orders committed={report['orders_committed']} lost={report['orders_lost']}",
            file=sys.stderr,
        )
        for name, judged in report.get("expectations", {}).items():
            if not judged["met"]:
                print(f"  unmet {name}: {judged['reason']}", file=sys.stderr)
        if error:
            print(f"  {error}", file=sys.stderr)
        print(f"  report: {self.folder}/report.md, report.json, timeline.png", file=sys.stderr)
