"""A local stand-in for Cloudflare's proxying: routes the public hostname to the current origin.

For each request the proxy takes the hostname from the Host header, asks its routes where that
hostname points now, forwards the request there (method, path, query, body, headers) and returns
the origin's answer. Where a hostname points comes from the Cloudflare emulator's state:

- a `DnsRoute`: the content of the zone's record named like the hostname (type A by default);
- a `PoolRoute`: the first enabled origin of the first enabled pool, in the pools' given order.

Sandbox convention: record content and origin addresses are `host:port` (e.g. `127.0.0.1:8081`),
`host` alone meaning port 80, or an `http://host:port` URL.

`EmulatorRoutes` reads the emulator's `GET /__admin/state` (no token, no faults, not in the API
log, so polling never uses up a fault the drill injected for the watchdog) at most every
`refresh_seconds` (200 ms by default), on demand when a request comes in: the proxy follows a switch
within that delay and costs nothing while idle.

Answers when it cannot forward: 530 with Cloudflare's "error code: 1016" when the hostname has
no origin (unknown hostname, no record, no enabled pool), 502 when the origin is unreachable.
Every forwarded answer carries `x-edge-origin: host:port`.

Run as a process for the drill:
`python -m quorum_dr_local.standins.edge_proxy --port 0 --emulator http://127.0.0.1:PORT
 --route dns:app.example.com:ZONE_ID[:TYPE] --route pool:app.example.com:ACCOUNT:POOL1,POOL2
 [--ready-file FILE]`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from quorum_dr_local.standins.served import ServedInThread

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}
MAX_BODY_BYTES = 16 << 20


class OriginLookup(Protocol):
    def origin(self, hostname: str) -> str | None:
        """`host:port` the hostname points at now, or None."""


@dataclass(frozen=True)
class DnsRoute:
    hostname: str
    zone_id: str
    record_type: str = "A"


@dataclass(frozen=True)
class PoolRoute:
    hostname: str
    account_id: str
    pool_ids: tuple[str, ...]


Route = DnsRoute | PoolRoute


def origin_from_state(state: dict[str, Any], route: Route) -> str | None:
    """Where `route`'s hostname points in an emulator state snapshot."""
    if isinstance(route, DnsRoute):
        zone = state.get("zones", {}).get(route.zone_id, {})
        for record in zone.get("records", []):
            if (
                record.get("name", "").lower() == route.hostname.lower()
                and record.get("type") == route.record_type
            ):
                return str(record.get("content")) or None
        return None
    pools = {p.get("id"): p for p in state.get("accounts", {}).get(route.account_id, {}).get("pools", [])}
    for pool_id in route.pool_ids:
        pool = pools.get(pool_id)
        if not pool or not pool.get("enabled"):
            continue
        for origin in pool.get("origins", []):
            if origin.get("enabled", True) and origin.get("address"):
                return str(origin["address"])
    return None


class EmulatorRoutes:
    """Origins read from the emulator's admin state, cached for `refresh_seconds`."""

    def __init__(self, emulator_url: str, routes: Sequence[Route], *, refresh_seconds: float = 0.2) -> None:
        self.state_url = emulator_url.rstrip("/") + "/__admin/state"
        self.routes = {r.hostname.lower(): r for r in routes}
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._state: dict[str, Any] | None = None
        self._read_at = 0.0

    def _current_state(self) -> dict[str, Any] | None:
        with self._lock:
            if self._state is None or time.monotonic() - self._read_at >= self.refresh_seconds:
                try:
                    with urllib.request.urlopen(self.state_url, timeout=2) as answer:  # noqa: S310 - loopback
                        self._state = json.loads(answer.read())
                except (OSError, ValueError):
                    pass  # keep the last known state; None until the emulator first answers
                self._read_at = time.monotonic()
            return self._state

    def origin(self, hostname: str) -> str | None:
        route = self.routes.get(hostname.lower())
        if route is None:
            return None
        state = self._current_state()
        return origin_from_state(state, route) if state is not None else None


def split_origin(origin: str) -> tuple[str, int]:
    """`host:port`, `host` (port 80) or `http://host:port` -> (host, port)."""
    if "://" in origin:
        url = urlsplit(origin)
        return url.hostname or "", url.port or 80
    host, sep, port = origin.rpartition(":")
    if sep and port.isdigit() and host and not host.endswith(":"):
        return host.strip("[]"), int(port)
    return origin, 80


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the client gave up (e.g. its timeout ran out): nothing to report
        super().handle_error(request, client_address)

    def __init__(self, address: tuple[str, int], lookup: OriginLookup, timeout_seconds: float) -> None:
        super().__init__(address, _ProxyHandler)
        self.lookup = lookup
        self.timeout_seconds = timeout_seconds


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyServer
    server_version = "edge-proxy"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._forward()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET  # noqa: N815

    def _plain(self, status: int, text: str, extra: dict[str, str] | None = None) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.close_connection = True

    def _forward(self) -> None:
        host_header = (self.headers.get("Host") or "").strip()
        hostname = host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._plain(413, "request body too large\n")
            return
        body = self.rfile.read(length) if length else None
        origin = self.server.lookup.origin(hostname)
        if not origin:
            self._plain(
                530,
                f"error code: 1016 (no origin for {hostname or 'this host'})\n",
                {"x-edge-error": "no-origin"},
            )
            return
        host, port = split_origin(origin)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["X-Forwarded-For"] = self.client_address[0]
        headers["CF-Connecting-IP"] = self.client_address[0]
        connection = http.client.HTTPConnection(host, port, timeout=self.server.timeout_seconds)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            self._plain(
                502,
                f"bad gateway: origin {origin} unreachable ({type(exc).__name__})\n",
                {"x-edge-error": "origin-unreachable", "x-edge-origin": origin},
            )
            return
        finally:
            connection.close()
        self.send_response(answer.status, answer.reason)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.send_header("x-edge-origin", origin)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.close_connection = True


class EdgeProxy(ServedInThread):
    """The proxy server; `start()` runs it in a thread, `stop()` ends it."""

    thread_name = "edge-proxy"

    def __init__(
        self,
        lookup: OriginLookup,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        origin_timeout_seconds: float = 10.0,
    ) -> None:
        self.lookup = lookup
        super().__init__(_ProxyServer((host, port), lookup, origin_timeout_seconds))


def parse_route(text: str) -> Route:
    """`dns:HOST:ZONE[:TYPE]` or `pool:HOST:ACCOUNT:POOL1,POOL2`."""
    kind, _, rest = text.partition(":")
    parts = rest.split(":")
    if kind == "dns" and len(parts) in (2, 3) and all(parts):
        return DnsRoute(parts[0], parts[1], parts[2] if len(parts) == 3 else "A")
    if kind == "pool" and len(parts) == 3 and all(parts):
        return PoolRoute(parts[0], parts[1], tuple(p for p in parts[2].split(",") if p))
    raise ValueError(f"bad route {text!r}: use dns:HOST:ZONE[:TYPE] or pool:HOST:ACCOUNT:POOL1,POOL2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local edge proxy following the Cloudflare emulator")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--emulator", required=True, help="the emulator's URL, e.g. http://127.0.0.1:8787")
    parser.add_argument("--route", action="append", required=True, type=parse_route)
    parser.add_argument("--refresh-seconds", type=float, default=0.2)
    parser.add_argument("--ready-file", help="write the chosen port here once listening")
    args = parser.parse_args(argv)
    proxy = EdgeProxy(
        EmulatorRoutes(args.emulator, args.route, refresh_seconds=args.refresh_seconds),
        host=args.host,
        port=args.port,
    )
    print(f"edge proxy listening on {args.host}:{proxy.port}", flush=True)
    return proxy.serve_as_process(args.ready_file)


if __name__ == "__main__":
    raise SystemExit(main())
