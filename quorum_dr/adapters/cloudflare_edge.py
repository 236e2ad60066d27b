"""The edge switch over the official Cloudflare SDK (5.x): proxied DNS records or LB pools.

A failover costs a handful of API calls (the API allows 1200 per 5 minutes per token): per DNS
record one read (a GET by record_id, or a list filtered by exact name and type), one PATCH when it
must change and one read-back GET; for load-balancer pools one GET per pool, then for each pool
that changes one PATCH and one read-back GET.

Errors are handled here, not by the SDK (`max_retries=0`):
- 429: wait what `retry-after` says (backoff when absent), within a total retry budget;
- 5xx and connection errors: exponential backoff within the same budget;
- 401/403: fail at once with `EdgeAuthError`, naming the token's secret (never the token);
- HTTP 200 with `success: false` (the SDK would return None): `EdgeApiError`.
Every call goes through `with_raw_response`, so the envelope's `success` is checked directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cloudflare

# The SDK imports each API resource on first attribute access (`client.dns`, about 0.1 s of CPU
# for dns here, 0.04 s for load_balancers): imported with this module instead, so that it happens
# in the function's init phase, not inside the switch, where it is the clients' outage (issue 14).
import cloudflare.resources.dns  # noqa: F401
import cloudflare.resources.load_balancers  # noqa: F401
import cloudflare.resources.user  # noqa: F401
import httpx

from quorum_dr import config
from quorum_dr.domain.edge import (
    EdgeApiError,
    EdgeAuthError,
    EdgePlanError,
    EdgeRateLimitedError,
    EdgeReadBackError,
    EdgeSwitchError,
    EdgeUnavailableError,
    PoolState,
    RecordState,
    SwitchReceipt,
    plan_dns_switch,
    plan_pool_switch,
    receipt_sentence,
    site_of_pools,
    site_of_records,
)
from quorum_dr.domain.edit_proof import EditProof, is_free, marked_at, marker
from quorum_dr.domain.state import utc_text
from quorum_dr.ports import EdgeSwitch, SecretSource

DEFAULT_RETRY_BUDGET_SECONDS = 60.0
MAX_ATTEMPTS = 12
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0
REQUEST_TIMEOUT_SECONDS = 10.0  # httpx: connect, read and write each


class CloudflareEdge(EdgeSwitch):
    """Points a service's public hostname at one of its sites through Cloudflare."""

    def __init__(
        self,
        edge: config.CloudflareEdge,
        sites: config.Sites,
        api_token: str,
        *,
        base_url: str | None = None,
        retry_budget_seconds: float = DEFAULT_RETRY_BUDGET_SECONDS,
        request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.edge = edge
        self.origins = {role: site.origin for role, site in _sites(sites).items()}
        self.pool_ids = _pools(edge)
        self.retry_budget_seconds = retry_budget_seconds
        self.calls = 0  # API requests sent, retries included
        self._sleep = sleep
        self._clock = clock
        url = base_url or (str(edge.api_base_url).rstrip("/") if edge.api_base_url else None)
        self._client = cloudflare.Cloudflare(
            api_token=api_token, base_url=url, max_retries=0, timeout=request_timeout_seconds
        )

    @classmethod
    def for_service(cls, service: config.Service, secrets: SecretSource, **kwargs: Any) -> CloudflareEdge:
        """Build from the config, reading the API token through the SecretSource port."""
        token = secrets.get(service.edge.api_token_secret)
        return cls(service.edge, service.sites, token, **kwargs)

    # -- the port ---------------------------------------------------------------------------------

    def current_site(self) -> str | None:
        return self.describe()[0]

    def describe(self) -> tuple[str | None, str]:
        """The current site and the sentence saying why."""
        if self.edge.kind == "dns":
            return site_of_records(self._read_records(), self.origins)
        return site_of_pools(self._read_pools())

    def switch_to(self, site: str, *, incident_id: str, dry_run: bool = False) -> SwitchReceipt:
        # incident_id is the correlation id of the caller's log lines; Cloudflare needs nothing of
        # it, since the switch is idempotent by reading first (a retry for the same incident writes
        # nothing). Exactly one switch per incident across concurrent callers is the incident lock's job.
        if self.edge.kind == "dns":
            return self._switch_records(site, dry_run=dry_run)
        return self._switch_pools(site, dry_run=dry_run)

    def verify_token(self) -> dict[str, Any]:
        """Cloudflare's own check of the API token (`GET /user/tokens/verify`): its `id`, `status`
        (active, disabled or expired) and `expires_on`. A token Cloudflare does not know raises
        EdgeAuthError. Reads nothing of the zone and writes nothing."""
        result = self._call(
            "verifying the API token", lambda: self._client.user.tokens.with_raw_response.verify()
        )
        if not isinstance(result, dict):
            raise EdgeApiError("Cloudflare returned no token status")
        return result

    def prove_edit(self, *, now: float, every: float, write: bool) -> EditProof:
        """That the token may edit what a switch edits (quorum_dr/domain/edit_proof.py): when every
        record's comment (pool's description) holds a marker younger than `every`, that is the
        proof; else, with `write`, each gets a new marker (nothing else is sent, so what the edge
        serves cannot change) and is read back. A refused write raises EdgeAuthError."""
        if self.edge.kind == "dns":
            fields = [(f"{r.label()} record", r.comment) for r in self._read_records()]
            kind, where = "record", "comment"
        else:
            pools = self._read_pools()
            fields = [(f"{site} pool {p.pool_id}", p.description) for site, p in pools.items()]
            kind, where = "pool", "description"
        times = [marked_at(text) for _, text in fields]
        if all(t is not None and now - t < every for t in times):
            oldest = min(t for t in times if t is not None)
            return EditProof(oldest, f"proven {utc_text(oldest)} by the marker in each {kind}'s {where}")
        taken = [label for label, text in fields if not is_free(text)]
        if taken:
            return EditProof(
                None,
                f"not proven: the {where} of the {taken[0]} is the operator's own, which quorum-dr does not "
                "overwrite (empty it to let readiness prove the token's edit permission)",
            )
        if not write:
            return EditProof(
                None, "not proven yet: the scheduled readiness function proves it (drctl never writes)"
            )
        mark = marker(now)
        if self.edge.kind == "dns":
            for state in self._read_records():
                self._mark_record(state, mark)
        else:
            for site, pool_id in self.pool_ids.items():
                self._mark_pool(pool_id, site, mark)
        labels = ", ".join(label for label, _ in fields)
        return EditProof(now, f"proven {utc_text(now)}: wrote only the {where} of {labels}")

    def _mark_record(self, state: RecordState, mark: str) -> None:
        # the comment alone: never the content or proxied
        self._patch_record(
            state, f"writing the edit check into the comment of the {state.label()} record", comment=mark
        )
        got = _record_state(self._get_record(state.record_id, f"reading back the {state.label()} record"))
        if got.comment != mark:
            raise EdgeReadBackError(f"read back the {state.label()} record without the edit check's comment")

    def _mark_pool(self, pool_id: str, site: str, mark: str) -> None:
        account = self.edge.account_id or ""
        self._call(
            f"writing the edit check into the description of the {site} pool {pool_id}",
            lambda: self._client.load_balancers.pools.with_raw_response.edit(
                pool_id, account_id=account, description=mark
            ),
        )
        if self._read_pool(pool_id).description != mark:
            raise EdgeReadBackError(
                f"read back the {site} pool {pool_id} without the edit check's description"
            )

    # -- DNS records ------------------------------------------------------------------------------

    def _read_records(self) -> list[RecordState]:
        return [self._read_record(record) for record in self.edge.records]

    def _read_record(self, record: config.DnsRecord) -> RecordState:
        what = f"reading the {record.type} record {record.name}"
        zone = self.edge.zone_id
        if record.record_id:
            return _record_state(self._get_record(record.record_id, what))
        found = self._call(
            what,
            lambda: self._client.dns.records.with_raw_response.list(
                zone_id=zone, name={"exact": record.name}, type=record.type, per_page=50
            ),
        )
        if not isinstance(found, list) or not found:
            raise EdgePlanError(f"no {record.type} record named {record.name} in zone {zone}")
        if len(found) > 1:
            ids = ", ".join(str(r.get("id")) for r in found)
            raise EdgePlanError(
                f"{len(found)} {record.type} records are named {record.name} in zone {zone} ({ids}); "
                "give record_id in the config"
            )
        return _record_state(found[0])

    def _get_record(self, record_id: str, what: str) -> Any:
        zone = self.edge.zone_id
        return self._call(
            what, lambda: self._client.dns.records.with_raw_response.get(record_id, zone_id=zone)
        )

    def _write_record(self, want: RecordState, what: str) -> None:
        self._patch_record(want, what, content=want.content, proxied=want.proxied)

    def _patch_record(self, record: RecordState, what: str, **fields: Any) -> None:
        """PATCH one record: its name, type and ttl as given (the API requires them), plus `fields`."""
        # `edit` is overloaded per record type; the type comes from the record we read.
        edit: Callable[..., Any] = self._client.dns.records.with_raw_response.edit
        self._call(
            what,
            lambda: edit(
                record.record_id,
                zone_id=self.edge.zone_id,
                name=record.name,
                type=record.type,
                ttl=record.ttl,
                **fields,
            ),
        )

    def _switch_records(self, site: str, *, dry_run: bool) -> SwitchReceipt:
        plan = plan_dns_switch(self._read_records(), site, self.origins)
        if dry_run or not plan.changed:
            return _nothing_written(site, plan.reason, changed=plan.changed, dry_run=dry_run)
        for want in plan.writes:
            self._write_record(want, f"pointing {want.label()} at {site}")
        for want in plan.writes:
            got = _record_state(self._get_record(want.record_id, f"reading back {want.label()}"))
            if (got.content, got.proxied) != (want.content, want.proxied):
                raise EdgeReadBackError(
                    f"read back {want.label()} as {got.content} (proxied {got.proxied}) "
                    f"after writing {want.content} (proxied {want.proxied})"
                )
        writes = len(plan.writes)
        return SwitchReceipt(
            site,
            True,
            writes,
            True,
            receipt_sentence(plan.reason, dry_run=False, changed=True, writes=writes),
        )

    # -- load-balancer pools -----------------------------------------------------------------------

    def _read_pool(self, pool_id: str) -> PoolState:
        account = self.edge.account_id or ""
        pool = self._call(
            f"reading the load-balancer pool {pool_id}",
            lambda: self._client.load_balancers.pools.with_raw_response.get(pool_id, account_id=account),
        )
        if not isinstance(pool, dict):
            raise EdgeApiError(f"Cloudflare returned no pool for {pool_id}")
        origins = pool.get("origins") or []
        enabled_origins = sum(1 for o in origins if isinstance(o, dict) and o.get("enabled", True))
        description = str(pool["description"]) if pool.get("description") is not None else None
        return PoolState(pool_id, bool(pool.get("enabled")), enabled_origins, description)

    def _read_pools(self) -> dict[str, PoolState]:
        return {site: self._read_pool(pool_id) for site, pool_id in self.pool_ids.items()}

    def _set_pool(self, pool_id: str, enabled: bool, site: str) -> None:
        account = self.edge.account_id or ""
        verb = "enabling" if enabled else "disabling"
        self._call(
            f"{verb} the {site} pool {pool_id}",
            lambda: self._client.load_balancers.pools.with_raw_response.edit(
                pool_id, account_id=account, enabled=enabled
            ),
        )
        got = self._read_pool(pool_id)
        if got.enabled != enabled:
            raise EdgeReadBackError(
                f"read back the {site} pool {pool_id} as enabled={got.enabled} after {verb} it"
            )

    def _switch_pools(self, site: str, *, dry_run: bool) -> SwitchReceipt:
        plan = plan_pool_switch(self._read_pools(), site)
        if dry_run or not plan.changed:
            return _nothing_written(site, plan.reason, changed=plan.changed, dry_run=dry_run)
        # The plan enables the target first; an error there raises before any pool is disabled,
        # and each step is read back before the next, so no moment has zero enabled pools.
        for step in plan.steps:
            self._set_pool(step.pool_id, step.enabled, step.site)
        writes = len(plan.steps)
        return SwitchReceipt(
            site,
            True,
            writes,
            True,
            receipt_sentence(plan.reason, dry_run=False, changed=True, writes=writes),
        )

    # -- one API call, with the error policy ------------------------------------------------------

    def _call(self, what: str, send: Callable[[], Any]) -> Any:
        """Send one request (retrying 429 / 5xx within the budget) and return the envelope's result."""
        started = self._clock()
        for attempt in range(MAX_ATTEMPTS):
            self.calls += 1
            try:
                raw = send()
            except (cloudflare.AuthenticationError, cloudflare.PermissionDeniedError) as exc:
                raise EdgeAuthError(
                    f"Cloudflare refused the API token from secret {self.edge.api_token_secret!r} "
                    f"while {what} (HTTP {exc.status_code}: {_errors(exc.body)}); check that the token "
                    "is current and may edit DNS records / load-balancer pools"
                ) from None
            except cloudflare.RateLimitError as exc:
                wait = _retry_after(exc.response.headers) or _backoff(attempt)
                self._wait_or_give_up(EdgeRateLimitedError, what, "HTTP 429 (rate limited)", started, wait)
                continue
            except (cloudflare.InternalServerError, cloudflare.APIConnectionError) as exc:
                detail = (
                    f"HTTP {exc.status_code}"
                    if isinstance(exc, cloudflare.APIStatusError)
                    else type(exc).__name__
                )
                self._wait_or_give_up(EdgeUnavailableError, what, detail, started, _backoff(attempt))
                continue
            except cloudflare.APIStatusError as exc:
                raise EdgeApiError(
                    f"Cloudflare refused {what}: HTTP {exc.status_code}: {_errors(exc.body)}"
                ) from None
            return _result(what, raw)
        raise EdgeUnavailableError(f"gave up {what} after {MAX_ATTEMPTS} attempts")

    def _wait_or_give_up(
        self, error: type[EdgeSwitchError], what: str, detail: str, started: float, wait: float
    ) -> None:
        spent = self._clock() - started
        if spent + wait > self.retry_budget_seconds:
            raise error(
                f"gave up {what}: {detail}, and waiting {wait:g} s more would exceed the retry budget "
                f"of {self.retry_budget_seconds:g} s ({spent:.1f} s spent)"
            )
        self._sleep(wait)


def _result(what: str, raw: Any) -> Any:
    try:
        body = raw.json()
    except ValueError:
        raise EdgeApiError(f"Cloudflare answered {what} with a body that is not JSON") from None
    if not isinstance(body, dict) or body.get("success") is not True:
        errors = body.get("errors") if isinstance(body, dict) else None
        raise EdgeApiError(f"Cloudflare answered {what} with success: false ({_errors({'errors': errors})})")
    return body.get("result")


def _record_state(result: Any) -> RecordState:
    if not isinstance(result, dict) or not result.get("id"):
        raise EdgeApiError("Cloudflare returned no DNS record")
    return RecordState(
        record_id=str(result["id"]),
        name=str(result.get("name", "")),
        type=str(result.get("type", "")),
        content=str(result.get("content", "")),
        proxied=bool(result.get("proxied", False)),
        ttl=int(result.get("ttl") or 1),
        comment=str(result["comment"]) if result.get("comment") is not None else None,
    )


def _errors(body: object) -> str:
    if isinstance(body, dict) and body.get("errors"):
        return "; ".join(
            f"{e.get('code')}: {e.get('message')}" for e in body["errors"] if isinstance(e, dict)
        )
    return "no error detail"


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: fall back to backoff
    return seconds if seconds >= 0 else None


def _backoff(attempt: int) -> float:
    return float(min(FIRST_BACKOFF_SECONDS * 2**attempt, MAX_BACKOFF_SECONDS))


def _sites(sites: config.Sites) -> dict[str, config.Site]:
    found = {"main": sites.main, "dr": sites.dr}
    if sites.cold is not None:
        found["cold"] = sites.cold
    return found


def _pools(edge: config.CloudflareEdge) -> dict[str, str]:
    if edge.pools is None:
        return {}
    found = {"main": edge.pools.main, "dr": edge.pools.dr}
    if edge.pools.cold:
        found["cold"] = edge.pools.cold
    return found


def _nothing_written(site: str, reason: str, *, changed: bool, dry_run: bool) -> SwitchReceipt:
    """The receipt of a switch that wrote nothing: already there (read back), or a dry run."""
    return SwitchReceipt(
        site,
        False,
        0,
        not changed,
        receipt_sentence(reason, dry_run=dry_run, changed=changed, writes=0),
        dry_run,
    )
