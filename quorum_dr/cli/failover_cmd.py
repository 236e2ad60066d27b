"""`drctl failover|approve|veto|status|reset`: the operator's side of the failover state machine.

`failover` validates its input with the same `FailoverRequest` the state machine's first step
uses and starts nothing when it is malformed. AWS names come from flags or the environment
(STATE_MACHINE_ARN, STATE_TABLE_NAME).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

from quorum_dr.failover.errors import InvalidInput
from quorum_dr.failover.operator import OperatorError, answer_request, reset, status
from quorum_dr.failover.request import FailoverRequest, parse_manual

EXIT_INVALID = 2


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    failover = subparsers.add_parser("failover", help="start a manual failover")
    failover.add_argument("--to", required=True, help="dr or cold")
    failover.add_argument("--reason", required=True, help="why; kept in the incident record")
    failover.add_argument("--service", required=True)
    failover.add_argument("--dry-run", action="store_true", help="run every check, change nothing")
    failover.add_argument("--allow-data-loss", action="store_true", help="promote even if the replica lags")
    failover.add_argument("--skip-confirm", action="store_true", help="skip the confirmation rounds")
    failover.add_argument("--incident-id", default=None)
    failover.add_argument("--state-machine-arn", default=os.environ.get("STATE_MACHINE_ARN"))
    failover.set_defaults(func=run_failover)
    for verb in ("approve", "veto"):
        answer = subparsers.add_parser(verb, help=f"{verb} a failover waiting for an operator")
        answer.add_argument("incident")
        answer.add_argument("--service", required=True)
        answer.add_argument("--table", default=os.environ.get("STATE_TABLE_NAME"))
        answer.set_defaults(func=run_answer, decision=verb)
    show = subparsers.add_parser("status", help="the service's state, lock and last incidents")
    show.add_argument("--service", required=True)
    show.add_argument("--table", default=os.environ.get("STATE_TABLE_NAME"))
    show.set_defaults(func=run_status)
    clear = subparsers.add_parser("reset", help="clear NEEDS_ATTENTION and the incident lock")
    clear.add_argument("--service", required=True)
    clear.add_argument("--reason", required=True)
    clear.add_argument("--table", default=os.environ.get("STATE_TABLE_NAME"))
    clear.add_argument(
        "--state-machine-arn",
        default=os.environ.get("STATE_MACHINE_ARN"),
        help="asked whether the lock's execution still runs",
    )
    clear.add_argument(
        "--force",
        action="store_true",
        help="reset even while the lock's execution is RUNNING (recorded in the state with the reason)",
    )
    clear.set_defaults(func=run_reset)


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


def build_request(args: argparse.Namespace) -> FailoverRequest:
    data = {
        "service": args.service,
        "to": args.to,
        "reason": args.reason,
        "dry_run": args.dry_run,
        "allow_data_loss": args.allow_data_loss,
        "skip_confirm": args.skip_confirm,
        "requested_by": getpass.getuser(),
        "incident_id": args.incident_id or new_incident_id(args.service, time.time()),
    }
    return parse_manual(data)


def run_failover(args: argparse.Namespace, sfn: Any = None) -> int:
    try:
        request = build_request(args)
    except InvalidInput as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    if not args.state_machine_arn:
        print("no state machine: give --state-machine-arn or set STATE_MACHINE_ARN", file=sys.stderr)
        return EXIT_INVALID
    sfn = sfn or _client("stepfunctions")
    arn = start_failover(request, sfn=sfn, state_machine_arn=args.state_machine_arn)
    mode = " (dry run)" if request.dry_run else ""
    print(f"started incident {request.incident_id}{mode}: {arn}")
    return 0


def _client(name: str) -> Any:
    import boto3

    return boto3.client(name)


def _store(args: argparse.Namespace) -> Any:
    from quorum_dr.adapters.dynamodb_state import DynamoStateStore

    if not args.table:
        raise OperatorError("no state table: give --table or set STATE_TABLE_NAME")
    return DynamoStateStore(args.table)


def run_answer(args: argparse.Namespace) -> int:
    try:
        sentence = answer_request(
            _store(args),
            _client("stepfunctions"),
            service=args.service,
            incident_id=args.incident,
            decision=args.decision,
            by=getpass.getuser(),
            now=time.time(),
        )
    except OperatorError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    print(sentence)
    return 0


def run_status(args: argparse.Namespace) -> int:
    try:
        print(json.dumps(status(_store(args), args.service), indent=2, default=str))
    except OperatorError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    return 0


def run_reset(args: argparse.Namespace, sfn: Any = None) -> int:
    try:
        print(
            reset(
                _store(args),
                args.service,
                reason=args.reason,
                by=getpass.getuser(),
                now=time.time(),
                sfn=sfn or (_client("stepfunctions") if args.state_machine_arn else None),
                state_machine_arn=args.state_machine_arn,
                force=args.force,
            )
        )
    except OperatorError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    return 0
