"""Verify the switch through the public hostname (or the cold origin's health as a fallback).

An edge change takes a while to be seen everywhere (Cloudflare's points of presence, a DNS
answer's TTL): the check through the public hostname is retried with backoff for
`verify.window_seconds` before the switch counts as not verified (and the state machine
escalates). The last attempt starts no later than the window's end, so the step's worst case is
the window plus one verify round (tests/infrastructure/test_budgets.py holds it to the function's
timeout). The cold origin's health fallback is one check: it follows a ready timeout, not a switch.
"""

from __future__ import annotations

from typing import Any

from quorum_dr.failover.ports import Ports
from quorum_dr.failover.receipts import as_dict, entry
from quorum_dr.failover.request import Incident

FIRST_BACKOFF_SECONDS = 1.0  # before the second attempt; doubled before each further one
MAX_BACKOFF_SECONDS = 8.0


def verify_attempts(
    ports: Ports, service: str, incident_id: str, target: str, *, origin_only: bool
) -> dict[str, Any]:
    """Ask the verifier until it sees `target`, or the window is over (one ask for origin_only).
    The failover's verification and the planned switchover's share it."""
    verifier = ports.verifier()
    window = ports.config.verify.window_seconds
    started = ports.clock()
    deadline = started + window
    backoff = FIRST_BACKOFF_SECONDS
    seen: list[str] = []
    while True:
        receipt = as_dict(
            verifier.verify(
                service=service,
                expect_site=target,
                incident_id=incident_id,
                origin_only=origin_only,
            )
        )
        verified = bool(receipt.get("verified"))
        seen.append(str(receipt.get("reason") or ("verified" if verified else "not verified")))
        left = deadline - ports.clock()
        if verified or origin_only or left <= 0:
            break
        ports.sleep(min(backoff, left))
        backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
    elapsed = ports.clock() - started
    last = seen[-1]
    if origin_only:
        reason = last
    elif verified:
        reason = last if len(seen) == 1 else f"{last} (attempt {len(seen)}, after {elapsed:.1f} s)"
    else:
        reason = (
            f"not verified within the {window:g} s window ({len(seen)} attempts over {elapsed:.1f} s): {last}"
        )
    return {**receipt, "verified": verified, "reason": reason, "attempts": len(seen), "seen": seen}


def verify(ports: Ports, incident: Incident, target: str, *, origin_only: bool) -> dict[str, Any]:
    service = ports.service(incident.service)
    now = ports.clock()
    if incident.dry_run and not origin_only:
        reason = f"dry run: would verify that {service.public_hostname} answers with the {target} marker"
        ports.store.update_incident(
            service.name, incident.incident_id, {}, timeline=entry("verify", reason, now)
        )
        return {"verified": True, "dry_run": True, "reason": reason, "at": now}
    answer = verify_attempts(ports, incident.service, incident.incident_id, target, origin_only=origin_only)
    verified = answer["verified"]
    now = ports.clock()
    step = "cold_health" if origin_only else "verify"
    fields = {"verified_at": now} if verified and not origin_only else {}
    ports.store.update_incident(
        service.name, incident.incident_id, fields, timeline=entry(step, answer["reason"], now)
    )
    answer["at"] = now
    if origin_only:
        answer["ready"] = verified
    return answer
