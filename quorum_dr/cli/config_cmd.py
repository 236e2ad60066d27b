"""`drctl config validate FILE`."""

from __future__ import annotations

import argparse
import sys

from quorum_dr.config import ConfigError, load_config

EXIT_INVALID = 2


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    config = subparsers.add_parser("config", help="work with the watchdog's configuration")
    actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    validate = actions.add_parser("validate", help="check a config file; print OK or every error")
    validate.add_argument("file", help="path to the YAML config")
    validate.set_defaults(func=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{args.file}: {len(exc.problems)} error(s)", file=sys.stderr)
        return EXIT_INVALID
    services = ", ".join(s.name for s in config.services)
    print(f"OK: {len(config.probe_regions)} probe regions, quorum {config.quorum}, services: {services}")
    return 0
