"""The verify round: after a switch, what does the public hostname answer from this region?

The state machine's verify step invokes the probe function of several regions with a verify
request. Each region fetches `https://{public_hostname}{public_health_path}` (or the service's
`public_endpoint`, sent with Host / SNI = the public hostname) and reports the site marker it saw in
the `X-Site` header. The caller counts the regions that saw the target's marker against the quorum.

With `origin_only` (the cold site's health fallback) the region runs the target site's own checks
instead: the site is ready when all its voting checks pass.
"""

from __future__ import annotations

import functools
import ssl
import time
from dataclasses import asdict, dataclass
from typing import Any

import certifi
import httpx

from quorum_dr.config import Service
from quorum_dr.domain.redact import redact_text, redact_url, redact_urls_in_logs

MARKER_HEADER = "X-Site"
_USER_AGENT = "quorum-dr-verify/1"

redact_urls_in_logs("httpx")  # httpx logs each request's URL, credentials and query included


@dataclass(frozen=True)
class SiteSeen:
    """What one region saw: the marker (None when no answer), and whether it is the one expected."""

    region: str
    expect_site: str
    ok: bool
    marker_seen: str | None
    status: int | None
    reason: str
    latency_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """certifi's CA bundle, loaded once per process (about 20 ms of CPU a load): a client context
    holds no per-connection state, so every verify round may share it."""
    return ssl.create_default_context(cafile=certifi.where())


def public_url(service: Service) -> str:
    """Where to connect for the public hostname: `public_endpoint` (its path, or the health path
    when it has none), else https://{public_hostname}{public_health_path}."""
    if service.public_endpoint is None:
        return f"https://{service.public_hostname}{service.public_health_path}"
    endpoint = str(service.public_endpoint)
    if service.public_endpoint.path in (None, "", "/"):
        return endpoint.rstrip("/") + service.public_health_path
    return endpoint


def see_public(
    service: Service, expect_site: str, *, region: str, timeout: float, transport: Any = None
) -> SiteSeen:
    """GET the public hostname once, bounded by `timeout`; never raises for a network failure."""
    site = getattr(service.sites, expect_site)
    if site is None:
        raise ValueError(f"service {service.name!r} has no {expect_site} site configured")
    want = site.marker
    url = public_url(service)
    host = service.public_hostname
    extensions: dict[str, Any] = {"sni_hostname": host} if url.startswith("https://") else {}
    started = time.perf_counter()

    def seen(ok: bool, marker: str | None, status: int | None, reason: str) -> SiteSeen:
        latency = (time.perf_counter() - started) * 1000
        return SiteSeen(region, expect_site, ok, marker, status, reason, round(latency, 1))

    try:
        with httpx.Client(
            verify=_tls_context(),
            timeout=timeout,
            trust_env=False,
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": _USER_AGENT},
        ) as client:
            response = client.get(url, headers={"Host": host}, extensions=extensions)
    except httpx.HTTPError as exc:
        what = type(exc).__name__
        said = redact_text(str(exc), [url])
        shown = redact_url(url)
        return seen(False, None, None, f"{region}: no answer from {host} via {shown}: {what}: {said}")
    marker = response.headers.get(MARKER_HEADER)
    via = "" if url.startswith(f"https://{host}/") else f" via {redact_url(url)}"
    if response.status_code != 200:
        reason = f"{region}: {host}{via} answered HTTP {response.status_code} (marker {marker!r})"
        return seen(False, marker, response.status_code, reason + f", expected 200 from {expect_site}")
    if marker != want:
        reason = f"{region}: {host}{via} is served by {marker!r}, expected {expect_site}'s marker {want!r}"
        return seen(False, marker, 200, reason)
    return seen(True, marker, 200, f"{region}: {host}{via} is served by {expect_site} (marker {want!r})")
