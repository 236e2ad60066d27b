"""`drctl drill [SCENARIO | PATH] [--report DIR]`: build the sandbox, run a scenario, write the report.

The drill lives in `quorum_dr_local` (the local world, never in a Lambda): imported only when the
command is built or run, so the rest of `quorum_dr` never imports it.
"""

from __future__ import annotations

import argparse
import sys

EXIT_UNMET = 1
EXIT_INVALID = 2


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from quorum_dr_local.drill.scenario import DEFAULT_SCENARIO

    drill = subparsers.add_parser(
        "drill",
        help="run a failover drill on this machine and report",
        description="Build main, DR and cold sites on this machine, run real traffic, inject the "
        "scenario's faults, and write report.json, report.md and timeline.png. Exits 1 when an "
        "expectation is unmet.",
    )
    drill.add_argument(
        "scenario",
        nargs="?",
        default=DEFAULT_SCENARIO,
        help=f"a shipped scenario name or a path to a scenario file (default {DEFAULT_SCENARIO})",
    )
    drill.add_argument(
        "--report", default="drill-report", metavar="DIR", help="report folder (default drill-report/)"
    )
    drill.add_argument("--list", action="store_true", help="list the shipped scenarios and exit")
    drill.set_defaults(func=run_drill)


def run_drill(args: argparse.Namespace) -> int:
    from quorum_dr_local.drill.scenario import ScenarioError, load_scenario, shipped_scenarios

    if args.list:
        for name in shipped_scenarios():
            print(f"{name:26} {load_scenario(name).description.strip().splitlines()[0][:80]}")
        return 0
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return EXIT_INVALID
    # Imported here: the orchestrator pulls in moto and the whole sandbox, which `--help` need not.
    from quorum_dr_local.drill import orchestrator

    return int(orchestrator.run(scenario, args.report))
