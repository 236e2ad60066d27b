"""The incident lock and the service state, as the failover and the switchover both keep them.

One LOCK item per service; its holder is the execution's own name. Releasing and keeping it are
conditional on that holder, and every sentence says who holds it when it is not this execution.
An escalation keeps the lock and sets NEEDS_ATTENTION, so no automation acts until a person runs
`drctl reset`.
"""

from __future__ import annotations

from typing import Any, Protocol

from quorum_dr.domain.state import ServiceState, ServiceStatus
from quorum_dr.failover.errors import StaleState, TransientError
from quorum_dr.failover.ports import Ports

LOCK_KEPT = "The lock is kept: no automation acts until an operator runs drctl reset."


class Holder(Protocol):
    """An execution that may hold the lock: the failover's incident or the switchover."""

    @property
    def service(self) -> str: ...
    @property
    def incident_id(self) -> str: ...
    @property
    def execution_name(self) -> str: ...
    @property
    def dry_run(self) -> bool: ...


def read_state(ports: Ports, service: str) -> ServiceState:
    """The service state as stored (its defaults when there is no item yet)."""
    return ServiceState.model_validate({**ports.store.get_state(service), "service": service})


def write_state(ports: Ports, service: str, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into the service state, conditional on the version read."""
    state = ports.store.get_state(service)
    version = int(state.get("version", 0))
    merged = ServiceState.model_validate({**state, **changes, "service": service}).model_dump(mode="json")
    try:
        return ports.store.put_state(merged, expected_version=version)
    except StaleState as exc:  # a concurrent writer: the ASL retries TransientError
        raise TransientError(str(exc)) from None


def not_ours(ports: Ports, holder: Holder) -> str:
    """Who holds the lock instead of `holder`, as a sentence."""
    lock = ports.store.get_lock(holder.service)
    if lock is None:
        return f"execution {holder.execution_name} held no lock (it expired, or an operator reset it)"
    return (
        f"execution {lock.get('holder') or 'unknown'} (incident {lock.get('incident_id')}) holds it, "
        f"not {holder.execution_name}" + (" and keeps it" if lock.get("kept") else "")
    )


def release(ports: Ports, holder: Holder) -> tuple[bool, str]:
    """Release the lock if `holder` holds it: (released, sentence)."""
    if getattr(holder, "shadow", False):
        if ports.store.release_lock(holder.service, holder.execution_name, shadow=True):
            return True, "shadow lock released"
        return False, "the shadow lock was not released: it expired or another shadow execution holds it"
    if holder.dry_run:
        return False, "dry run: no lock was taken"
    if ports.store.release_lock(holder.service, holder.execution_name):
        return True, "lock released"
    return False, "the lock was not released: " + not_ours(ports, holder)


def hold_for_a_person(ports: Ports, holder: Holder, switched_to: str | None) -> tuple[bool, str]:
    """Keep the lock (if `holder` holds it) and set NEEDS_ATTENTION; a switch that was written is
    where traffic goes, so the active site says so whatever failed after it. (kept, sentence)."""
    kept = ports.store.keep_lock(holder.service, holder.incident_id, holder=holder.execution_name)
    where = {"active_site": switched_to} if switched_to else {}
    write_state(
        ports,
        holder.service,
        status=ServiceStatus.NEEDS_ATTENTION.value,
        lock_holder=holder.incident_id,
        **where,
    )
    if kept:
        return True, LOCK_KEPT
    return False, "The lock could NOT be kept: " + not_ours(ports, holder) + "."
