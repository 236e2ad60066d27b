"""`drctl sync-check --service S [--active main|dr] [--json] [--incident ID]`: the database sync check
the case study's team did by hand before switching back.

With writes frozen on the active site, the target (the other of main and dr) must have replayed
exactly the active site's final WAL position, share its timeline history, and agree on every
table's row count and ordered hash (`database.sync_check`; `quorum_dr/adapters/postgres_sync.py`
says how each figure is read). Which site is active comes from the state table (`--table` or
STATE_TABLE_NAME), unless `--active` says it. The databases' credentials come from Secrets Manager
(`database.<site>.credentials_secret`), or from `--secrets-file` on a machine without AWS.

Exit codes: 0 in sync; 1 not in sync, inconclusive (writes during the check) or a database that
could not be read; 2 bad input (nothing was read); 3 AWS refused or unreachable. With `--incident
ID`, the evidence goes to that incident's record (field `sync_check`, timeline step `sync_check`).
No output holds a credential: databases are named by host, port and database name.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from quorum_dr.cli.aws_errors import AWS_ERRORS, describe_aws_error
from quorum_dr.cli.exit_codes import EXIT_AWS, EXIT_BAD_INPUT, EXIT_OK, EXIT_REFUSED
from quorum_dr.cli.operator_args import BadInput, add_config_argument, checked_service
from quorum_dr.config import Service
from quorum_dr.config_types import clean_text
from quorum_dr.domain.sync_check import SideDigest, SyncEvidence, describe_history
from quorum_dr.failover.request import INCIDENT_ID
from quorum_dr.ports import SecretSource, StateStore

STEP = "sync_check"
SITES = ("main", "dr")
Check = Callable[[Service, str, SecretSource], SyncEvidence]


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    check = subparsers.add_parser(
        "sync-check",
        help="check that the target database holds exactly the active site's data (before a switch)",
        description="With writes frozen on the active site: the target replayed exactly the active "
        "site's final WAL position, shares its timeline history, and every table's row count and "
        "ordered hash agree (database.sync_check). Exit 0 in sync; 1 not in sync or inconclusive; "
        "2 bad input; 3 AWS refused or unreachable.",
    )
    check.add_argument("--service", required=True, help="the service's name in the config")
    add_config_argument(check)
    check.add_argument(
        "--active",
        choices=SITES,
        default=None,
        help="the site that takes the writes (default: the state table's active site)",
    )
    check.add_argument(
        "--table",
        default=os.environ.get("STATE_TABLE_NAME"),
        help="the state table, read for the active site and written with --incident "
        "(default: $STATE_TABLE_NAME)",
    )
    check.add_argument(
        "--incident",
        default=None,
        metavar="ID",
        help="add the evidence to this incident's record (timeline step sync_check); created if new",
    )
    check.add_argument(
        "--secrets-file",
        default=None,
        help="JSON object: secret name -> value, instead of Secrets Manager (a machine without AWS)",
    )
    check.add_argument("--json", action="store_true", help="print the evidence as JSON")
    check.set_defaults(func=run_sync_check_command)


def _incident(value: str | None) -> str | None:
    if value is not None and not INCIDENT_ID.match(value):
        raise BadInput(
            f"--incident: {clean_text(value)[:90]!r} is not an incident id (letters, digits, '-' and '_', "
            "at most 80)"
        )
    return value


def _secrets(path: str | None) -> SecretSource:
    if path:
        from quorum_dr.cli.probe_cmd import read_secrets_file

        try:
            return read_secrets_file(path)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
    from quorum_dr.adapters.secrets import SecretsManagerSecrets

    return SecretsManagerSecrets()


def _store(table: str | None) -> StateStore:
    from quorum_dr.adapters.dynamodb_state import DynamoStateStore

    assert table
    return DynamoStateStore(table)


def _check(service: Service, active: str, secrets: SecretSource) -> SyncEvidence:
    from quorum_dr.adapters.postgres_sync import run_sync_check, sync_sites

    assert service.database is not None and active in SITES
    try:
        on_active, target = sync_sites(service.database, secrets, "main" if active == "main" else "dr")
    except (KeyError, ValueError) as exc:  # a secret missing from the file, or not a JSON object
        raise BadInput(f"database credentials: {' '.join(str(exc).split())}") from None
    return run_sync_check(service.name, on_active, target, service.database.sync_check)


def run_sync_check_command(
    args: argparse.Namespace,
    store: StateStore | None = None,
    secrets: SecretSource | None = None,
    check: Check | None = None,
    out: TextIO | None = None,
) -> int:
    """Every input is checked before a database or AWS is asked anything."""
    from quorum_dr.adapters.postgres_sync import SyncCheckError

    out = out or sys.stdout
    try:
        service = checked_service(args)
        if service.database is None:
            raise BadInput(f"--service: {service.name} has no database in the config: nothing to check")
        incident = _incident(args.incident)
        if args.active is None and not args.table:
            raise BadInput(
                "which site is active? give --active main|dr, or --table (or STATE_TABLE_NAME) to read it "
                "from the state table"
            )
        if incident and not args.table:
            raise BadInput(
                "--incident: the record is in the state table: give --table or set STATE_TABLE_NAME"
            )
        sources = secrets or _secrets(args.secrets_file)
        states = store or (_store(args.table) if args.table else None)
        active = args.active or _active_site(states, service.name)
        if active not in SITES:
            print(
                f"the active site of {service.name} is {active}: the sync check compares main and dr, "
                "the streaming pair",
                file=sys.stderr,
            )
            return EXIT_REFUSED
        try:
            evidence = (check or _check)(service, active, sources)
        except SyncCheckError as exc:
            reason = f"sync check of {service.name} failed: {exc}"
            if incident and states is not None:
                states.update_incident(
                    service.name, incident, {}, timeline={"at": time.time(), "step": STEP, "reason": reason}
                )
            print(_printable(reason), file=sys.stderr)
            return EXIT_REFUSED
        print(evidence.model_dump_json(indent=2) if args.json else summary(evidence), file=out)
        if incident and states is not None:
            record(states, evidence, incident)
    except BadInput as exc:
        print(" ".join(str(exc).split()), file=sys.stderr)
        return EXIT_BAD_INPUT
    except AWS_ERRORS as exc:
        print(describe_aws_error("check the database sync", exc), file=sys.stderr)
        return EXIT_AWS
    return EXIT_OK if evidence.verdict.in_sync else EXIT_REFUSED


def _active_site(store: StateStore | None, service: str) -> str:
    assert store is not None
    return str(store.get_state(service).get("active_site") or "main")


def record(store: StateStore, evidence: SyncEvidence, incident_id: str) -> None:
    """The evidence in the incident's record (small enough for one item) and its sentence in the
    timeline, as step `sync_check`."""
    store.update_incident(
        evidence.service,
        incident_id,
        {"sync_check": evidence.for_record().model_dump(mode="json")},
        timeline={"at": evidence.checked_at, "step": STEP, "reason": evidence.verdict.reason},
    )


def _side_line(side: SideDigest) -> str:
    return (
        f"  {side.site:<4}  {side.role:<7}  {side.address}  WAL {side.position}  "
        f"{describe_history(side.timeline, side.timeline_history)} ({side.timeline_source}; "
        f"{side.history_note})"
    )


def summary(evidence: SyncEvidence) -> str:
    """What a person reads: both sites' positions and timelines, each table's rows and short hash on
    both sides, and the verdict's sentence. Names from the database catalog are printed without
    control characters."""
    a, t = evidence.active, evidence.target
    lines = [
        f"sync check of {evidence.service}: {a.site} is active, {t.site} is the target; final position "
        f"{evidence.final_position} ({evidence.seconds:.2f} s, {evidence.attempts} attempt"
        f"{'' if evidence.attempts == 1 else 's'})",
        _side_line(a),
        _side_line(t),
    ]
    names = sorted({x.name for x in a.tables} | {x.name for x in t.tables} | set(a.absent) | set(t.absent))
    rows: list[tuple[str, ...]] = [
        ("TABLE", f"ROWS {a.site}", f"ROWS {t.site}", f"HASH {a.site}", f"HASH {t.site}", "")
    ]
    for name in names:
        mine, theirs = a.table(name), t.table(name)
        notes = sorted({x.skipped for x in (mine, theirs) if x is not None and x.skipped})
        rows.append(
            (
                name,
                _rows(mine),
                _rows(theirs),
                mine.short() if mine else "absent",
                theirs.short() if theirs else "absent",
                "; ".join(notes),
            )
        )
    if names:
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        for row in rows:
            cells = [
                cell.rjust(width) if 0 < i < 3 else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(row[:5], widths, strict=True))
            ]
            lines.append(("  " + "  ".join(cells) + ("  " + row[5] if row[5] else "")).rstrip())
    else:
        lines.append("  no table to compare")
    lines.append(evidence.verdict.reason)
    return "\n".join(_printable(line) for line in lines)


def _printable(line: str) -> str:
    """The line with every character that does not print (an escape sequence in a table name) as '?'."""
    return "".join(char if char.isprintable() else "?" for char in line)


def _rows(table: Any) -> str:
    if table is None:
        return "absent"
    return "-" if table.rows is None else str(table.rows)
