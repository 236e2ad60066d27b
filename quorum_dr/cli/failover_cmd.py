"""`drctl failover|approve|veto|status|reset`: the operator's side of the failover state machine.

`failover` validates its input with the same `FailoverRequest` the state machine's first step
uses and starts nothing when it is malformed. Every command checks `--service` against the config
(`--config`, `QDR_CONFIG`, or the config ./cdk.json names) before it calls AWS. AWS names come from
flags or the environment (STATE_MACHINE_ARN, STATE_TABLE_NAME). Exit codes: see
`quorum_dr.cli.exit_codes` (0 done, 1 not confirmed, 2 bad input, 3 AWS refused or unreachable).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from quorum_dr.cli.aws_errors import AWS_ERRORS, describe_aws_error
from quorum_dr.cli.exit_codes import EXIT_AWS, EXIT_BAD_INPUT, EXIT_OK, EXIT_REFUSED
from quorum_dr.cli.operator_args import (
    BadInput,
    add_config_argument,
    caller_identity,
    checked_service,
    confirmed,
    reason_text,
)
from quorum_dr.config_types import MAX_REASON_CHARS
from quorum_dr.domain import history
from quorum_dr.failover.errors import InvalidInput
from quorum_dr.failover.operator import OperatorError, answer_request, reset, set_automation, status
from quorum_dr.failover.request import INCIDENT_ID, FailoverRequest, parse_manual

EXIT_INVALID = EXIT_BAD_INPUT  # the name the tests and older callers use

_REASON_HELP = f"why; kept in the incident record (control characters removed, at most {MAX_REASON_CHARS})"


def _service_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", required=True, help="the service's name in the config")
    add_config_argument(parser)


def _table_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--table",
        default=os.environ.get("STATE_TABLE_NAME"),
        help="the state table (default: $STATE_TABLE_NAME)",
    )


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    failover = subparsers.add_parser(
        "failover",
        help="start a manual failover",
        description="Start a manual failover of one service to its DR or cold site: an execution of "
        "the failover state machine named after the incident. The input is checked first (the "
        "service must be in the config); on a terminal you confirm by typing the service's name.",
    )
    failover.add_argument("--to", required=True, choices=["dr", "cold"], help="the site to fail over to")
    failover.add_argument("--reason", required=True, help=_REASON_HELP)
    _service_argument(failover)
    failover.add_argument(
        "--dry-run",
        action="store_true",
        help="still starts a real execution, which runs every check and records what it would "
        "do, but promotes, switches and fences nothing",
    )
    failover.add_argument("--allow-data-loss", action="store_true", help="promote even if the replica lags")
    failover.add_argument("--skip-confirm", action="store_true", help="skip the confirmation rounds")
    failover.add_argument("--incident-id", default=None, help="the execution's name (default: a new one)")
    failover.add_argument(
        "--state-machine-arn",
        default=os.environ.get("STATE_MACHINE_ARN"),
        help="the failover state machine (default: $STATE_MACHINE_ARN)",
    )
    failover.add_argument("--yes", action="store_true", help="do not ask for confirmation on a terminal")
    failover.set_defaults(func=run_failover)
    for verb, meaning in (("approve", "let it proceed"), ("veto", "stop it")):
        answer = subparsers.add_parser(
            verb,
            help=f"{verb} a failover waiting for an operator",
            description=f"Answer {verb} to an incident waiting for an operator ({meaning}); the "
            "answer and who gave it are recorded in the incident.",
        )
        answer.add_argument("incident", help="the incident id (the execution's name)")
        _service_argument(answer)
        _table_argument(answer)
        answer.set_defaults(func=run_answer, decision=verb)
    show = subparsers.add_parser(
        "status",
        help="the service's state, lock and last incidents",
        description=(
            "Print the service's state, its incident lock and its five newest incidents (failovers, "
            "switchovers, rejoins; newest first by when they started) as JSON."
        ),
    )
    _service_argument(show)
    _table_argument(show)
    show.set_defaults(func=run_status)
    history = subparsers.add_parser(
        "history",
        help="the service's incidents with their figures, or one incident's timeline",
        description=(
            "Print the service's incidents (failovers, switchovers, rejoins), newest first by when "
            "they started: trigger, target, how each ended, detection, RTO and data loss. With "
            "--incident, that incident in full: its figures and every step of its timeline."
        ),
    )
    _service_argument(history)
    _table_argument(history)
    history.add_argument(
        "--limit", type=_limit, default=20, help="how many incidents, newest first (1 to 1000; default 20)"
    )
    history.add_argument("--incident", help="show this incident in full (its timeline)")
    history.add_argument("--json", action="store_true", help="print JSON instead of text")
    history.set_defaults(func=run_history)
    clear = subparsers.add_parser(
        "reset",
        help="clear NEEDS_ATTENTION and the incident lock",
        description="Clear NEEDS_ATTENTION and the incident lock after a person has looked; the "
        "active site stays as it is. On a terminal you confirm by typing the service's name.",
    )
    _service_argument(clear)
    clear.add_argument("--reason", required=True, help=_REASON_HELP)
    _table_argument(clear)
    clear.add_argument("--yes", action="store_true", help="do not ask for confirmation on a terminal")
    clear.add_argument(
        "--state-machine-arn",
        default=os.environ.get("STATE_MACHINE_ARN"),
        help="the failover state machine, asked whether the lock's execution still runs",
    )
    clear.add_argument(
        "--force",
        action="store_true",
        help="reset even while the lock's execution is RUNNING (recorded in the state with the reason)",
    )
    clear.set_defaults(func=run_reset)
    for verb, enabled, meaning in (
        (
            "pause",
            False,
            "automatic triggers end before taking the incident lock; drctl failover still works",
        ),
        ("resume", True, "automatic triggers act again"),
    ):
        switch = subparsers.add_parser(
            verb,
            help=f"{verb} automatic failover of a service (the kill switch)",
            description=f"{verb.capitalize()} automatic failover of one service: {meaning}. Who, when "
            "and why are kept in the service's state (drctl status shows them).",
        )
        _service_argument(switch)
        switch.add_argument("--reason", required=True, help=_REASON_HELP)
        _table_argument(switch)
        switch.set_defaults(func=run_automation, enabled=enabled, verb=verb)


def new_incident_id(service: str, now: float) -> str:
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"manual-{service}-{stamp}-{secrets.token_hex(3)}"


def start_failover(request: FailoverRequest, *, sfn: Any, state_machine_arn: str) -> str:
    """Start the execution named after the incident; return its ARN."""
    assert request.incident_id is not None
    answer = sfn.start_execution(
        stateMachineArn=state_machine_arn,
        name=request.incident_id,
        input=request.model_dump_json(),
    )
    return str(answer["executionArn"])


def build_request(args: argparse.Namespace, requested_by: str) -> FailoverRequest:
    data = {
        "service": args.service,
        "to": args.to,
        "reason": reason_text(args.reason),
        "dry_run": args.dry_run,
        "allow_data_loss": args.allow_data_loss,
        "skip_confirm": args.skip_confirm,
        "requested_by": requested_by,
        "incident_id": args.incident_id or new_incident_id(args.service, time.time()),
    }
    return parse_manual(data)


def _operator_command(action: str, work: Callable[[], int]) -> int:
    """Run `work`; bad input, a refused operator command or an AWS error becomes one line and its
    exit code instead of a traceback."""
    try:
        return work()
    except (BadInput, InvalidInput, OperatorError) as exc:
        print(" ".join(str(exc).split()), file=sys.stderr)
        return EXIT_BAD_INPUT
    except AWS_ERRORS as exc:
        print(describe_aws_error(action, exc), file=sys.stderr)
        return EXIT_AWS


def run_failover(args: argparse.Namespace, sfn: Any = None, sts: Any = None) -> int:
    def work() -> int:
        service = checked_service(args)
        reason_text(args.reason)
        if args.to == "cold" and service.cold_site is None:
            raise BadInput(f"--to cold: service {service.name} has no cold site configured")
        # Checked with a placeholder first: a malformed request costs no AWS call.
        build_request(args, requested_by="(checked before asking AWS who you are)")
        if not args.state_machine_arn:
            raise BadInput("no state machine: give --state-machine-arn or set STATE_MACHINE_ARN")
        request = build_request(args, requested_by=caller_identity(sts or _client("sts")))
        what = (
            f"Fail over {request.service} to {request.to}{' (dry run)' if request.dry_run else ''}"
            f" as {request.requested_by}: {request.reason}"
        )
        if not confirmed(args, what, request.service):
            print("not confirmed: no execution was started", file=sys.stderr)
            return EXIT_REFUSED
        client = sfn or _client("stepfunctions")
        arn = start_failover(request, sfn=client, state_machine_arn=args.state_machine_arn)
        mode = " (dry run)" if request.dry_run else ""
        print(f"started incident {request.incident_id}{mode}: {arn}")
        return EXIT_OK

    return _operator_command("start the failover execution", work)


def _client(name: str) -> Any:
    import boto3

    return boto3.client(name)


def _store(args: argparse.Namespace) -> Any:
    from quorum_dr.adapters.dynamodb_state import DynamoStateStore

    if not args.table:
        raise OperatorError("no state table: give --table or set STATE_TABLE_NAME")
    return DynamoStateStore(args.table)


def _incident(value: str) -> str:
    if not INCIDENT_ID.match(value or ""):
        raise BadInput(
            f"incident: {value[:90]!r} is not an incident id (letters, digits, '-' and '_', at most 80)"
        )
    return value


def run_answer(args: argparse.Namespace, sfn: Any = None, sts: Any = None, store: Any = None) -> int:
    def work() -> int:
        service = checked_service(args)
        incident = _incident(args.incident)
        sentence = answer_request(
            store or _store(args),
            sfn or _client("stepfunctions"),
            service=service.name,
            incident_id=incident,
            decision=args.decision,
            by=caller_identity(sts or _client("sts")),
            now=time.time(),
        )
        print(sentence)
        return EXIT_OK

    return _operator_command(f"{args.decision} incident {args.incident!r:.90}", work)


def run_status(args: argparse.Namespace, store: Any = None) -> int:
    def work() -> int:
        service = checked_service(args)
        print(json.dumps(status(store or _store(args), service.name), indent=2, default=str))
        return EXIT_OK

    return _operator_command("read the service's state", work)


def _limit(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value[:20]!r} is not a whole number") from None
    if not 1 <= number <= 1000:
        raise argparse.ArgumentTypeError(f"{number} is not between 1 and 1000")
    return number


def run_history(args: argparse.Namespace, store: Any = None) -> int:
    def work() -> int:
        service = checked_service(args)
        incident = _incident(args.incident) if args.incident is not None else None
        states = store or _store(args)
        if incident is not None:
            record = states.get_incident(service.name, incident)
            if record is None:
                raise OperatorError(f"{service.name} has no incident {incident!r}")
            if args.json:
                print(json.dumps(record.model_dump(mode="json"), indent=2, default=str))
            else:
                print(history.detail(record))
            return EXIT_OK
        records = states.list_incidents(service.name, limit=args.limit)
        if args.json:
            print(json.dumps([history.row(r) for r in records], indent=2, default=str))
        else:
            print(history.table(records, service.name))
        return EXIT_OK

    return _operator_command("read the service's incidents", work)


def run_reset(args: argparse.Namespace, sts: Any = None, store: Any = None, sfn: Any = None) -> int:
    def work() -> int:
        service = checked_service(args)
        reason = reason_text(args.reason)
        states = store or _store(args)
        by = caller_identity(sts or _client("sts"))
        if not confirmed(args, f"Reset {service.name} as {by}: {reason}", service.name):
            print("not confirmed: nothing was reset", file=sys.stderr)
            return EXIT_REFUSED
        machines = sfn or (_client("stepfunctions") if args.state_machine_arn else None)
        print(
            reset(
                states,
                service.name,
                reason=reason,
                by=by,
                now=time.time(),
                sfn=machines,
                state_machine_arn=args.state_machine_arn,
                force=args.force,
            )
        )
        return EXIT_OK

    return _operator_command("reset the service", work)


def run_automation(args: argparse.Namespace, sts: Any = None, store: Any = None) -> int:
    def work() -> int:
        service = checked_service(args)
        reason = reason_text(args.reason)
        states = store or _store(args)
        by = caller_identity(sts or _client("sts"))
        print(
            set_automation(states, service.name, enabled=args.enabled, reason=reason, by=by, now=time.time())
        )
        return EXIT_OK

    return _operator_command(f"{args.verb} automatic failover", work)
