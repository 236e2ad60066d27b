"""Probe regions as network namespaces: reachability, a real partition, heal, link down, teardown."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import threading
from collections.abc import Iterator

import pytest

from quorum_dr_local.standins import netns
from quorum_dr_local.standins.netns import RegionNetwork

pytestmark = pytest.mark.skipif(netns.availability() is not None, reason=str(netns.availability()))

CONNECT_TIMEOUT = 1.5


class _Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        body = b"site"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def network() -> Iterator[RegionNetwork]:
    net = RegionNetwork(["eu-west-2", "us-east-1"]).create()
    try:
        yield net
    finally:
        net.teardown()


@pytest.fixture
def site_server(network: RegionNetwork) -> Iterator[tuple[str, int]]:
    address = network.add_site("main")
    server = http.server.ThreadingHTTPServer((address, 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield address, server.server_address[1]
    server.shutdown()
    server.server_close()


def connect_from(network: RegionNetwork, region: str, address: str, port: int) -> str:
    """'ok', 'timeout' or the error class, for a TCP connect made from inside the region."""
    with network.inside(region):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.connect((address, port))
        return "ok"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return type(exc).__name__
    finally:
        sock.close()


def curl_from(network: RegionNetwork, region: str, url: str) -> str:
    done = network.run(
        region, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", url]
    )
    return done.stdout.strip() or f"exit {done.returncode}"


def test_a_region_reaches_a_site_in_the_root_namespace(network: RegionNetwork, site_server: tuple[str, int]):
    address, port = site_server
    assert connect_from(network, "eu-west-2", address, port) == "ok"
    if shutil.which("curl"):
        assert curl_from(network, "us-east-1", f"http://{address}:{port}/") == "200"


@pytest.mark.parametrize("method", ["iptables", "neighbour"])
def test_partition_gives_a_real_connect_timeout_and_heal_restores(
    network: RegionNetwork, site_server: tuple[str, int], method: str
):
    if method == "iptables" and shutil.which("iptables") is None:
        pytest.skip("iptables is not installed")
    address, port = site_server
    cut = network.partition("eu-west-2", address, port, method=method)
    assert connect_from(network, "eu-west-2", address, port) == "timeout"
    # the other region is not partitioned, and the cut region still reaches the control address
    assert connect_from(network, "us-east-1", address, port) == "ok"
    network.heal(cut)
    assert connect_from(network, "eu-west-2", address, port) == "ok"


def test_link_down_cuts_a_whole_region(network: RegionNetwork, site_server: tuple[str, int]):
    address, port = site_server
    network.link_down("us-east-1")
    assert connect_from(network, "us-east-1", address, port) == "timeout"
    assert connect_from(network, "eu-west-2", address, port) == "ok"
    network.link_up("us-east-1")
    assert connect_from(network, "us-east-1", address, port) == "ok"


def test_a_process_started_in_a_region_reports_its_own_pid(network: RegionNetwork):
    process = network.start("eu-west-2", ["sleep", "30"])
    assert process.pid > 1
    with open(f"/proc/{process.pid}/cmdline", "rb") as cmdline:
        assert cmdline.read().split(b"\0")[0] == b"sleep"
    region_ns = network.run("eu-west-2", ["readlink", "/proc/self/ns/net"]).stdout.strip()
    assert os.readlink(f"/proc/{process.pid}/ns/net") == region_ns
    assert region_ns != os.readlink("/proc/self/ns/net")
    process.stop()
    assert process.popen.poll() is not None


def test_teardown_leaves_no_namespace_or_link_and_is_idempotent():
    net = RegionNetwork(["eu-west-2", "us-east-1", "us-west-2"]).create()
    net.add_site("dr")
    sleeper = net.start("us-west-2", ["sleep", "30"])
    prefix = net.prefix
    assert sum(n.startswith(prefix) for n in netns.list_namespaces()) == 3
    removed = net.teardown()
    assert any(r.startswith("netns ") for r in removed)
    assert not [n for n in netns.list_namespaces() if n.startswith(prefix)]
    assert not [n for n in netns.list_links() if n.startswith(prefix)]
    assert sleeper.popen.poll() is not None
    assert net.teardown() == []


def test_cleanup_stale_removes_what_a_dead_run_left_behind():
    dead_pid = 4_000_000  # the highest PID below this that no process holds
    while netns._alive(dead_pid):
        dead_pid -= 1
    leftover = RegionNetwork(["eu-west-2"], prefix=f"qdr-{dead_pid}-").create()
    assert leftover.regions
    removed = netns.cleanup_stale()
    assert f"netns qdr-{dead_pid}-r1" in removed
    assert not [n for n in netns.list_namespaces() if n.startswith(f"qdr-{dead_pid}-")]
    assert not [n for n in netns.list_links() if n.startswith(f"qdr-{dead_pid}-")]


def test_without_root_the_message_says_partition_scenarios_are_skipped(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(netns.NetnsUnavailable, match="not running as root.*skipped"):
        RegionNetwork(["eu-west-2"]).create()
