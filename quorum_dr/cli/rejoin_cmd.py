"""`drctl rejoin --service S --site main|dr [--allow-rebuild] [--timeout SECONDS] [--yes]`: after a
failover, make the old primary a streaming standby of the active site.

Checked before any call (exit 2): the service in the config (`--config`, `QDR_CONFIG`, or the
config ./cdk.json names), its database section, an agent on the site (`sites.<site>.agent`), the
timeout, the state table (`--table` or STATE_TABLE_NAME) and the alert topic's ARN when given.
Then STS says who asks, and on a terminal you confirm by typing the service's name.

The rejoin itself is `quorum_dr.failover.rejoin`: it refuses when the site is the state's active
site or the edge (read through the Cloudflare adapter) still serves it, rewinds the old primary
(a fresh base backup only with `--allow-rebuild`), waits at most `--timeout` seconds until it
streams within `database.max_lag_bytes`, tells the alert topic that any split brain is over,
and records it all in `rejoin-<service>-<site>-<UTC day>`. Each step prints its sentence as it
goes. The alert topic: `--topic-arn`, else ALERT_TOPIC_ARN, else
`arn:aws:sns:<home_region>:<the caller's account>:<notifications.sns_topic_name>` (the topic the
control stack creates), plus the config's webhooks. Secrets (the agents' keys, the Cloudflare
token) come from Secrets Manager in the home region.

Exit codes: 0 rejoined, streaming within the limit; 1 refused, failed, or not within the limit in
time (a re-run continues); 2 bad input; 3 AWS refused or unreachable.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from quorum_dr.cli.aws_errors import AWS_ERRORS, describe_aws_error
from quorum_dr.cli.exit_codes import EXIT_AWS, EXIT_BAD_INPUT, EXIT_OK, EXIT_REFUSED
from quorum_dr.cli.operator_args import (
    BadInput,
    add_config_argument,
    caller_identity,
    config_path,
    configured_service,
    confirmed,
    load_operator_config,
    service_name,
)
from quorum_dr.config import Service, SiteAgent, WatchdogConfig
from quorum_dr.config_types import clean_text
from quorum_dr.failover.rejoin import MAX_TIMEOUT_SECONDS, RejoinPorts, RejoinRequest, SiteAgentPort, rejoin
from quorum_dr.ports import SecretSource

DEFAULT_TIMEOUT_SECONDS = 300.0
AGENT_OPERATION_TIMEOUT_SECONDS = 3600 + 300  # the agent's rebuild bound (rebuild_seconds) and a margin
TOPIC_ARN = re.compile(r"^arn:aws(-[a-z]+)*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "rejoin",
        help="make the old primary a streaming standby of the active site (after a failover)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--service", required=True, help="the service's name in the config")
    parser.add_argument("--site", required=True, choices=["main", "dr"], help="the site to rejoin")
    add_config_argument(parser)
    parser.add_argument(
        "--allow-rebuild",
        action="store_true",
        help="when a rewind cannot work, rebuild the site from a fresh pg_basebackup of the active "
        "site (its data directory is moved aside and kept, never deleted)",
    )
    parser.add_argument(
        "--timeout",
        default=str(int(DEFAULT_TIMEOUT_SECONDS)),
        metavar="SECONDS",
        help=f"wait at most this long for it to stream within the lag limit (default "
        f"{DEFAULT_TIMEOUT_SECONDS:g}, at most {MAX_TIMEOUT_SECONDS})",
    )
    parser.add_argument(
        "--table",
        default=os.environ.get("STATE_TABLE_NAME"),
        help="the state table (default: $STATE_TABLE_NAME)",
    )
    parser.add_argument(
        "--topic-arn",
        default=os.environ.get("ALERT_TOPIC_ARN"),
        help="the alert topic (default: $ALERT_TOPIC_ARN, else the one the config's notifications."
        "sns_topic_name names in the home region and the caller's account)",
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation on a terminal")
    parser.set_defaults(func=run_rejoin)


def timeout_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise BadInput(f"--timeout: {clean_text(str(value))[:40]!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_TIMEOUT_SECONDS:
        raise BadInput(f"--timeout: {value} s; give more than 0 and at most {MAX_TIMEOUT_SECONDS}")
    return seconds


def checked_input(args: argparse.Namespace) -> tuple[WatchdogConfig, Service, float]:
    """Everything the flags and the config must say, before any call (BadInput otherwise)."""
    service_name(args.service)
    config = load_operator_config(args.config)
    service = configured_service(config, args.service, str(config_path(args.config)))
    if service.database is None:
        raise BadInput(f"--service: {service.name} has no database section in the config: nothing to rejoin")
    if getattr(service.sites, args.site).agent is None:
        raise BadInput(
            f"--site {args.site}: {service.name} has no site agent on {args.site} (sites.{args.site}.agent): "
            "rejoin acts on its database through it"
        )
    seconds = timeout_seconds(args.timeout)
    if not args.table:
        raise BadInput("no state table: give --table or set STATE_TABLE_NAME")
    if args.topic_arn and not TOPIC_ARN.match(args.topic_arn):
        raise BadInput(f"--topic-arn: {clean_text(args.topic_arn)[:120]!r} is not an SNS topic ARN")
    return config, service, seconds


def alert_topic(config: WatchdogConfig, given: str | None, account: Callable[[], str]) -> str:
    """The alert topic's ARN: given (flag or ALERT_TOPIC_ARN), else the control stack's topic in the
    home region of the caller's account."""
    if given:
        return given
    region = config.home_region
    partition = (
        "aws-us-gov" if region.startswith("us-gov-") else "aws-cn" if region.startswith("cn-") else "aws"
    )
    return f"arn:{partition}:sns:{region}:{account()}:{config.notifications.sns_topic_name}"


def run_rejoin(
    args: argparse.Namespace,
    *,
    sts: Any = None,
    store: Any = None,
    secrets: SecretSource | None = None,
    sns: Any = None,
) -> int:
    try:
        config, service, seconds = checked_input(args)
        sts = sts or _client("sts")
        by = caller_identity(sts)
        topic = alert_topic(config, args.topic_arn, lambda: str(sts.get_caller_identity()["Account"]))
        what = (
            f"Rejoin {args.site} of {service.name} as {by}: its database becomes a standby of the active "
            f"site; what it wrote after the failover is discarded by pg_rewind"
            + (" (or its data directory is moved aside and rebuilt)" if args.allow_rebuild else "")
        )
        if not confirmed(args, what, service.name):
            print("not confirmed: nothing was done", file=sys.stderr)
            return EXIT_REFUSED
        ports = _ports(config, service, args.table, topic, store=store, secrets=secrets, sns=sns)
        request = RejoinRequest(
            service=service.name,
            site=args.site,
            allow_rebuild=args.allow_rebuild,
            timeout_seconds=seconds,
            requested_by=by,
        )
        result = rejoin(service, request, ports)
    except BadInput as exc:
        print(" ".join(str(exc).split()), file=sys.stderr)
        return EXIT_BAD_INPUT
    except AWS_ERRORS as exc:
        print(describe_aws_error("rejoin", exc), file=sys.stderr)
        return EXIT_AWS
    except _SecretUnreadable as exc:
        print(f"cannot rejoin: {exc}", file=sys.stderr)
        return EXIT_AWS
    print(
        f"{result.outcome}: {result.reason} (record {result.record_id})",
        file=sys.stdout if result.ok else sys.stderr,
    )
    return EXIT_OK if result.ok else EXIT_REFUSED


class _SecretUnreadable(Exception):
    """A secret could not be read from Secrets Manager (the message names it, never its value)."""


def _ports(
    config: WatchdogConfig,
    service: Service,
    table: str,
    topic: str,
    *,
    store: Any,
    secrets: SecretSource | None,
    sns: Any,
) -> RejoinPorts:
    """The rejoin's ports: the state table, the agents' clients and the edge (their secrets read
    now, so a missing one stops the command before anything acts), the notifier."""
    from quorum_dr.adapters.cloudflare_edge import CloudflareEdge
    from quorum_dr.adapters.dynamodb_state import DynamoStateStore
    from quorum_dr.adapters.notifier import OperatorNotifier, build_notifier
    from quorum_dr.adapters.secrets import SecretsManagerSecrets
    from quorum_dr.adapters.site_agent import SiteAgentClient

    source = secrets or SecretsManagerSecrets()

    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    def secret(name: str, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except (GetParameterError, KeyError) as exc:  # Powertools wraps every failure of Secrets Manager
            said = " ".join(str(exc).split())[:200]
            raise _SecretUnreadable(f"cannot read secret {name!r}: {said}") from None

    def agent_client(agent: SiteAgent) -> SiteAgentPort:
        return SiteAgentClient.from_config(agent, source, operation_timeout=AGENT_OPERATION_TIMEOUT_SECONDS)

    clients: dict[str, SiteAgentPort] = {}
    for name in ("main", "dr"):
        agent = getattr(service.sites, name).agent
        if agent is not None:
            clients[name] = secret(agent.signing_secret, partial(agent_client, agent))
    edge = secret(service.edge.api_token_secret, lambda: CloudflareEdge.for_service(service, source))
    notifier = OperatorNotifier(build_notifier(topic, config.notifications.webhooks, source, sns_client=sns))
    return RejoinPorts(
        store=store or DynamoStateStore(table),
        agents=clients.get,
        edge=edge,
        notifier=notifier,
        progress=_say,
    )


def _say(sentence: str) -> None:
    print(sentence, flush=True)


def _client(name: str) -> Any:
    import boto3

    return boto3.client(name)
