"""`drctl switchover`: start a planned switchover of one service to main or dr.

The request is validated with the same `SwitchoverRequest` the state machine's first step uses,
and the service against the config (`--config`), before any AWS call: malformed input starts
nothing. The execution is named after the incident. With `--wait` the command follows the
execution to its end and prints its outcome. Exit codes as every drctl command
(`quorum_dr.cli.exit_codes`): 0 started (with --wait: switched over, or the dry run passed), 1 not
confirmed, refused, rolled back or escalated, 2 bad input, 3 AWS refused or unreachable.
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
from quorum_dr.config import Service
from quorum_dr.config_types import MAX_REASON_CHARS
from quorum_dr.failover.errors import InvalidInput
from quorum_dr.switchover.request import SwitchoverRequest, parse_request

STATE_MACHINE_ENV = "SWITCHOVER_STATE_MACHINE_ARN"
POLL_SECONDS = 2.0
DEFAULT_WAIT_SECONDS = 3600


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "switchover",
        help="start a planned switchover to main or dr",
        description="Start a planned switchover of one service to main or dr (maintenance, or going "
        "home after a failover): an execution of the switchover state machine named after the "
        "incident. It refuses unless the target is a streaming standby within the lag limit, the "
        "quorum sees the target UP and no incident holds the lock; then it freezes writes, stops the "
        "active site cleanly, waits for the target to replay its final position, checks the data, "
        "promotes, switches and verifies, and rolls back if anything fails before the promotion. "
        "The input is checked first (the service must be in the config); on a terminal you confirm "
        "by typing the service's name.",
    )
    parser.add_argument("--service", required=True, help="the service's name in the config")
    parser.add_argument("--to", required=True, choices=["main", "dr"], help="the site to switch to")
    add_config_argument(parser)
    parser.add_argument(
        "--reason",
        default=None,
        help=f"why; kept in the incident record (default 'planned switchover to SITE'; control characters "
        f"removed, at most {MAX_REASON_CHARS})",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="still starts a real execution, which runs every check and records what it would do, "
        "but takes no lock and freezes, stops, promotes and switches nothing",
    )
    parser.add_argument("--incident-id", default=None, help="the execution's name (default: a new one)")
    parser.add_argument(
        "--state-machine-arn",
        default=os.environ.get(STATE_MACHINE_ENV),
        help=f"the switchover state machine (default: ${STATE_MACHINE_ENV})",
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation on a terminal")
    parser.add_argument(
        "--wait",
        action="store_true",
        help="follow the execution to its end and print its outcome (exit 0 only when it switched over)",
    )
    parser.add_argument(
        "--wait-timeout",
        type=int,
        default=DEFAULT_WAIT_SECONDS,
        help=f"with --wait: give up waiting after this many seconds (default {DEFAULT_WAIT_SECONDS}); the "
        "execution goes on",
    )
    parser.set_defaults(func=run_switchover)


def new_incident_id(service: str, now: float) -> str:
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"switchover-{service}-{stamp}-{secrets.token_hex(3)}"


def build_request(args: argparse.Namespace, requested_by: str) -> SwitchoverRequest:
    reason = reason_text(args.reason) if args.reason is not None else f"planned switchover to {args.to}"
    return parse_request(
        {
            "service": args.service,
            "to": args.to,
            "reason": reason,
            "requested_by": requested_by,
            "dry_run": args.dry_run,
            "incident_id": args.incident_id or new_incident_id(args.service, time.time()),
        }
    )


def _needs(service: Service, to: str) -> None:
    """What the state machine would refuse for lack of config, said before any AWS call."""
    if service.database is None:
        raise BadInput(f"--service: {service.name} has no database configured: a switchover moves a primary")
    missing = [site for site in ("main", "dr") if getattr(service.sites, site).agent is None]
    if missing:
        raise BadInput(
            f"--service: {service.name} has no site agent on {' and '.join(missing)} "
            f"({', '.join(f'sites.{s}.agent' for s in missing)}); a switchover to {to} needs one on both "
            "database hosts"
        )


def outcome(described: dict[str, Any]) -> tuple[int, str]:
    """The exit code and the sentence of a finished execution."""
    status = str(described.get("status"))
    if status == "SUCCEEDED":
        output = json.loads(described.get("output") or "{}")
        state = output.get("state") or {}
        if state.get("reason"):
            return EXIT_OK, str(state["reason"])
        closed = output.get("closed") or {}
        return EXIT_REFUSED, "refused: " + str(closed.get("reason") or "see drctl status")
    cause = " ".join(str(described.get("cause") or "").split())
    return (
        EXIT_REFUSED,
        f"{status} ({described.get('error') or 'no error name'}): {cause or 'see drctl status'}",
    )


def wait_for(
    sfn: Any, execution_arn: str, timeout: float, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """describe_execution until it is no longer RUNNING, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        described = dict(sfn.describe_execution(executionArn=execution_arn))
        if described["status"] != "RUNNING" or time.monotonic() >= deadline:
            return described
        sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def run_switchover(args: argparse.Namespace, sfn: Any = None, sts: Any = None) -> int:
    def work() -> int:
        service = checked_service(args)
        _needs(service, args.to)
        if args.wait_timeout <= 0:
            raise BadInput("--wait-timeout: must be a positive number of seconds")
        # Checked with a placeholder first: a malformed request costs no AWS call.
        build_request(args, requested_by="(checked before asking AWS who you are)")
        if not args.state_machine_arn:
            raise BadInput(f"no state machine: give --state-machine-arn or set {STATE_MACHINE_ENV}")
        request = build_request(args, requested_by=caller_identity(sts or _client("sts")))
        what = (
            f"Switch {request.service} over to {request.to}{' (dry run)' if request.dry_run else ''}"
            f" as {request.requested_by}: {request.reason}"
        )
        if not confirmed(args, what, request.service):
            print("not confirmed: no execution was started", file=sys.stderr)
            return EXIT_REFUSED
        client = sfn or _client("stepfunctions")
        assert request.incident_id is not None
        arn = str(
            client.start_execution(
                stateMachineArn=args.state_machine_arn,
                name=request.incident_id,
                input=request.model_dump_json(),
            )["executionArn"]
        )
        print(f"started switchover {request.incident_id}{' (dry run)' if request.dry_run else ''}: {arn}")
        if not args.wait:
            return EXIT_OK
        described = wait_for(client, arn, args.wait_timeout)
        if described["status"] == "RUNNING":
            print(f"still running after {args.wait_timeout} s: follow it with drctl status", file=sys.stderr)
            return EXIT_REFUSED
        code, sentence = outcome(described)
        print(sentence, file=sys.stdout if code == EXIT_OK else sys.stderr)
        return code

    try:
        return work()
    except (BadInput, InvalidInput) as exc:
        print(" ".join(str(exc).split()), file=sys.stderr)
        return EXIT_BAD_INPUT
    except AWS_ERRORS as exc:
        print(describe_aws_error("start the switchover execution", exc), file=sys.stderr)
        return EXIT_AWS


def _client(name: str) -> Any:
    import boto3

    return boto3.client(name)
