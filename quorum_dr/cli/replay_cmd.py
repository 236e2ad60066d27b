"""`drctl replay --config C (--results FILE | --table NAME --since T --until T [--region R])
[--service S] [--compare C2] [--json]`.

Feeds recorded probe results through the watchdog's own quorum engine and decision code, in time
order (`quorum_dr.replay`), and prints each moment a verdict changed and what the state machine
would have done, with the reasons. `--results`: an export of the results table as JSON lines (or
a scan's JSON), or a drill's events.jsonl. `--table`: the results table itself, between two times
(ISO 8601 UTC or epoch seconds), in the config's home region unless `--region` says otherwise.
`--compare C2`: the same results under a second config; prints where the two differ (a verdict
change or a failover decision in one and not the other, or at another time). Nothing is written
anywhere. Exit codes: 0 done, 2 bad input (flags, configs, the file, no results), 3 AWS refused
or unreachable.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quorum_dr.cli.aws_errors import AWS_ERRORS, describe_aws_error
from quorum_dr.cli.exit_codes import EXIT_AWS, EXIT_BAD_INPUT, EXIT_OK
from quorum_dr.cli.operator_args import (
    BadInput,
    add_config_argument,
    config_path,
    configured_service,
    load_operator_config,
)
from quorum_dr.config import WatchdogConfig
from quorum_dr.config_types import clean_text
from quorum_dr.domain.results import ProbeResult
from quorum_dr.replay.moments import (
    NothingToReplay,
    comparison_json,
    comparison_text,
    replay,
    text,
    utc,
)
from quorum_dr.replay.recording import RecordingError, read_recording


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "replay",
        help="recorded probe results through the watchdog's own decisions: what it would have done",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    add_config_argument(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--results",
        metavar="FILE",
        help="recorded results: the results table's items or ProbeResults as JSON lines, or a drill's "
        "events.jsonl",
    )
    source.add_argument(
        "--table", metavar="NAME", help="read the results table itself (with --since, --until)"
    )
    parser.add_argument("--since", metavar="T", help="from this time (ISO 8601 UTC or epoch seconds)")
    parser.add_argument("--until", metavar="T", help="to this time (ISO 8601 UTC or epoch seconds)")
    parser.add_argument("--region", metavar="R", help="the results table's region (default: home_region)")
    parser.add_argument("--service", help="the service (default: the config's only one, or the recording's)")
    parser.add_argument("--compare", metavar="C2", help="a second config: print where the two differ")
    parser.add_argument("--json", action="store_true", help="print the moments as JSON")
    parser.set_defaults(func=run_replay)


def parse_time(value: str | None, flag: str) -> float | None:
    """Epoch seconds of `value`: ISO 8601 (UTC when it names no offset) or epoch seconds."""
    if value is None:
        return None
    shown = clean_text(value)[:60]
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number) or number < 0:
            raise BadInput(f"{flag}: {shown!r} is not a time (epoch seconds must be a finite number >= 0)")
        return number
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadInput(
            f"{flag}: {shown!r} is not a time: give ISO 8601 UTC (2026-12-03T10:00:00Z) or epoch seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _window(args: argparse.Namespace) -> tuple[float | None, float | None]:
    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    if args.table is not None and (since is None or until is None):
        raise BadInput("--table needs --since and --until: the time window to read")
    if args.table is None and args.region is not None:
        raise BadInput("--region goes with --table (the results table's region)")
    if since is not None and until is not None and since > until:
        raise BadInput(f"--since ({utc(since)}) is after --until ({utc(until)})")
    return since, until


def _service(
    args: argparse.Namespace, configs: Sequence[tuple[WatchdogConfig, str]], recorded: set[str] | None
) -> str:
    """--service checked against every config; without it, the one service the configs (and the
    recording) leave."""
    if args.service is not None:
        for config, source in configs:
            configured_service(config, args.service, source)
        return str(args.service)
    names = [s.name for s in configs[0][0].services]
    candidates = [n for n in names if recorded is None or n in recorded] if len(names) > 1 else names
    if len(candidates) != 1:
        raise BadInput(f"--service: give one of the config's services ({', '.join(names)})")
    for config, source in configs[1:]:
        configured_service(config, candidates[0], source)
    return candidates[0]


def _table_results(
    args: argparse.Namespace, config: WatchdogConfig, service: str, since: float, until: float
) -> list[ProbeResult]:
    from quorum_dr.adapters.dynamodb_results import DynamoDbResultStore

    store = DynamoDbResultStore.from_name(
        args.table, ttl_seconds=config.probe.result_ttl_seconds, region=args.region or config.home_region
    )
    return store.results_between(service, since, until)


def _where(since: float | None, until: float | None) -> str:
    if since is None and until is None:
        return ""
    start = utc(since) if since is not None else "the start"
    end = utc(until) if until is not None else "the end"
    return f" between {start} and {end}"


def run_replay(args: argparse.Namespace) -> int:
    from quorum_dr.observability import logger

    level = logger.log_level
    logger.setLevel("WARNING")  # the settle rule logs every wait at INFO, on stdout
    try:
        return _run(args)
    except (BadInput, RecordingError, NothingToReplay) as exc:
        print(f"drctl replay: {clean_text(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AWS_ERRORS as exc:
        print(f"drctl replay: {describe_aws_error('read the results table', exc)}", file=sys.stderr)
        return EXIT_AWS
    finally:
        logger.setLevel(level)


def _run(args: argparse.Namespace) -> int:
    since, until = _window(args)
    config = load_operator_config(args.config)
    label = clean_text(str(config_path(args.config)))
    configs = [(config, label)]
    if args.compare is not None:
        configs.append((load_operator_config(args.compare, "--compare"), clean_text(args.compare)))
    origin: float | None = None
    if args.table is not None:
        assert since is not None and until is not None
        service = _service(args, configs, None)
        source = f"results table {clean_text(args.table)}"
        results = _table_results(args, config, service, since, until)
    else:
        recording = read_recording(Path(args.results))
        service = _service(args, configs, {r.service for r in recording.results})
        source, origin = f"{recording.source} in {clean_text(args.results)}", recording.origin
        results = [
            r
            for r in recording.results
            if r.service == service
            and (since is None or (r.received_at or 0.0) >= since)
            and (until is None or (r.received_at or 0.0) <= until)
        ]
    if not results:
        raise BadInput(f"no results of {service} in the {source}{_where(since, until)}")
    outcomes = [replay(results, c, service) for c, _ in configs]
    zero = origin if origin is not None else min(r.received_at or math.inf for r in results)
    if len(outcomes) == 1:
        if args.json:
            print(
                json.dumps(
                    [m.model_dump(mode="json", exclude_none=True) for m in outcomes[0].moments], indent=2
                )
            )
        else:
            print("\n".join(text(outcomes[0], source=source, label=label, origin=zero)))
        return EXIT_OK
    a, b = outcomes
    if args.json:
        document: dict[str, Any] = comparison_json(a, b)
        print(json.dumps(document, indent=2))
    else:
        labels = (configs[0][1], configs[1][1])
        print("\n".join(comparison_text(a, b, source=source, labels=labels, origin=zero)))
    return EXIT_OK
