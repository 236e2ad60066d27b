"""`drctl readiness --service S [--config C] [--json]`: would a failover work now?
`drctl list [--service S]`: each service at a glance, from the same facts.

Each check prints one line, `OK   name  reason` (or WARN / FAIL), then the overall line; `--json`
prints the `Readiness` model instead. What each check reads and when it fails:
`quorum_dr/domain/readiness.py`; how the facts are read: `quorum_dr/adapters/readiness.py`. It only
reads: no table, edge record, instance or secret is changed.

`list` prints, per service, one table like `patronictl list`: each site's database (role, WAL
positions, replay lag, streaming, as the newest PostgreSQL check saw it), each region's vote on
its application and the quorum's verdict; above it the active site, the site the edge serves, the
state and automation; below it the lock, the cooldown and the readiness verdict with every check
that is not OK (`quorum_dr/domain/cluster_view.py`). Same reads, same exit codes, worst service.

Exit codes: 0 every check OK or WARN; 1 a check FAIL; 2 bad input (nothing was read); 3 AWS
unreachable or refusing (no credentials, no network, the state or results table unreadable): the
checks are still printed, then one `cannot ...` line per such failure on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from quorum_dr.cli.exit_codes import EXIT_AWS, EXIT_BAD_INPUT, EXIT_OK, EXIT_REFUSED
from quorum_dr.cli.operator_args import (
    BadInput,
    add_config_argument,
    config_path,
    configured_service,
    load_operator_config,
    service_name,
)
from quorum_dr.config_types import clean_text

STATE_MACHINE_ENVS = {"failover": "STATE_MACHINE_ARN", "switchover": "SWITCHOVER_STATE_MACHINE_ARN"}


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    check = subparsers.add_parser(
        "readiness",
        help="would a failover work now? each check OK / WARN / FAIL with its reason",
        description="Check, before an incident, that a failover of one service would work: the "
        "standby streams within the lag limit, every probe region reports, the service is not "
        "NEEDS_ATTENTION and holds no stale lock (automation paused: WARN), the edge points at the "
        "active site, the cold site can launch (AMI, launch template, RunInstances dry run), the "
        "Cloudflare token verifies and reads what it edits, and every secret exists where it is "
        "read. Reads only. Exit 0 all OK (WARN too); 1 a FAIL; 2 bad input; 3 AWS unreachable.",
    )
    check.add_argument("--service", required=True, help="the service's name in the config")
    _add_sources(check)
    check.add_argument("--json", action="store_true", help="print the checks as JSON (the Readiness model)")
    check.set_defaults(func=run_readiness)

    listing = subparsers.add_parser(
        "list",
        help="each service at a glance: sites' roles, WAL positions, lag, votes, edge, state, lock",
        description="One table per service, like patronictl list: each site's database role, WAL "
        "positions, replay lag and streaming (the newest PostgreSQL check of any region), each probe "
        "region's vote on its application and the quorum's verdict; the active site (*), the site "
        "the edge serves (@), the state, automation, the lock, the cooldown and readiness with every "
        "check that is not OK. Reads only. Exit codes as drctl readiness, for the worst service.",
    )
    listing.add_argument("--service", help="one service (default: every service in the config)")
    _add_sources(listing)
    listing.add_argument("--json", action="store_true", help="print the views as JSON (ClusterView models)")
    listing.set_defaults(func=run_list)


def _add_sources(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument(
        "--table",
        default=os.environ.get("STATE_TABLE_NAME"),
        help="the state table (default: $STATE_TABLE_NAME)",
    )
    parser.add_argument(
        "--results-table",
        default=os.environ.get("RESULTS_TABLE_NAME"),
        help="the probe results table (default: $RESULTS_TABLE_NAME)",
    )
    parser.add_argument(
        "--state-machine-arn",
        default=os.environ.get(STATE_MACHINE_ENVS["failover"]),
        help="the failover state machine, asked whether the lock's execution still runs "
        f"(default: ${STATE_MACHINE_ENVS['failover']})",
    )
    parser.add_argument(
        "--switchover-state-machine-arn",
        default=os.environ.get(STATE_MACHINE_ENVS["switchover"]),
        help=f"the switchover state machine, asked the same (default: ${STATE_MACHINE_ENVS['switchover']})",
    )


def _machine(value: str | None, flag: str) -> str | None:
    if value and ":stateMachine:" not in value:
        raise BadInput(f"{flag}: {clean_text(value)[:120]!r} is not a state machine ARN")
    return value or None


def _gatherer(args: argparse.Namespace, names: list[str] | None, session: Any) -> tuple[Any, list[Any]]:
    """The gatherer and the services to read; BadInput before anything is read."""
    config = load_operator_config(args.config)
    where = str(config_path(args.config))
    services = [
        configured_service(config, name, where) for name in (names or [s.name for s in config.services])
    ]
    if not args.table:
        raise BadInput("no state table: give --table or set STATE_TABLE_NAME")
    if not args.results_table:
        raise BadInput("no results table: give --results-table or set RESULTS_TABLE_NAME")
    machines = {
        "failover": _machine(args.state_machine_arn, "--state-machine-arn"),
        "switchover": _machine(args.switchover_state_machine_arn, "--switchover-state-machine-arn"),
    }
    from quorum_dr.adapters.readiness import ReadinessGatherer

    gatherer = ReadinessGatherer(
        config,
        state_table=args.table,
        results_table=args.results_table,
        state_machine_arns=machines,
        session=session,
    )
    return gatherer, services


def _exit_code(gatherer: Any, overall: list[str]) -> int:
    if gatherer.unreachable:
        for line in dict.fromkeys(gatherer.unreachable):  # each once, in order
            print(line, file=sys.stderr)
        return EXIT_AWS
    return EXIT_REFUSED if "FAIL" in overall else EXIT_OK


def run_readiness(args: argparse.Namespace, session: Any = None) -> int:
    """Check, print, and return the exit code. `session`: a boto3 Session (tests)."""
    try:
        gatherer, (service,) = _gatherer(args, [service_name(args.service)], session)
    except BadInput as exc:
        print(" ".join(str(exc).split()), file=sys.stderr)
        return EXIT_BAD_INPUT
    readiness = gatherer.assess(service)
    if args.json:
        print(readiness.model_dump_json(indent=2))
    else:
        print("\n".join(readiness.lines()))
    return _exit_code(gatherer, [readiness.overall.value])


def run_list(args: argparse.Namespace, session: Any = None) -> int:
    """One view per service, printed; the exit code of the worst. `session`: a boto3 Session (tests)."""
    try:
        names = [service_name(args.service)] if args.service else None
        gatherer, services = _gatherer(args, names, session)
    except BadInput as exc:
        print(" ".join(str(exc).split()), file=sys.stderr)
        return EXIT_BAD_INPUT
    from quorum_dr.domain.cluster_view import cluster_view
    from quorum_dr.domain.readiness import assess

    views = []
    for service in services:
        facts = gatherer.gather(service)
        views.append(cluster_view(facts, gatherer.config, assess(facts, gatherer.config)))
    if args.json:
        print(json.dumps([view.model_dump(mode="json") for view in views], indent=2))
    else:
        print("\n\n".join("\n".join(view.lines()) for view in views))
    return _exit_code(gatherer, [view.readiness.value for view in views])
