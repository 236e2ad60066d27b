"""A stand-in for the two `aws stepfunctions` commands the cold-site bootstrap runs.

    python -m quorum_dr_local.drill.task_report stepfunctions send-task-success \
        [--region R] --task-token T --task-output JSON
    python -m quorum_dr_local.drill.task_report stepfunctions send-task-failure \
        [--region R] --task-token T --error E --cause C

The drill gives it to `cold_site/bootstrap.sh` as `QDR_AWS`, so the script runs unchanged on a
machine without the AWS CLI; it calls the same Step Functions API with boto3 (and so honours
`AWS_ENDPOINT_URL`, the drill's moto server).
"""

from __future__ import annotations

import argparse
import sys

import boto3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="task_report")
    parser.add_argument("service", choices=["stepfunctions"])
    parser.add_argument("command", choices=["send-task-success", "send-task-failure"])
    parser.add_argument("--region")
    parser.add_argument("--task-token", required=True)
    parser.add_argument("--task-output")
    parser.add_argument("--error", default="Error")
    parser.add_argument("--cause", default="")
    args = parser.parse_args(argv)
    sfn = boto3.client("stepfunctions", region_name=args.region)
    if args.command == "send-task-success":
        sfn.send_task_success(taskToken=args.task_token, output=args.task_output or "{}")
    else:
        sfn.send_task_failure(taskToken=args.task_token, error=args.error, cause=args.cause[:32000])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
