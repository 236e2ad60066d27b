"""What the operator commands check before they call AWS: the config, the service, the reason,
the confirmation, and who is asking.

The config (`--config`): the flag, else the `QDR_CONFIG` environment variable, else the config the
`cdk.json` in the current directory names (the file the stacks were deployed from). A service that
the config does not name is refused before any AWS call.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from quorum_dr.config import NAME, ConfigError, Service, WatchdogConfig, load_config
from quorum_dr.config_types import MAX_REASON_CHARS, clean_text

CONFIG_ENV = "QDR_CONFIG"
CDK_JSON = "cdk.json"


class BadInput(Exception):
    """A flag or a file is wrong; nothing was sent to AWS. The message is one line (exit code 2)."""


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help=f"the watchdog config the stacks were deployed from (default: ${CONFIG_ENV}, else the "
        f"config that ./{CDK_JSON} names); services it does not name are refused",
    )


def config_path(given: str | None) -> Path:
    if given:
        return Path(given)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    try:
        context = json.loads(Path(CDK_JSON).read_text(encoding="utf-8")).get("context", {})
        named = context.get("config") if isinstance(context, dict) else None
    except (OSError, ValueError, AttributeError):
        named = None
    if isinstance(named, str) and named:
        return Path(named)
    raise BadInput(
        f"no config: give --config FILE or set {CONFIG_ENV} (the watchdog config the stacks were "
        f"deployed from), or run drctl in the project folder whose {CDK_JSON} names it"
    )


def load_operator_config(given: str | None, flag: str = "--config") -> WatchdogConfig:
    """The config `given` (or the default one, see `config_path`); BadInput naming `flag` if it is wrong."""
    path = config_path(given)
    try:
        return load_config(path)
    except ConfigError as exc:
        more = f" (and {len(exc.lines()) - 1} more)" if len(exc.problems) > 1 else ""
        raise BadInput(f"{flag}: {exc.lines()[0]}{more}") from None


def service_name(value: str) -> str:
    """The `--service` value when it has the shape of a service name, else BadInput."""
    if not NAME.match(value or ""):
        raise BadInput(
            f"--service: {clean_text(value)[:80]!r} is not a service name "
            "(lower-case letters, digits and dashes, at most 63)"
        )
    return value


def configured_service(config: WatchdogConfig, value: str, source: str) -> Service:
    name = service_name(value)
    for service in config.services:
        if service.name == name:
            return service
    known = ", ".join(s.name for s in config.services)
    raise BadInput(f"--service: no service named {name!r} in {source}; configured: {known}")


def checked_service(args: argparse.Namespace) -> Service:
    """`args.service` checked against its shape and the config, before any AWS call."""
    name = service_name(args.service)
    config = load_operator_config(args.config)
    return configured_service(config, name, str(config_path(args.config)))


def reason_text(value: str, flag: str = "--reason") -> str:
    """The reason as it is stored and echoed: without control characters, at most 500 characters."""
    text = clean_text(value or "")
    if not text:
        raise BadInput(f"{flag}: must not be blank")
    if len(text) > MAX_REASON_CHARS:
        raise BadInput(f"{flag}: {len(text)} characters; at most {MAX_REASON_CHARS}")
    return text


def local_user() -> str:
    try:
        return clean_text(getpass.getuser()) or "unknown"
    except (OSError, KeyError, ImportError):
        return "unknown"


def caller_identity(sts: Any) -> str:
    """Who asks: the AWS caller's ARN (STS GetCallerIdentity), with the local user name beside it.
    The ARN is what AWS vouches for; the local name (from $USER) is only a hint."""
    arn = clean_text(str(sts.get_caller_identity()["Arn"]))
    return f"{arn} (local user {local_user()})"


def confirmed(args: argparse.Namespace, what: str, service: str) -> bool:
    """On a terminal, unless --yes: the operator types the service's name to go ahead."""
    if getattr(args, "yes", False) or not sys.stdin.isatty():
        return True
    print(what, file=sys.stderr)
    try:
        answer = input(f"Type the service name ({service}) to go ahead, anything else to stop: ")
    except EOFError:
        return False
    return answer.strip() == service
