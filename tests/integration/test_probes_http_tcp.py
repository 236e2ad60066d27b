"""HTTP(S) and TCP checks against real servers on 127.0.0.1 that these tests start and stop."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from quorum_dr.adapters.secrets import StaticSecrets
from quorum_dr.cli import main as drctl
from quorum_dr.config import HttpCheck, TcpCheck, WatchdogConfig, parse_config
from quorum_dr.domain.results import CONTROL_SITE, FailureClass, Vote
from quorum_dr.probes import http as probes_http
from quorum_dr.probes.http import TlsContexts, check_http
from quorum_dr.probes.outcome import CheckOutcome
from quorum_dr.probes.round import run_round
from quorum_dr.probes.tcp import check_tcp

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    release: threading.Event  # set at teardown so hanging handlers end

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
        pass

    def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("X-Site", "main")
        self.send_header("Content-Length", "1000")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: C901 - one branch per scenario, read top to bottom
        path = self.path
        if path == "/health":
            self._send(200, '{"status": "ok", "site": "main"}', {"X-Site": "main"})
        elif path == "/slow":
            time.sleep(0.3)
            self._send(200, '{"status": "ok"}', {"X-Site": "main"})
        elif path == "/hang":
            self.release.wait(30)
        elif path == "/error":
            self._send(500, '{"status": "broken"}', {"X-Site": "main"})
        elif path == "/wrong-body":
            self._send(200, '{"status": "maintenance"}', {"X-Site": "main"})
        elif path == "/no-marker":
            self._send(200, '{"status": "ok"}')
        elif path == "/auth":  # Basic ops:p@ss
            if self.headers.get("Authorization") == "Basic b3BzOnBAc3M=":
                self._send(200, '{"status": "ok"}', {"X-Site": "main"})
            else:
                self._send(401, "{}")
        elif path == "/moved":
            self._send(302, "{}", {"Location": "/health"})
        elif path == "/gzip":
            data = gzip.compress(b'{"status": "ok", "site": "main"}')
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif path == "/big":
            self._send(200, "x" * 5000 + '"status": "ok"')
        elif path == "/hang-up":  # the connection closes without an answer
            self.close_connection = True
        elif path.startswith("/echo"):  # what the probe sent
            sent = {k.lower(): v for k, v in self.headers.items()}
            self._send(200, json.dumps({"path": path, **sent}))
        elif path == "/vhost":
            host = self.headers.get("Host", "")
            site = "main" if host == "app.test" else "default"
            self._send(200, f'{{"host": "{host}"}}', {"X-Site": site})
        else:
            self._send(404, "{}")


class _Server:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        release = threading.Event()
        handler = type("Handler", (_Handler,), {"release": release})
        self.release = release
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def http_server() -> Iterator[_Server]:
    server = _Server()
    yield server
    server.stop()


def _cert(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, issuer_key: Any, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    # what a real CA issues, and Python 3.13's strict verification (VERIFY_X509_STRICT) requires:
    # key identifiers on both, key usage on the CA
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    )
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
    )
    if ca:
        usage = dict.fromkeys(
            ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment"), False
        )
        builder = builder.add_extension(
            x509.KeyUsage(
                **usage,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA (untrusted by the system) with two leaf certificates: app.test and default.test."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "quorum-dr test CA")])
    ca = _cert("quorum-dr test CA", ca_key, ca_name, ca_key, ca=True)
    files = {"ca": folder / "ca.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name in ("app.test", "default.test"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(name, key, ca_name, ca_key, ca=False)
        pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        files[name] = folder / f"{name}.pem"
        files[name].write_bytes(pem)
    return files


@pytest.fixture(scope="module")
def https_server(tls_files: dict[str, Path]) -> Iterator[_Server]:
    """Serves default.test's certificate, and app.test's when the client's SNI asks for app.test."""
    default = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    default.load_cert_chain(tls_files["default.test"])
    app = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    app.load_cert_chain(tls_files["app.test"])

    def pick(sock: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        if server_name == "app.test":
            sock.context = app

    default.sni_callback = pick  # type: ignore[assignment]
    server = _Server(tls=default)
    yield server
    server.stop()


@pytest.fixture()
def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


@pytest.fixture()
def full_backlog_port() -> Iterator[int]:
    """A port whose accept queue is full: new SYNs are dropped, so a connect really times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(8):  # enough to fill the queue; later connects hang
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.2)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------


def http(url: str, timeout: float = 2, **fields: Any) -> CheckOutcome:
    check = HttpCheck(name="health", url=url, **fields)

    async def one() -> CheckOutcome:
        async with TlsContexts() as contexts:
            return await check_http(check, timeout=timeout, contexts=contexts)

    return asyncio.run(one())


def test_healthy_endpoint_is_up(http_server: _Server) -> None:
    url = f"http://127.0.0.1:{http_server.port}/health"
    outcome = http(
        url, body_contains='"status": "ok"', body_regex=r'"site":\s*"main"', expect_headers={"X-Site": "main"}
    )
    assert outcome.vote is Vote.UP, outcome.detail
    assert outcome.failure_class is None
    assert outcome.latency_ms > 0
    assert outcome.detail.startswith(f"HTTP 200 from {url}")


def test_slow_endpoint_within_timeout_is_up(http_server: _Server) -> None:
    outcome = http(f"http://127.0.0.1:{http_server.port}/slow", timeout=10)
    assert outcome.vote is Vote.UP, outcome.detail
    assert outcome.latency_ms >= 300


def test_hanging_endpoint_times_out(http_server: _Server) -> None:
    outcome = http(f"http://127.0.0.1:{http_server.port}/hang", timeout=0.5)
    assert outcome.vote is Vote.DOWN
    assert outcome.failure_class is FailureClass.TIMEOUT
    assert "no response headers came within 0.5 s" in outcome.detail


def test_http_500_is_http_status(http_server: _Server) -> None:
    url = f"http://127.0.0.1:{http_server.port}/error"
    outcome = http(url)
    assert outcome.failure_class is FailureClass.HTTP_STATUS
    assert outcome.detail == f"HTTP 500 from {url}, expected 200"


def test_expected_status_list(http_server: _Server) -> None:
    outcome = http(f"http://127.0.0.1:{http_server.port}/error", expect_status=[200, 500])
    assert outcome.vote is Vote.UP


def test_wrong_body_is_body_mismatch(http_server: _Server) -> None:
    outcome = http(f"http://127.0.0.1:{http_server.port}/wrong-body", body_contains='"status": "ok"')
    assert outcome.failure_class is FailureClass.BODY_MISMATCH
    assert 'does not contain \'"status": "ok"\'' in outcome.detail
    outcome = http(f"http://127.0.0.1:{http_server.port}/wrong-body", body_regex=r"\"ok\"")
    assert outcome.failure_class is FailureClass.BODY_MISMATCH
    assert "does not match" in outcome.detail


def test_missing_or_wrong_header_is_header_mismatch(http_server: _Server) -> None:
    missing = http(f"http://127.0.0.1:{http_server.port}/no-marker", expect_headers={"X-Site": "main"})
    assert missing.failure_class is FailureClass.HEADER_MISMATCH
    assert "header X-Site is missing, expected 'main'" in missing.detail
    wrong = http(f"http://127.0.0.1:{http_server.port}/health", expect_headers={"x-site": "dr"})
    assert wrong.failure_class is FailureClass.HEADER_MISMATCH
    assert "header x-site is 'main', expected 'dr'" in wrong.detail


def test_request_as_sent_path_query_host_and_headers(http_server: _Server) -> None:
    url = f"http://127.0.0.1:{http_server.port}/echo/a%20b?token=s3cr3t&x="
    outcome = http(url, body_contains='"path": "/echo/a%20b?token=s3cr3t&x="')
    assert outcome.vote is Vote.UP, outcome.detail
    for sent in (
        f'"host": "127.0.0.1:{http_server.port}"',
        '"user-agent": "quorum-dr-probe/1"',
        '"connection": "close"',
    ):
        assert http(url, body_contains=sent).vote is Vote.UP, sent
    # the query's value never reaches the sentence
    assert "s3cr3t" not in outcome.detail and "token=***" in outcome.detail


def test_user_info_is_sent_as_basic_credentials_and_never_shown(http_server: _Server) -> None:
    outcome = http(f"http://ops:p%40ss@127.0.0.1:{http_server.port}/auth")
    assert outcome.vote is Vote.UP, outcome.detail
    refused = http(f"http://ops:wrong@127.0.0.1:{http_server.port}/auth")
    assert refused.failure_class is FailureClass.HTTP_STATUS
    assert "wrong" not in refused.detail and "***@127.0.0.1" in refused.detail


def test_redirect_is_not_followed(http_server: _Server) -> None:
    url = f"http://127.0.0.1:{http_server.port}/moved"
    assert http(url).detail == f"HTTP 302 from {url}, expected 200"
    assert http(url, expect_status=[302]).vote is Vote.UP


def test_gzip_body_is_decoded_before_matching(http_server: _Server) -> None:
    outcome = http(f"http://127.0.0.1:{http_server.port}/gzip", body_regex=r'"site":\s*"main"')
    assert outcome.vote is Vote.UP, outcome.detail


def test_head_check_reads_no_body(http_server: _Server) -> None:
    outcome = http(
        f"http://127.0.0.1:{http_server.port}/health", method="HEAD", expect_headers={"X-Site": "main"}
    )
    assert outcome.vote is Vote.UP, outcome.detail


def test_body_is_cut_at_the_cap(http_server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{http_server.port}/big"
    assert http(url, body_contains='"status": "ok"').vote is Vote.UP
    monkeypatch.setattr(probes_http, "MAX_BODY_BYTES", 1000)  # the marker sits past byte 5,000
    assert http(url, body_contains='"status": "ok"').failure_class is FailureClass.BODY_MISMATCH


def test_connection_closed_without_an_answer(http_server: _Server) -> None:
    url = f"http://127.0.0.1:{http_server.port}/hang-up"
    outcome = http(url)
    assert outcome.failure_class is FailureClass.HTTP_STATUS
    assert outcome.detail.startswith(f"no valid HTTP answer from {url}: ")


def test_closed_port_is_connect_refused(closed_port: int) -> None:
    outcome = http(f"http://127.0.0.1:{closed_port}/health")
    assert outcome.failure_class is FailureClass.CONNECT_REFUSED
    assert outcome.detail == f"connection to 127.0.0.1:{closed_port} refused"


def test_unresolvable_name_is_dns() -> None:
    outcome = http("http://no-such-site.invalid/health")
    assert outcome.failure_class is FailureClass.DNS
    assert outcome.detail.startswith("cannot resolve no-such-site.invalid")


def test_connect_timeout(full_backlog_port: int) -> None:
    outcome = http(f"http://127.0.0.1:{full_backlog_port}/health", timeout=0.5)
    assert outcome.failure_class is FailureClass.CONNECT_TIMEOUT, outcome.detail


def test_untrusted_certificate_is_tls(https_server: _Server) -> None:
    outcome = http(f"https://127.0.0.1:{https_server.port}/health", host_header="app.test")
    assert outcome.failure_class is FailureClass.TLS
    assert "certificate verify failed" in outcome.detail


def test_untrusted_certificate_passes_without_verification(https_server: _Server) -> None:
    outcome = http(f"https://127.0.0.1:{https_server.port}/health", verify_tls=False)
    assert outcome.vote is Vote.UP, outcome.detail


def test_ca_bundle_and_sni_override_reach_the_right_virtual_host(
    https_server: _Server, tls_files: dict[str, Path]
) -> None:
    url = f"https://127.0.0.1:{https_server.port}/vhost"
    outcome = http(
        url, host_header="app.test", ca_bundle=str(tls_files["ca"]), expect_headers={"X-Site": "main"}
    )
    # The certificate for app.test only comes back when SNI said app.test, and it verifies
    # against app.test only; the X-Site header shows the Host header reached the right vhost.
    assert outcome.vote is Vote.UP, outcome.detail
    assert "(Host app.test)" in outcome.detail


def test_without_sni_override_the_origin_certificate_does_not_match(
    https_server: _Server, tls_files: dict[str, Path]
) -> None:
    outcome = http(f"https://127.0.0.1:{https_server.port}/vhost", ca_bundle=str(tls_files["ca"]))
    assert outcome.failure_class is FailureClass.TLS
    assert "127.0.0.1" in outcome.detail


def test_host_header_over_plain_http_selects_the_virtual_host(http_server: _Server) -> None:
    url = f"http://127.0.0.1:{http_server.port}/vhost"
    assert http(url, host_header="app.test", expect_headers={"X-Site": "main"}).vote is Vote.UP
    assert http(url, expect_headers={"X-Site": "main"}).failure_class is FailureClass.HEADER_MISMATCH


def test_many_concurrent_checks_each_keep_their_own_tls_setting(
    http_server: _Server, https_server: _Server, tls_files: dict[str, Path]
) -> None:
    # Checks of two TLS settings interleaved and run at once: every check is judged on its own (the
    # vhost ones need their CA bundle and SNI, the plain ones none), and each setting's context is
    # built once and shared by that setting's checks only.
    plain = HttpCheck(name="plain", url=f"http://127.0.0.1:{http_server.port}/health")
    vhost = HttpCheck(
        name="vhost",
        url=f"https://127.0.0.1:{https_server.port}/vhost",
        host_header="app.test",
        ca_bundle=str(tls_files["ca"]),
        expect_headers={"X-Site": "main"},
    )
    untrusted = HttpCheck(
        name="untrusted", url=f"https://127.0.0.1:{https_server.port}/health", verify_tls=False
    )
    checks = [(plain, vhost, untrusted)[i % 3] for i in range(13)]

    async def round_of_checks() -> tuple[list[CheckOutcome], dict[str, set[int]]]:
        async with TlsContexts() as contexts:
            seen: dict[str, set[int]] = {}
            for check in checks:
                seen.setdefault(check.name, set()).add(id(contexts.context_for(check)))
            outcomes = await asyncio.gather(*(check_http(c, timeout=30, contexts=contexts) for c in checks))
            return list(outcomes), seen

    outcomes, seen = asyncio.run(round_of_checks())
    assert [o.vote for o in outcomes] == [Vote.UP] * len(checks), {o.detail for o in outcomes}
    assert all(len(ids) == 1 for ids in seen.values()), seen
    assert len(set.union(*seen.values())) == 3, "a context was shared between TLS settings"


# ---------------------------------------------------------------------------------------------
# TCP
# ---------------------------------------------------------------------------------------------


def tcp(host: str, port: int, timeout: float = 2) -> CheckOutcome:
    return asyncio.run(check_tcp(TcpCheck(name="tcp", host=host, port=port), timeout=timeout))


def test_tcp_up(http_server: _Server) -> None:
    outcome = tcp("127.0.0.1", http_server.port)
    assert outcome.vote is Vote.UP
    assert outcome.detail.startswith(f"TCP connection to 127.0.0.1:{http_server.port} in")


def test_tcp_refused(closed_port: int) -> None:
    outcome = tcp("127.0.0.1", closed_port)
    assert outcome.failure_class is FailureClass.CONNECT_REFUSED


def test_tcp_dns() -> None:
    assert tcp("no-such-db.invalid", 5432).failure_class is FailureClass.DNS


def test_tcp_connect_timeout(full_backlog_port: int) -> None:
    outcome = tcp("127.0.0.1", full_backlog_port, timeout=0.5)
    assert outcome.failure_class is FailureClass.CONNECT_TIMEOUT, outcome.detail
    assert "within 0.5 s" in outcome.detail


# ---------------------------------------------------------------------------------------------
# A whole round against the real servers
# ---------------------------------------------------------------------------------------------


def round_config(
    main: list[dict[str, Any]], dr: list[dict[str, Any]], control: list[dict[str, Any]]
) -> WatchdogConfig:
    data = yaml.safe_load((ROOT / "config" / "watchdog.example.yaml").read_text())
    data["probe"]["timeout_seconds"] = 1
    data["probe"]["control_target"] = {"checks": control}
    service = data["services"][0]
    service["sites"]["main"]["checks"] = main
    service["sites"]["dr"]["checks"] = dr
    del service["sites"]["cold"], service["cold_site"]
    return parse_config(data)


def test_round_with_a_hanging_endpoint_finishes_near_its_timeout(http_server: _Server) -> None:
    base = f"http://127.0.0.1:{http_server.port}"
    config = round_config(
        main=[
            {"name": "health", "type": "http", "url": f"{base}/health"},
            {"name": "hang", "type": "http", "url": f"{base}/hang", "timeout_seconds": 0.5},
            {"name": "tcp", "type": "tcp", "host": "127.0.0.1", "port": http_server.port},
        ],
        dr=[{"name": "error", "type": "http", "url": f"{base}/error"}],
        control=[{"name": "control", "type": "tcp", "host": "127.0.0.1", "port": http_server.port}],
    )
    report = run_round(config, region="eu-west-2", round_id="r1", secrets=StaticSecrets({}))
    by_check = {(r.site, r.check): r for r in report.results}
    assert not report.abstaining
    assert by_check[("main", "health")].vote is Vote.UP
    assert by_check[("main", "hang")].failure_class is FailureClass.TIMEOUT
    assert by_check[("main", "tcp")].vote is Vote.UP
    assert by_check[("dr", "error")].failure_class is FailureClass.HTTP_STATUS
    assert by_check[(CONTROL_SITE, "control")].vote is Vote.UP
    # The hung check is cut at its own timeout (0.5 s), not the probe's default (1 s).
    assert "within 0.5 s" in by_check[("main", "hang")].detail
    verdicts = {v.site: v for v in report.site_verdicts()}
    assert verdicts["main"].vote is Vote.DOWN
    assert "hang failed" in verdicts["main"].reason
    assert verdicts["dr"].vote is Vote.DOWN


def test_round_abstains_when_the_control_target_is_down(http_server: _Server, closed_port: int) -> None:
    config = round_config(
        main=[{"name": "health", "type": "http", "url": f"http://127.0.0.1:{http_server.port}/health"}],
        dr=[{"name": "tcp", "type": "tcp", "host": "127.0.0.1", "port": closed_port}],
        control=[{"name": "control", "type": "tcp", "host": "127.0.0.1", "port": closed_port}],
    )
    report = run_round(config, region="us-east-1", round_id="r2", secrets=StaticSecrets({}))
    assert report.abstaining
    assert report.reason.startswith("us-east-1 abstains: its control target is unreachable")
    assert all(r.abstaining for r in report.results)
    assert {r.site for r in report.results} == {CONTROL_SITE, "main", "dr"}


# ---------------------------------------------------------------------------------------------
# drctl probe
# ---------------------------------------------------------------------------------------------


def write_config(path: Path, config: WatchdogConfig, **probe: Any) -> Path:
    data = config.model_dump(mode="json", exclude_none=True)
    data["probe"].update(probe)
    path.write_text(yaml.safe_dump(data))
    return path


def test_drctl_probe_once_prints_results_and_verdicts(
    http_server: _Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = f"http://127.0.0.1:{http_server.port}"
    config = round_config(
        main=[
            {"name": "health", "type": "http", "url": f"{base}/health", "expect_headers": {"X-Site": "main"}}
        ],
        dr=[{"name": "health", "type": "http", "url": f"{base}/error"}],
        control=[{"name": "control", "type": "tcp", "host": "127.0.0.1", "port": http_server.port}],
    )
    path = write_config(tmp_path / "watchdog.yaml", config)
    code = drctl(["probe", "--config", str(path), "--once"])
    out = capsys.readouterr().out
    assert code == 1  # dr is down
    assert out.startswith("probing as region eu-west-2 (default: the first probe region) from this machine")
    assert "eu-west-2 votes: control target reachable (control)" in out
    assert "SERVICE  SITE      CHECK    VOTE  FAILURE      LATENCY" in out
    assert "booking  dr        health   down  http_status" in out
    assert "  booking/main: UP: main is UP from eu-west-2: all 1 voting check(s) passed" in out
    assert f"  booking/dr: DOWN: dr is DOWN from eu-west-2: health failed (HTTP 500 from {base}/error" in out

    code = drctl(["probe", "--config", str(path), "--once", "--site", "main", "--region", "us-west-2"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("probing as region us-west-2 from this machine; 1 round(s)")
    assert "booking/dr" not in out


def test_drctl_probe_repeats_rounds_every_interval(
    http_server: _Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = round_config(
        main=[{"name": "health", "type": "http", "url": f"http://127.0.0.1:{http_server.port}/health"}],
        dr=[{"name": "tcp", "type": "tcp", "host": "127.0.0.1", "port": http_server.port}],
        control=[{"name": "control", "type": "tcp", "host": "127.0.0.1", "port": http_server.port}],
    )
    # timings loose enough for a busy machine: the test is about the count of rounds, not their pace
    path = write_config(tmp_path / "watchdog.yaml", config, interval_seconds=2.0, timeout_seconds=1.5)
    assert drctl(["probe", "--config", str(path), "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("\nround cli-") == 2
    assert "2 round(s)" in out


def test_drctl_probe_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = ROOT / "config" / "watchdog.example.yaml"
    assert drctl(["probe", "--config", str(example), "--region", "ap-south-1"]) == 2
    assert "--region: 'ap-south-1' is not a probe region" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("home_region: nowhere\n")
    assert drctl(["probe", "--config", str(broken)]) == 2
    assert "home_region:" in capsys.readouterr().err
