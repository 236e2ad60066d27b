"""`drctl probe --config FILE [--region NAME] [--once] [--rounds N] [--secrets-file PATH]`.

Runs probe rounds from this machine, standing in for one probe region, against the configured
endpoints; prints every result and, per site, this one region's round verdict with its reason.
Nothing is written to AWS. Exit code: 0 when every site was UP in the last round, 1 when a site
was DOWN or the region abstained, 2 for a bad config or argument, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from quorum_dr.adapters.secrets import StaticSecrets
from quorum_dr.cli.exit_codes import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED
from quorum_dr.config import ConfigError, load_config
from quorum_dr.config_file import FileRefused, decode, read_bytes
from quorum_dr.domain.results import ProbeResult, Vote
from quorum_dr.ports import SecretSource
from quorum_dr.probes.round import RoundReport, run_round

EXIT_DOWN, EXIT_USAGE = EXIT_REFUSED, EXIT_BAD_INPUT
DEFAULT_ROUNDS = 3


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    probe = subparsers.add_parser(
        "probe",
        help="run probe rounds from this machine and print results and per-site verdicts",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    probe.add_argument("--config", required=True, help="path to the YAML (or JSON) config")
    probe.add_argument("--region", help="the probe region to stand in for (default: the first one)")
    probe.add_argument("--once", action="store_true", help="run one round and stop")
    probe.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"rounds to run, every probe.interval_seconds (default {DEFAULT_ROUNDS})",
    )
    probe.add_argument(
        "--secrets-file",
        help="JSON object: secret name -> value, for PostgreSQL credentials (default: no secrets)",
    )
    probe.add_argument("--service", action="append", help="only this service (repeatable)")
    probe.add_argument(
        "--site", action="append", choices=["main", "dr", "cold"], help="only this site (repeatable)"
    )
    probe.set_defaults(func=run_probe)


def run_probe(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return EXIT_USAGE
    if args.region and args.region not in config.probe_regions:
        print(
            f"--region: {args.region!r} is not a probe region; configured: {config.probe_regions}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.rounds < 1:
        print("--rounds: must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    for name in args.service or []:
        if name not in [s.name for s in config.services]:
            print(f"--service: no service named {name!r}", file=sys.stderr)
            return EXIT_USAGE
    try:
        secrets = read_secrets_file(args.secrets_file)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    region = args.region or config.probe_regions[0]
    label = "" if args.region else " (default: the first probe region)"
    rounds = 1 if args.once else args.rounds
    print(f"probing as region {region}{label} from this machine; {rounds} round(s)", file=out)
    code = EXIT_OK
    done = 0
    try:
        for number in range(1, rounds + 1):
            if number > 1:
                time.sleep(config.probe.interval_seconds)
            report = run_round(
                config,
                region=region,
                round_id=f"cli-{int(time.time())}-{number}",
                services=args.service,
                sites=args.site,
                secrets=secrets,
            )
            code = print_round(report, out)
            done = number
    except KeyboardInterrupt:
        print(f"\ninterrupted after {done} complete round(s)", file=out)
        return EXIT_INTERRUPTED
    return code


def read_secrets_file(path: str | None) -> SecretSource:
    """The secrets in a JSON file (secret name -> value), or ValueError with one line that names the
    file and the problem, never a secret's value."""
    if not path:
        return StaticSecrets({})
    try:
        data = json.loads(decode(read_bytes(path)))
    except FileRefused as exc:
        raise ValueError(f"--secrets-file: {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"--secrets-file: {path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise ValueError(f"--secrets-file: {path}: not valid JSON: nested too deep") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"--secrets-file: {path}: expected a JSON object mapping secret names to values, "
            f"got {type(data).__name__ if data is not None else 'null'}"
        )
    return StaticSecrets(data)


def print_round(report: RoundReport, out: TextIO) -> int:
    took = report.finished_at - report.started_at
    print(f"\nround {report.round_id} ({took:.2f} s): {report.reason}", file=out)
    print(_table(report.results), file=out)
    print("verdicts (this region only; the quorum needs the other regions):", file=out)
    down = report.abstaining
    for verdict in report.site_verdicts():
        down = down or verdict.vote is Vote.DOWN
        print(f"  {verdict.service}/{verdict.site}: {verdict.vote.value.upper()}: {verdict.reason}", file=out)
    return EXIT_DOWN if down else EXIT_OK


def _table(results: Sequence[ProbeResult]) -> str:
    header = ("SERVICE", "SITE", "CHECK", "VOTE", "FAILURE", "LATENCY", "DETAIL")
    rows = [
        (
            r.service,
            r.site,
            r.check + ("" if r.counts else " (info)"),
            r.vote.value,
            r.failure_class.value if r.failure_class else "-",
            f"{r.latency_ms:.0f} ms",
            r.detail,
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)
