"""The HTTP(S) check: status, body, headers, TLS, and Host/SNI override for an origin behind Cloudflare.

Each check is one HTTP/1.1 exchange on its own connection (no keep-alive): a probe measures the
whole path, and checks of different Host/SNI against the same address must never share a
connection. The exchange is asyncio's own TCP and TLS streams with h11 (the sans-I/O HTTP/1.1
state machine httpcore runs on) speaking the protocol: resolve, connect, TLS handshake (SNI = the
check's Host header when it sets one, the certificate verified against that name), send the
request, read the answer's head, read the body up to MAX_BODY_BYTES. Redirects are never followed
(a 3xx is judged against `expect_status`), no proxy or environment setting is used, user-info in
the URL is sent as Basic credentials. A failure is classified by the step it happened in and the
exception's cause.

Why not an HTTP client library: with httpx a round of 1,000 checks cost about 1.2 ms of CPU per
check (client, pool, anyio task groups); aiohttp about 0.5 ms a request (measured alone against the
same server); this exchange about 0.3 ms (bench/probe_round.py; issue 14). The probe round is
CPU-bound in one process, so that is its time.

Every sentence names the URL redacted (`quorum_dr.domain.redact`): user-info and query values
never reach a result, an event or a log line. `body_regex` runs on RE2 (linear time: a target's
body cannot keep the round busy, which `asyncio.timeout` could not interrupt).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

import certifi
import h11

from quorum_dr.config import HttpCheck, compile_body_regex
from quorum_dr.domain.redact import redact_text, redact_url
from quorum_dr.domain.results import FailureClass
from quorum_dr.probes.outcome import CheckOutcome

MAX_BODY_BYTES = 1024 * 1024  # a health page is small; a larger body is cut here
MAX_HEAD_BYTES = 100 * 1024  # the answer's status line and headers (httpcore's limit too)
_READ_BYTES = 64 * 1024
_USER_AGENT = "quorum-dr-probe/1"


class TlsContexts:
    """The SSL contexts of one round, one per TLS setting (verify on/off, CA bundle): loading a CA
    bundle is slow, so it happens once per setting and round, and checks of the same setting share
    the context (a context holds no per-connection state).

    Use as an async context manager (it holds nothing to close; the form is kept for the round).
    """

    def __init__(self) -> None:
        self._contexts: dict[tuple[bool, str | None], ssl.SSLContext] = {}

    async def __aenter__(self) -> TlsContexts:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._contexts = {}

    def context_for(self, check: HttpCheck) -> ssl.SSLContext:
        key = (check.verify_tls, check.ca_bundle if check.verify_tls else None)
        if key not in self._contexts:
            self._contexts[key] = _ssl_context(*key)
        return self._contexts[key]


def _ssl_context(verify: bool, ca_bundle: str | None) -> ssl.SSLContext:
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=ca_bundle or certifi.where())


class _Answer:
    """What came back: status, headers (names lower-cased, repeated ones joined with ", "), body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _Exchange:
    """One request and its answer on one connection; `step` says which step is running."""

    def __init__(self, check: HttpCheck, contexts: TlsContexts) -> None:
        self.check = check
        self.contexts = contexts
        self.step = "connect_tcp"

    async def run(self) -> _Answer:
        url = self.check.url
        host = (url.host or "").strip("[]")
        port = url.port or (443 if url.scheme == "https" else 80)
        reader, writer = await _connect(host, port)
        try:
            if url.scheme == "https":
                self.step = "start_tls"
                await writer.start_tls(
                    self.contexts.context_for(self.check), server_hostname=self.check.host_header or host
                )
            self.step = "send_request_headers"
            connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
            request = h11.Request(
                method=self.check.method, target=_target(self.check), headers=_headers(self.check)
            )
            writer.write(connection.send(request) + (connection.send(h11.EndOfMessage()) or b""))
            await writer.drain()
            self.step = "receive_response_headers"
            head = await _next(connection, reader, (h11.Response,))
            assert isinstance(head, h11.Response)
            headers = _header_map(head.headers)
            self.step = "receive_response_body"
            body = await _read_body(connection, reader, headers.get("content-encoding", ""))
            return _Answer(head.status_code, headers, body)
        finally:
            writer.transport.abort()  # no keep-alive, nothing more to say: close at once


async def _connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Resolve (an address literal needs no resolver), then try each address in turn; raise the
    first address's error if none answers (as the TCP check does)."""
    addresses: list[tuple[int, str, int]]
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        loop = asyncio.get_running_loop()
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [(family, str(sockaddr[0]), int(sockaddr[1])) for family, _, _, _, sockaddr in found]
    else:
        addresses = [(socket.AF_INET6 if literal.version == 6 else socket.AF_INET, host, port)]
    first_error: OSError | None = None
    for family, address, number in addresses:
        try:
            return await asyncio.open_connection(address, number, family=family, limit=_READ_BYTES)
        except OSError as exc:
            first_error = first_error or exc
    raise first_error or OSError(f"no address for {host}")


def _target(check: HttpCheck) -> str:
    url = check.url
    return (url.path or "/") + (f"?{url.query}" if url.query is not None else "")


def _headers(check: HttpCheck) -> list[tuple[str, str]]:
    url = check.url
    default_port = 443 if url.scheme == "https" else 80
    host = url.host or ""
    if url.port not in (None, default_port):
        host = f"{host}:{url.port}"
    headers = [
        ("Host", check.host_header or host),
        ("Accept", "*/*"),
        ("Accept-Encoding", "gzip, deflate"),
        ("Connection", "close"),
        ("User-Agent", _USER_AGENT),
    ]
    if url.username or url.password:
        pair = f"{unquote(url.username or '')}:{unquote(url.password or '')}".encode()
        headers.append(("Authorization", "Basic " + base64.b64encode(pair).decode("ascii")))
    return headers


async def _next(connection: h11.Connection, reader: asyncio.StreamReader, wanted: tuple[type, ...]) -> Any:
    """The next event of one of `wanted` types (1xx answers skipped), reading as needed."""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await reader.read(_READ_BYTES))
        elif isinstance(event, wanted):
            return event
        elif isinstance(event, h11.ConnectionClosed):
            raise h11.RemoteProtocolError("Server disconnected without sending a response.")
        elif not isinstance(event, h11.InformationalResponse):
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} from the server")


async def _read_body(connection: h11.Connection, reader: asyncio.StreamReader, encoding: str) -> bytes:
    """The body, decoded (gzip, deflate), cut at MAX_BODY_BYTES."""
    decoder = _decoder(encoding)
    chunks: list[bytes] = []
    size = 0
    while size < MAX_BODY_BYTES:
        event = await _next(connection, reader, (h11.Data, h11.EndOfMessage))
        if isinstance(event, h11.EndOfMessage):
            break
        data = bytes(event.data)
        if decoder is not None:
            data = decoder.decompress(data, MAX_BODY_BYTES - size)
        chunks.append(data)
        size += len(data)
    return b"".join(chunks)[:MAX_BODY_BYTES]


def _decoder(encoding: str) -> Any:
    coding = encoding.strip().lower()
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if coding == "deflate":
        return zlib.decompressobj()
    return None


def _header_map(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()  # h11 lower-cases names already
        text = _header_text(value)
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _header_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


async def check_http(check: HttpCheck, *, timeout: float, contexts: TlsContexts) -> CheckOutcome:
    """Run one HTTP(S) check; never raises for a network failure, never takes longer than `timeout`."""
    url = str(check.url)
    shown = redact_url(url)
    target = _host_port(check)
    exchange = _Exchange(check, contexts)
    started = time.perf_counter()

    def elapsed() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        async with asyncio.timeout(timeout):
            answer = await exchange.run()
    except TimeoutError:
        return _timed_out(exchange.step, shown, target, timeout, elapsed())
    except (OSError, h11.ProtocolError, zlib.error) as exc:
        if exchange.step in ("connect_tcp", "start_tls"):
            return _connect_failed(exc, target, elapsed())
        cls = FailureClass.TLS if _find(exc, ssl.SSLError) else FailureClass.HTTP_STATUS
        said = redact_text(_reason(exc), [url])
        return CheckOutcome.down(cls, elapsed(), f"no valid HTTP answer from {shown}: {said}")
    return judge_response(check, url, answer.status, answer.headers, answer.body, elapsed())


def judge_response(
    check: HttpCheck,
    url: str,
    status: int,
    headers: Mapping[str, str],
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
