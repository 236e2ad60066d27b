"""The HTTP(S) check: status, body, headers, TLS, and Host/SNI override for an origin behind Cloudflare.

One `HttpClients` is shared by all HTTP checks of a round (asyncio, httpx). Every check opens its
own connection (no keep-alive): a probe measures the whole path, and checks of different Host/SNI
against the same address must never share a connection. A failure is classified by the phase it
happened in (resolve/connect, TLS handshake, waiting for the answer) and the exception's cause.

Every sentence names the URL redacted (`quorum_dr.domain.redact`): user-info and query values
never reach a result, an event or a log line. `body_regex` runs on RE2 (linear time: a target's
body cannot keep the round busy, which `asyncio.timeout` could not interrupt).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import certifi
import httpx

from quorum_dr.config import HttpCheck, compile_body_regex
from quorum_dr.domain.redact import redact_text, redact_url, redact_urls_in_logs
from quorum_dr.domain.results import FailureClass
from quorum_dr.probes.outcome import CheckOutcome

MAX_BODY_BYTES = 1024 * 1024  # a health page is small; a larger body is cut here
_USER_AGENT = "quorum-dr-probe/1"

redact_urls_in_logs("httpx")  # httpx logs each request's URL, credentials and query included


# httpcore's pool re-scans every request it holds whenever one starts or ends, so n checks on one
# client cost O(n^2): with 1,000 checks in a round that scan was a third of the round's CPU time.
# Checks are spread over clients of at most this many (connections are never reused anyway).
CHECKS_PER_CLIENT = 32


class HttpClients:
    """The httpx clients of one round, per TLS setting (verify on/off, CA bundle), each handed at
    most `CHECKS_PER_CLIENT` checks; clients of the same setting share one SSL context.

    Use as an async context manager; it closes its clients on exit.
    """

    def __init__(self) -> None:
        self._clients: dict[tuple[bool, str | None], list[httpx.AsyncClient]] = {}
        self._contexts: dict[tuple[bool, str | None], ssl.SSLContext] = {}
        self._handed: dict[tuple[bool, str | None], int] = {}

    async def __aenter__(self) -> HttpClients:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients = [client for shard in self._clients.values() for client in shard]
        self._clients, self._handed = {}, {}
        for client in clients:
            await client.aclose()

    def client_for(self, check: HttpCheck) -> httpx.AsyncClient:
        key = (check.verify_tls, check.ca_bundle if check.verify_tls else None)
        shard = self._clients.setdefault(key, [])
        handed = self._handed.get(key, 0)
        if handed % CHECKS_PER_CLIENT == 0:
            if key not in self._contexts:  # loading a CA bundle is slow: once per setting
                self._contexts[key] = _ssl_context(*key)
            shard.append(
                httpx.AsyncClient(
                    verify=self._contexts[key],
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
                    follow_redirects=False,
                    trust_env=False,
                    headers={"User-Agent": _USER_AGENT},
                )
            )
        self._handed[key] = handed + 1
        return shard[-1]


def _ssl_context(verify: bool, ca_bundle: str | None) -> ssl.SSLContext:
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=ca_bundle or certifi.where())


_PHASES = (
    "connect_tcp",
    "start_tls",
    "send_request_headers",
    "send_request_body",
    "receive_response_headers",
    "receive_response_body",
)


class _Phase:
    """Remembers which step of the exchange is running, from httpcore's trace events.

    Clean-up events (`response_closed`, which also runs after a cancellation) are not steps.
    """

    def __init__(self) -> None:
        self.name = "connect_tcp"

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith(".started"):
            step = event.rsplit(".", 2)[-2]
            if step in _PHASES:
                self.name = step


async def check_http(check: HttpCheck, *, timeout: float, clients: HttpClients) -> CheckOutcome:
    """Run one HTTP(S) check; never raises for a network failure, never takes longer than `timeout`."""
    url = str(check.url)
    shown = redact_url(url)
    sent_url = url  # as httpx normalised it, once built
    target = _host_port(check)
    phase = _Phase()
    headers = {"Host": check.host_header} if check.host_header else {}
    extensions: dict[str, Any] = {"trace": phase}
    if check.host_header and check.url.scheme == "https":
        extensions["sni_hostname"] = check.host_header
    started = time.perf_counter()

    def elapsed() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        async with asyncio.timeout(timeout):
            client = clients.client_for(check)
            request = client.build_request(
                check.method, url, headers=headers, timeout=timeout, extensions=extensions
            )
            sent_url = str(request.url)
            response = await client.send(request, stream=True)
            try:
                body = await _read_capped(response)
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        return _timed_out(phase.name, shown, target, timeout, elapsed())
    except httpx.ConnectError as exc:
        return _connect_failed(exc, target, elapsed())
    except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
        cls = FailureClass.TLS if _find(exc, ssl.SSLError) else FailureClass.HTTP_STATUS
        said = redact_text(_reason(exc), [url, sent_url])
        return CheckOutcome.down(cls, elapsed(), f"no valid HTTP answer from {shown}: {said}")
    return judge_response(check, url, response.status_code, response.headers, body, elapsed())


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY_BYTES:
            break
    return b"".join(chunks)[:MAX_BODY_BYTES]


def judge_response(
    check: HttpCheck,
    url: str,
    status: int,
    headers: httpx.Headers | dict[str, str],
    body: bytes,
    latency_ms: float,
) -> CheckOutcome:
    """Compare an answer with what the check expects: status, then headers, then body."""
    url = redact_url(url)
    if status not in check.expect_status:
        expected = " or ".join(str(s) for s in check.expect_status)
        return CheckOutcome.down(
            FailureClass.HTTP_STATUS, latency_ms, f"HTTP {status} from {url}, expected {expected}"
        )
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, want in check.expect_headers.items():
        got = lowered.get(name.lower())
        if got != want:
            seen = "is missing" if got is None else f"is {got!r}"
            return CheckOutcome.down(
                FailureClass.HEADER_MISMATCH,
                latency_ms,
                f"HTTP {status} from {url} but header {name} {seen}, expected {want!r}",
            )
    text = body.decode("utf-8", errors="replace")
    if check.body_contains is not None and check.body_contains not in text:
        return CheckOutcome.down(
            FailureClass.BODY_MISMATCH,
            latency_ms,
            f"HTTP {status} from {url} but the body does not contain {check.body_contains!r}",
        )
    if check.body_regex is not None and compile_body_regex(check.body_regex).search(text) is None:
        return CheckOutcome.down(
            FailureClass.BODY_MISMATCH,
            latency_ms,
            f"HTTP {status} from {url} but the body does not match /{check.body_regex}/",
        )
    via = f" (Host {check.host_header})" if check.host_header else ""
    return CheckOutcome.up(latency_ms, f"HTTP {status} from {url}{via} in {latency_ms:.0f} ms")


def _timed_out(phase: str, url: str, target: str, timeout: float, latency_ms: float) -> CheckOutcome:
    if phase == "connect_tcp":
        return CheckOutcome.down(
            FailureClass.CONNECT_TIMEOUT, latency_ms, f"no TCP connection to {target} within {timeout:g} s"
        )
    step = {
        "start_tls": "the TLS handshake did not finish",
        "send_request_headers": "the request could not be sent",
        "send_request_body": "the request could not be sent",
        "receive_response_headers": "no response headers came",
    }.get(phase, "the response body did not finish")
    return CheckOutcome.down(FailureClass.TIMEOUT, latency_ms, f"{url}: {step} within {timeout:g} s")


def _connect_failed(exc: BaseException, target: str, latency_ms: float) -> CheckOutcome:
    dns = _find(exc, socket.gaierror)
    if dns is not None:
        host = target.rsplit(":", 1)[0]
        return CheckOutcome.down(FailureClass.DNS, latency_ms, f"cannot resolve {host}: {_reason(dns)}")
    tls = _find(exc, ssl.SSLError)
    if tls is not None:
        return CheckOutcome.down(FailureClass.TLS, latency_ms, f"TLS failure with {target}: {_reason(tls)}")
    if _find(exc, ConnectionRefusedError) is not None:
        return CheckOutcome.down(FailureClass.CONNECT_REFUSED, latency_ms, f"connection to {target} refused")
    if _find(exc, TimeoutError) is not None:
        return CheckOutcome.down(FailureClass.CONNECT_TIMEOUT, latency_ms, f"no TCP connection to {target}")
    cause = _find(exc, OSError, lambda e: e.errno is not None)  # e.g. "No route to host"
    return CheckOutcome.down(
        FailureClass.CONNECT_REFUSED, latency_ms, f"cannot connect to {target}: {_reason(cause or exc)}"
    )


def _find(exc: BaseException, kind: type[BaseException], also: Callable[[Any], bool] = lambda _: True) -> Any:
    """The first exception of `kind` (for which `also` holds) in `exc`'s cause/context chain."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind) and also(current):
            return current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _host_port(check: HttpCheck) -> str:
    url = check.url
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"{url.host}:{port}"
