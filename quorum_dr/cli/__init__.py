"""drctl: the operator's command line.

Each sub-command lives in its own module with a `register(subparsers)` function that adds its
parser and sets `func` to a callable taking the parsed arguments and returning the exit code.
The exit codes are the same for every command (`quorum_dr.cli.exit_codes`); `main` turns an
interruption, a closed output pipe and a stray AWS error into their code and one line, never a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from quorum_dr import __version__
from quorum_dr.cli.exit_codes import EXIT_AWS, EXIT_INTERRUPTED, EXIT_OUTPUT_CLOSED

# Modules that register sub-commands, in the order `drctl --help` lists them.
COMMAND_MODULES = [
    "quorum_dr.cli.config_cmd",
    "quorum_dr.cli.drill_cmd",
    "quorum_dr.cli.probe_cmd",
    "quorum_dr.cli.failover_cmd",
    "quorum_dr.cli.agent_cmd",
    "quorum_dr.cli.sync_cmd",
    "quorum_dr.cli.readiness_cmd",
    "quorum_dr.cli.rejoin_cmd",
    "quorum_dr.cli.switchover_cmd",
    "quorum_dr.cli.rehearse_cmd",
    "quorum_dr.cli.cost_cmd",
    "quorum_dr.cli.replay_cmd",
]

EPILOG = (
    "exit codes: 0 done; 1 refused or failed outcome (a site DOWN, an unmet drill expectation, "
    "not confirmed); 2 bad input (flags, config, scenario or secrets file; nothing sent to AWS); "
    "3 AWS refused or unreachable; 130 interrupted; 141 output closed early"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drctl", description="quorum-dr: quorum-confirmed disaster-recovery watchdog", epilog=EPILOG
    )
    parser.add_argument("--version", action="version", version=f"drctl (quorum-dr) {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _silence_stdout() -> None:
    """The reader went away (`drctl status | head`): send what is left to /dev/null, so the flush
    at exit does not fail again (the recipe of Python's signal documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a file (an embedding, a test)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code = int(args.func(args))
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OUTPUT_CLOSED
    except Exception as exc:  # noqa: BLE001 - only AWS errors are turned into a line
        from quorum_dr.cli.aws_errors import AWS_ERRORS, describe_aws_error

        if isinstance(exc, AWS_ERRORS):
            print(f"drctl: {describe_aws_error('finish the command', exc)}", file=sys.stderr)
            return EXIT_AWS
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
