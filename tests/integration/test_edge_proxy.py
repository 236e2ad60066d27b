"""The edge proxy routes the public hostname to whatever origin the emulator points at."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from quorum_dr import config
from quorum_dr.adapters.cloudflare_edge import CloudflareEdge
from quorum_dr_local.standins.cloudflare_emulator import CloudflareEmulator, seed_for_service
from quorum_dr_local.standins.edge_proxy import (
    DnsRoute,
    EdgeProxy,
    EmulatorRoutes,
    PoolRoute,
    parse_route,
    split_origin,
)

TOKEN = "proxy-test-token"
HOST = "app.example.com"
ZONE = "zone-1"


class Origin:
    """A site's web server: answers with its site name, the method, the Host it saw and the body."""

    def __init__(self, name: str) -> None:
        site_name = name

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                data = json.dumps(
                    {
                        "site": site_name,
                        "method": self.command,
                        "path": self.path,
                        "host": self.headers.get("Host"),
                        "body": body.decode(),
                    }
                ).encode()
                self.send_response(201 if self.command == "POST" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Site", site_name)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # closed on exit: nothing listens there


@pytest.fixture
def origins() -> Iterator[dict[str, Origin]]:
    sites = {"main": Origin("main"), "dr": Origin("dr")}
    yield sites
    for origin in sites.values():
        origin.stop()


def service(origins: dict[str, Origin]) -> config.Service:
    def site(name: str) -> dict[str, object]:
        return {
            "label": name,
            "marker": name,
            "origin": origins[name].address,
            "checks": [{"type": "tcp", "name": "tcp", "host": "127.0.0.1", "port": 1}],
        }

    return config.Service.model_validate(
        {
            "name": "booking",
            "public_hostname": HOST,
            "sites": {"main": site("main"), "dr": site("dr")},
            "edge": {
                "kind": "load_balancer",
                "zone_id": ZONE,
                "account_id": "acct",
                "api_token_secret": "cf",
                "records": [{"name": HOST}],
                "pools": {"main": "pool-main", "dr": "pool-dr"},
            },
        }
    )


@pytest.fixture
def svc(origins: dict[str, Origin]) -> config.Service:
    return service(origins)


@pytest.fixture
def emulator(svc: config.Service) -> Iterator[CloudflareEmulator]:
    with CloudflareEmulator(seed_for_service(svc, TOKEN)) as running:
        yield running


@pytest.fixture
def proxy(emulator: CloudflareEmulator) -> Iterator[EdgeProxy]:
    routes = EmulatorRoutes(emulator.url, [DnsRoute(HOST, ZONE)], refresh_seconds=0)
    with EdgeProxy(routes) as running:
        yield running


def via_edge(
    proxy: EdgeProxy,
    path: str = "/health",
    *,
    host: str = HOST,
    method: str = "GET",
    content: bytes | None = None,
) -> httpx.Response:
    return httpx.request(method, proxy.url + path, headers={"Host": host}, content=content)


def test_the_proxy_follows_a_dns_switch(
    proxy: EdgeProxy, emulator: CloudflareEmulator, svc: config.Service, origins: dict[str, Origin]
) -> None:
    before = via_edge(proxy)
    assert before.status_code == 200 and before.json()["site"] == "main"
    assert before.headers["x-edge-origin"] == origins["main"].address
    edge = CloudflareEdge(
        svc.edge.model_copy(update={"kind": "dns"}), svc.sites, TOKEN, base_url=emulator.base_url
    )
    assert edge.switch_to("dr", incident_id="inc-1").writes == 1
    after = via_edge(proxy)
    assert after.json()["site"] == "dr" and after.headers["X-Site"] == "dr"


def test_method_path_body_and_host_are_forwarded(proxy: EdgeProxy) -> None:
    answer = via_edge(proxy, "/orders?n=1", method="POST", content=b'{"item": "seat 12A"}')
    assert answer.status_code == 201
    assert answer.json() == {
        "site": "main",
        "method": "POST",
        "path": "/orders?n=1",
        "host": HOST,
        "body": '{"item": "seat 12A"}',
    }


def test_the_proxy_reads_state_without_using_up_api_faults(
    proxy: EdgeProxy, emulator: CloudflareEmulator
) -> None:
    for _ in range(3):
        assert via_edge(proxy).status_code == 200
    assert emulator.requests() == []  # admin reads are not API requests


def test_unknown_hostname_gets_a_cloudflare_style_530(proxy: EdgeProxy) -> None:
    answer = via_edge(proxy, host="other.example.com")
    assert answer.status_code == 530
    assert answer.text.startswith("error code: 1016")


def test_unreachable_origin_gets_502(proxy: EdgeProxy, emulator: CloudflareEmulator) -> None:
    dead = free_port_address()
    emulator.state.zones[ZONE]["records"][0]["content"] = dead
    answer = via_edge(proxy)
    assert answer.status_code == 502
    assert answer.headers["x-edge-error"] == "origin-unreachable" and answer.headers["x-edge-origin"] == dead


def test_a_pool_route_follows_the_enabled_pool(emulator: CloudflareEmulator, svc: config.Service) -> None:
    routes = EmulatorRoutes(
        emulator.url, [PoolRoute(HOST, "acct", ("pool-main", "pool-dr"))], refresh_seconds=0
    )
    with EdgeProxy(routes) as proxy:
        assert via_edge(proxy).json()["site"] == "main"
        CloudflareEdge(svc.edge, svc.sites, TOKEN, base_url=emulator.base_url).switch_to(
            "dr", incident_id="inc-1"
        )
        assert via_edge(proxy).json()["site"] == "dr"
        emulator.state.accounts["acct"]["pools"][1]["enabled"] = False
        assert via_edge(proxy).status_code == 530  # no enabled pool: no origin


def test_routes_and_origins_parse() -> None:
    assert parse_route("dns:app.example.com:zone-1") == DnsRoute("app.example.com", "zone-1", "A")
    assert parse_route("pool:app.example.com:acct:p1,p2") == PoolRoute(
        "app.example.com", "acct", ("p1", "p2")
    )
    with pytest.raises(ValueError, match="bad route"):
        parse_route("dns:app.example.com")
    assert split_origin("127.0.0.1:8081") == ("127.0.0.1", 8081)
    assert split_origin("origin.example.com") == ("origin.example.com", 80)
    assert split_origin("http://127.0.0.1:9000") == ("127.0.0.1", 9000)


def test_the_proxy_runs_as_a_process(emulator: CloudflareEmulator, tmp_path: Path) -> None:
    ready = tmp_path / "port"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "quorum_dr_local.standins.edge_proxy",
            "--emulator",
            emulator.url,
            "--route",
            f"dns:{HOST}:{ZONE}",
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):  # bounded wait for the port file
            if ready.exists() and ready.read_text():
                break
            time.sleep(0.05)
        answer = httpx.get(f"http://127.0.0.1:{ready.read_text()}/health", headers={"Host": HOST})
        assert answer.json()["site"] == "main"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
