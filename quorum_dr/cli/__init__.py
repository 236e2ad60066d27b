"""drctl: the operator's command line.

Each sub-command lives in its own module with a `register(subparsers)` function that adds its
parser and sets `func` to a callable taking the parsed arguments and returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that register sub-commands, in the order `drctl --help` lists them.
COMMAND_MODULES = [
    "quorum_dr.cli.config_cmd",
    "quorum_dr.cli.drill_cmd",
    "quorum_dr.cli.probe_cmd",
    "quorum_dr.cli.failover_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drctl", description="quorum-dr: quorum-confirmed disaster-recovery watchdog"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
