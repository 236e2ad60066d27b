"""`drctl rehearse cold-site`: a restore rehearsal of one service's cold site, followed to its end.

Starts an execution of the rehearsal state machine (`statemachines/rehearsal.asl.yaml`, deployed as
`quorum-dr-rehearsal`) with the same `RehearsalRequest` its first step parses; the service is checked
against the config (`--config`) first: it must have a cold site with `wal_archive` (the figures the
restore is compared with are recorded with its base backups). Bad input starts nothing. Progress is
the states the execution enters; the end is the recorded result's summary
(`quorum_dr.domain.rehearsal.summary_lines`), or with `--json` the result as JSON on stdout.
`--dry-run` says what would be launched and starts nothing.

Exit codes: 0 the rehearsal passed (or the dry run), 1 it failed (or is still running at
--wait-timeout; the instance is terminated by the state machine either way), 2 bad input (nothing
started), 3 AWS refused or unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from typing import Any

from quorum_dr.cli.aws_errors import AWS_ERRORS, describe_aws_error
from quorum_dr.cli.exit_codes import EXIT_AWS, EXIT_BAD_INPUT, EXIT_OK, EXIT_REFUSED
from quorum_dr.cli.operator_args import BadInput, add_config_argument, checked_service, local_user
from quorum_dr.config import Service
from quorum_dr.domain.rehearsal import RehearsalResult, rehearsal_id, summary_lines
from quorum_dr.failover.errors import InvalidInput
from quorum_dr.rehearsal.service import RehearsalRequest

STATE_MACHINE_ENV = "REHEARSAL_STATE_MACHINE_ARN"
POLL_SECONDS = 2.0
PROGRESS = {
    "BeginRehearsal": "checking the request",
    "LaunchColdSite": "launching the cold site; waiting for its bootstrap to restore and report",
    "JudgeRestore": "comparing the restored row counts with the figures recorded with the backup",
    "TerminateColdSite": "terminating the cold site",
}


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "rehearse",
        help="rehearse a restore: launch the cold site, restore, compare, terminate",
        description="Backup testing. `cold-site`: launch the service's cold site exactly as a failover "
        "would, let it restore the newest base backup and replay the archived WAL, compare its row "
        "counts with the figures recorded with the backup, record the result, terminate the instance. "
        "Never touches the edge, never promotes, never counts as a failover.",
    )
    parser.add_argument("what", choices=["cold-site"], help="what to rehearse")
    parser.add_argument("--service", required=True, help="the service's name in the config")
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the recorded result as JSON")
    parser.add_argument("--dry-run", action="store_true", help="say what would be launched; start nothing")
    parser.add_argument(
        "--state-machine-arn",
        default=os.environ.get(STATE_MACHINE_ENV),
        help=f"the rehearsal state machine (default: ${STATE_MACHINE_ENV})",
    )
    parser.add_argument(
        "--wait-timeout",
        type=int,
        default=None,
        help="give up following after this many seconds (default: the rehearsal's timeout + 10 minutes)",
    )
    parser.set_defaults(func=run_rehearse)


def _needs(service: Service) -> None:
    cold = service.cold_site
    if cold is None:
        raise BadInput(f"--service: {service.name} has no cold site to rehearse")
    if cold.wal_archive is None:
        raise BadInput(
            f"--service: {service.name}'s cold site restores a pg_dump; the rehearsal compares the restore "
            "with the figures recorded with base backups: configure cold_site.wal_archive"
        )


def _plan(service: Service) -> str:
    cold = service.cold_site
    assert cold is not None and cold.wal_archive is not None
    image = cold.ami_id or (f"the AMI in SSM {cold.ami_ssm_parameter}" if cold.ami_ssm_parameter else None)
    template = cold.launch_template_name or f"quorum-dr-{service.name}-cold (the CDK app's)"
    source = f"{template} and {image}" if image else template
    return (
        f"dry run: would launch one cold site of {service.name} in {cold.region} from launch template "
        f"{source} as {rehearsal_id(service.name, time.time())}, wait up to "
        f"{cold.rehearsal.timeout_seconds} s for it to restore s3://{cold.backup_bucket}/"
        f"{cold.backup_prefix.strip('/')}/{cold.wal_archive.server}, compare the row counts "
        f"(tolerance {cold.rehearsal.row_tolerance}), record the result and terminate it; nothing started"
    )


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
    for _ in range(20):  # bounded: a rehearsal has a dozen events
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    return events


def _exited(events: list[dict[str, Any]], state: str) -> dict[str, Any] | None:
    for event in events:
        details = event.get("stateExitedEventDetails")
        if details and details.get("name") == state:
            output = json.loads(details.get("output") or "{}")
            return output if isinstance(output, dict) else None
    return None


def follow(
    sfn: Any,
    arn: str,
    timeout: float,
    say: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll the execution until it ends (at most `timeout` s), saying each state as it is entered."""
    deadline = time.monotonic() + timeout
    said: set[str] = set()
    while True:
        described = dict(sfn.describe_execution(executionArn=arn))
        events = _history(sfn, arn)
        for event in events:
            name = (event.get("stateEnteredEventDetails") or {}).get("name")
            if name in PROGRESS and name not in said:
                said.add(name)
                say(PROGRESS[name])
        if described["status"] != "RUNNING" or time.monotonic() >= deadline:
            return described, events
        sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def result_of(events: list[dict[str, Any]]) -> RehearsalResult | None:
    """The judged result as the execution holds it (JudgeRestore's output), with the termination."""
    judged = _exited(events, "JudgeRestore")
    raw = (judged or {}).get("result")
    if not isinstance(raw, dict):
        return None
    fields = {k: v for k, v in raw.items() if k in RehearsalResult.model_fields}
    terminated = (_exited(events, "TerminateColdSite") or {}).get("terminated")
    if isinstance(terminated, dict) and terminated.get("reason"):
        fields["terminated"] = str(terminated["reason"])
    return RehearsalResult.model_validate(fields)


def run_rehearse(
    args: argparse.Namespace, sfn: Any = None, sleep: Callable[[float], None] = time.sleep
) -> int:
    def say(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    def work() -> int:
        service = checked_service(args)
        _needs(service)
        assert service.cold_site is not None
        timeout = (
            args.wait_timeout
            if args.wait_timeout is not None
            else service.cold_site.rehearsal.timeout_seconds + 600
        )
        if timeout <= 0:
            raise BadInput("--wait-timeout: must be a positive number of seconds")
        request = RehearsalRequest(service=service.name, requested_by=f"drctl (local user {local_user()})")
        if args.dry_run:
            print(_plan(service))
            return EXIT_OK
        if not args.state_machine_arn:
            raise BadInput(f"no state machine: give --state-machine-arn or set {STATE_MACHINE_ENV}")
        client = sfn or _client("stepfunctions")
        name = f"{rehearsal_id(service.name, time.time())}-{secrets.token_hex(3)}"
        arn = str(
            client.start_execution(
                stateMachineArn=args.state_machine_arn, name=name, input=request.model_dump_json()
            )["executionArn"]
        )
        say(f"started rehearsal of {service.name}'s cold site: {arn}")
        described, events = follow(client, arn, timeout, say, sleep)
        if described["status"] == "RUNNING":
            say(f"still running after {timeout} s; the state machine terminates the instance when it ends")
            return EXIT_REFUSED
        result = result_of(events)
        if result is None:
            cause = " ".join(str(described.get("cause") or "").split())
            say(
                f"{described['status']} ({described.get('error') or 'no error name'}): {cause or 'no result'}"
            )
            return EXIT_REFUSED
        if args.json:
            print(result.model_dump_json(indent=2))
        else:
            for line in summary_lines(result):
                print(line)
        return EXIT_OK if result.passed and described["status"] == "SUCCEEDED" else EXIT_REFUSED

    try:
        return work()
    except (BadInput, InvalidInput) as exc:
        print(" ".join(str(exc).split()), file=sys.stderr)
        return EXIT_BAD_INPUT
    except AWS_ERRORS as exc:
        print(describe_aws_error("run the rehearsal", exc), file=sys.stderr)
        return EXIT_AWS


def _client(name: str) -> Any:
    import boto3

    return boto3.client(name)
