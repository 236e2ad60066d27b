"""`drctl config validate FILE`."""

from __future__ import annotations

import argparse
import sys

from quorum_dr.cli.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from quorum_dr.config import ConfigError, load_config


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    config = subparsers.add_parser(
        "config",
        help="work with the watchdog's configuration",
        description="Work with the watchdog's configuration.",
    )
    actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    validate = actions.add_parser(
        "validate",
        help="check a config file; print OK or every error",
        description="Check a watchdog config file and print OK, or one `FILE: field: reason` line per "
        "problem. The file must be a regular UTF-8 YAML (or JSON) file of at most 1 MiB, nested at "
        "most 64 levels, without duplicate keys. Exit 0 when valid, 2 when not.",
    )
    validate.add_argument("file", help="path to the YAML config")
    validate.set_defaults(func=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        if len(exc.problems) > 1:
            print(f"{args.file}: {len(exc.problems)} error(s)", file=sys.stderr)
        return EXIT_BAD_INPUT
    services = ", ".join(s.name for s in config.services)
    print(f"OK: {len(config.probe_regions)} probe regions, quorum {config.quorum}, services: {services}")
    return EXIT_OK
