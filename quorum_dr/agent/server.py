"""The site agent's HTTP service: signed, replay-safe, idempotent operations on the local PostgreSQL.

Routes (every request signed with `quorum_dr.signing`, scheme v2, GET included):

    GET  /v1/status              -> 200 SiteStatus
    POST /v1/operations          OperationRequest -> OperationAnswer
    POST /hooks/fence_main       the fence_main hook's payload -> HookAnswer (freeze, then stop)
    POST /hooks/before_promote   the before_promote hook's payload -> HookAnswer (ok, with the status)

Answers: 200 done (or the stored answer of an earlier request with the same operation id,
`replayed: true`); 400 a body that is not the contract; 401 a missing, bad, late or replayed
signature; 404 / 405 no such route; 409 the state is wrong for the operation (nothing changed),
or the operation id was used for another request; 413 a body over 64 KiB; 500 the operation
failed on the way (its answer says where); 503 the local cluster cannot be looked at. Nothing
acts before the signature is verified, and a refused request changes nothing.

Idempotency: the answer of every operation that succeeded is kept under its operation id in
`<state_dir>/operations.json` (the last `MAX_KEPT`), so a repeated id gets the stored answer
without acting again, across restarts too. A refused (409) or failed (500) operation is not kept:
the same id may try again once the state is right. `status` is never kept (it is a read). The
fence_main hook is kept under `hook:<Idempotency-Key>` (`<incident>:fence_main`): once per incident.
Operations run one at a time.

One log line per request: the client address, method, path, answer code and reason; never a
header, a body or a secret.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from quorum_dr.agent.config import AgentConfig, build_postgres
from quorum_dr.agent.contract import (
    NEEDS_PRIMARY,
    DatabaseRole,
    HookAnswer,
    Operation,
    OperationAnswer,
    OperationRequest,
    Refusal,
    Upstream,
)
from quorum_dr.agent.local_postgres import LocalPostgres, LocalPostgresError, Outcome
from quorum_dr.config import ConfigError
from quorum_dr.config_types import clean_text, first_unprintable
from quorum_dr.signing import IDEMPOTENCY_HEADER, SignatureError, SignatureVerifier

logger = logging.getLogger("quorum_dr.agent")

MAX_BODY_BYTES = 64 * 1024
MAX_KEPT = 1000
MAX_KEY_CHARS = 200
REQUEST_READ_TIMEOUT_SECONDS = 30
SHUTDOWN_WAIT_SECONDS = 900  # for an operation in flight (a rewind) to finish and keep its answer
HOOKS = ("fence_main", "before_promote")


@dataclass(frozen=True)
class Reply:
    code: int
    body: BaseModel
    reason: str


class OperationLog:
    """Operation ids with their request fingerprint and answer, in one JSON file (atomic writes)."""

    def __init__(self, path: Path, limit: int = MAX_KEPT) -> None:
        self.path = path
        self.limit = limit
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._entries: dict[str, dict[str, Any]] = {}
        else:
            try:
                entries = json.loads(text)
            except ValueError:
                raise ValueError(f"{path} is not JSON: move it away to start with no operation ids") from None
            if not isinstance(entries, dict):
                raise ValueError(f"{path} is not a JSON object: move it away to start with no operation ids")
            self._entries = entries

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        return entry if isinstance(entry, dict) else None

    def put(self, key: str, fingerprint: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
        self._entries[key] = {"fingerprint": dict(fingerprint), "answer": dict(answer), "at": time.time()}
        if len(self._entries) > self.limit:  # forget the oldest
            newest = sorted(self._entries.items(), key=lambda item: _at(item[1]), reverse=True)
            self._entries = dict(newest[: self.limit])
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with open(
            os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8"
        ) as out:
            json.dump(self._entries, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)


def _at(entry: Any) -> float:
    at = entry.get("at") if isinstance(entry, dict) else None
    return float(at) if isinstance(at, int | float) else 0.0


class SiteAgent:
    """The agent without HTTP: `handle(method, target, headers, body)` -> Reply."""

    def __init__(self, postgres: LocalPostgres, verifier: SignatureVerifier, log: OperationLog) -> None:
        self.postgres = postgres
        self.verifier = verifier
        self.log = log
        self._acting = threading.Lock()  # one operation at a time on the local cluster

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no operation runs (bounded); True when none does."""
        if self._acting.acquire(timeout=timeout):
            self._acting.release()
            return True
        return False

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        try:
            self.verifier.verify(method, target, headers, body)
        except SignatureError as exc:
            return _refused(401, f"signature refused, nothing done: {exc}")
        path = target.split("?", 1)[0]
        routes: dict[str, tuple[str, Callable[[Mapping[str, str], bytes], Reply]]] = {
            "/v1/status": ("GET", self._status),
            "/v1/operations": ("POST", self._operation),
            "/hooks/fence_main": ("POST", self._fence_main),
            "/hooks/before_promote": ("POST", self._before_promote),
        }
        if path not in routes:
            return _refused(404, f"no such route: {path[:80]}")
        allowed, route = routes[path]
        if method != allowed:
            return _refused(405, f"{path} takes {allowed}, not {method}")
        try:
            return route(headers, body)
        except LocalPostgresError as exc:
            return _refused(503, f"cannot look at the local PostgreSQL: {exc}")

    # -- routes -----------------------------------------------------------------------------------

    def _status(self, headers: Mapping[str, str], body: bytes) -> Reply:
        status = self.postgres.status()
        return Reply(200, status, status.reason)

    def _operation(self, headers: Mapping[str, str], body: bytes) -> Reply:
        try:
            request = OperationRequest.model_validate_json(body)
        except ValidationError as exc:
            return _refused(400, f"not an operation request: {_first_error(exc)}")
        key = _header(headers, IDEMPOTENCY_HEADER)
        if key is not None and key != request.operation_id:
            return _refused(400, f"the {IDEMPOTENCY_HEADER} header is not the operation_id")
        if request.operation == Operation.STATUS:
            status = self.postgres.status()
            answer = OperationAnswer(
                ok=True,
                operation=request.operation,
                operation_id=request.operation_id,
                reason=status.reason,
                status=status,
            )
            return Reply(200, answer, answer.reason)
        with self._acting:
            stored = self._stored(request.operation_id, request.fingerprint())
            if isinstance(stored, Reply):
                return stored
            if stored is not None:
                answer = OperationAnswer.model_validate({**stored, "replayed": True})
                return Reply(
                    200, answer, f"replayed the stored answer of {request.operation_id}: {answer.reason}"
                )
            outcome = self._act(request)
            answer = OperationAnswer(
                ok=outcome.ok,
                operation=request.operation,
                operation_id=request.operation_id,
                reason=_sentence(outcome.reason),
                status=outcome.status,
                rebuild_needed=outcome.rebuild_needed,
            )
            if outcome.ok:
                self.log.put(request.operation_id, request.fingerprint(), answer.model_dump(mode="json"))
        code = 200 if outcome.ok else 409 if outcome.wrong_state else 500
        return Reply(code, answer, answer.reason)

    def _act(self, request: OperationRequest) -> Outcome:
        postgres, primary = self.postgres, request.params.primary
        if request.operation in NEEDS_PRIMARY:
            assert primary is not None  # the contract requires it
            streaming: dict[Operation, Callable[[Upstream], Outcome]] = {
                Operation.FOLLOW: postgres.follow,
                Operation.REWIND: postgres.rewind,
                Operation.REBUILD: postgres.rebuild,
            }
            return streaming[request.operation](primary)
        actions: dict[Operation, Callable[[], Outcome]] = {
            Operation.FREEZE: postgres.freeze,
            Operation.UNFREEZE: postgres.unfreeze,
            Operation.STOP: postgres.stop,
            Operation.START: postgres.start,
            Operation.PROMOTE: postgres.promote,
        }
        return actions[request.operation]()

    def _stored(self, key: str, fingerprint: Mapping[str, Any]) -> dict[str, Any] | Reply | None:
        entry = self.log.get(key)
        if entry is None:
            return None
        if entry.get("fingerprint") != dict(fingerprint):
            used = entry.get("fingerprint", {}).get("operation", "another request")
            return _refused(
                409, f"operation id {key} was already used for {used} with other params: nothing done"
            )
        answer = entry.get("answer")
        return answer if isinstance(answer, dict) else None

    def _hook_key(self, hook: str, headers: Mapping[str, str], body: bytes) -> str | Reply:
        key = _header(headers, IDEMPOTENCY_HEADER)
        if not key or len(key) > MAX_KEY_CHARS or first_unprintable(key) is not None:
            return _refused(400, f"a {hook} hook call needs a printable {IDEMPOTENCY_HEADER} header")
        try:
            payload = json.loads(body)
        except ValueError:
            return _refused(400, f"the {hook} hook's body is not JSON")
        if not isinstance(payload, dict) or payload.get("hook", hook) != hook:
            return _refused(400, f"the body is not a {hook} hook call")
        return key

    def _fence_main(self, headers: Mapping[str, str], body: bytes) -> Reply:
        key = self._hook_key("fence_main", headers, body)
        if isinstance(key, Reply):
            return key
        operation_id = f"hook:{key}"
        fingerprint = {"hook": "fence_main"}
        with self._acting:
            stored = self._stored(operation_id, fingerprint)
            if isinstance(stored, Reply):
                return stored
            if stored is not None:
                answer = HookAnswer.model_validate({**stored, "replayed": True})
                return Reply(200, answer, f"replayed the stored answer of fence_main {key}: {answer.reason}")
            answer = self._fence()
            if answer.ok:
                self.log.put(operation_id, fingerprint, answer.model_dump(mode="json"))
        return Reply(200, answer, answer.reason)

    def _fence(self) -> HookAnswer:
        """No writes from here: freeze (a restart keeps the application out), then stop cleanly.
        Fenced when it ends stopped, or when it is a standby (it takes no writes)."""
        before = self.postgres.status()
        if not before.running:
            return HookAnswer(
                ok=True,
                hook="fence_main",
                reason=_sentence(f"fenced: already stopped; {before.reason}"),
                status=before,
            )
        if before.role == DatabaseRole.STANDBY:
            return HookAnswer(
                ok=True,
                hook="fence_main",
                reason=_sentence(
                    f"fenced: this is a standby, it takes no writes (left running); {before.reason}"
                ),
                status=before,
            )
        frozen = self.postgres.freeze()
        stopped = self.postgres.stop()
        freeze_text = frozen.reason if frozen.ok else f"the freeze failed ({frozen.reason})"
        if stopped.ok:
            reason = f"fenced: {freeze_text}; {stopped.reason}"
        else:
            reason = f"NOT fenced: {freeze_text}; {stopped.reason}"
        return HookAnswer(ok=stopped.ok, hook="fence_main", reason=_sentence(reason), status=stopped.status)

    def _before_promote(self, headers: Mapping[str, str], body: bytes) -> Reply:
        key = self._hook_key("before_promote", headers, body)
        if isinstance(key, Reply):
            return key
        status = self.postgres.status()
        answer = HookAnswer(
            ok=True,
            hook="before_promote",
            reason=_sentence(f"before_promote: nothing to do on this site; {status.reason}"),
            status=status,
        )
        return Reply(200, answer, answer.reason)


# -- helpers of the routes ---------------------------------------------------------------------------


def _refused(code: int, reason: str) -> Reply:
    return Reply(code, Refusal(reason=_sentence(reason)), reason)


def _sentence(text: str) -> str:
    text = clean_text(text)
    return text if len(text) <= 2000 else text[:1997] + "..."


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "(body)"
    return f"{where}: {error['msg']}"[:300]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


# -- HTTP -----------------------------------------------------------------------------------------


class AgentHandler(BaseHTTPRequestHandler):
    server: AgentHttpServer
    timeout = REQUEST_READ_TIMEOUT_SECONDS  # a client that stalls mid-request is dropped
    server_version = "quorum-dr-agent"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        reply = self._reply()
        data = reply.body.model_dump_json().encode("utf-8")
        # logged before the answer goes out: whoever holds an answer finds its line in the log
        client = self.client_address[0] if self.client_address else "-"
        path = clean_text(self.path.split("?", 1)[0])[:120]
        logger.info(
            "%s %s %s -> %d: %s", client, self.command, path, reply.code, clean_text(reply.reason)[:600]
        )
        self.send_response(reply.code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _reply(self) -> Reply:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return _refused(411, "send the body with a Content-Length, not chunked")
        length_text = self.headers.get("Content-Length", "0")
        if not length_text.isdigit():
            self.close_connection = True
            return _refused(400, "Content-Length is not a number")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            return _refused(413, f"the body is {length} bytes; at most {MAX_BODY_BYTES}")
        body = self.rfile.read(length)
        if len(body) != length:
            return _refused(400, "the body ended before its Content-Length")
        try:
            return self.server.agent.handle(self.command, self.path, dict(self.headers.items()), body)
        except Exception as exc:  # noqa: BLE001 - one answer and one log line, never a dropped connection
            logger.exception("unexpected error")
            return _refused(500, f"the agent failed: {type(exc).__name__}")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is written by _serve


class AgentHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], agent: SiteAgent, tls: ssl.SSLContext | None = None) -> None:
        self.agent = agent
        super().__init__(address, AgentHandler)
        if tls is not None:
            # the handshake happens in the request's thread, so a slow client cannot stall accept
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed before a request was read (a TLS handshake a client gave up,
        a reset): one log line, no traceback."""
        error = sys.exc_info()[1]
        client = client_address[0] if client_address else "-"
        logger.warning("%s connection failed: %s", client, type(error).__name__ if error else "unknown")

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        shown = f"[{name}]" if ":" in name else name
        return f"{scheme}://{shown}:{port}"


def tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


def build_server(config: AgentConfig, source: str = "<agent config>") -> AgentHttpServer:
    """The agent's HTTP server from its config (bound, not yet serving); ConfigError saying which
    setting is wrong (a secret file, the state directory, the certificate, the listen address)."""
    postgres, key = build_postgres(config, source)
    try:
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        log = OperationLog(config.state_dir / "operations.json")
    except (OSError, ValueError) as exc:
        raise ConfigError(source, [f"state_dir: {getattr(exc, 'strerror', None) or exc}"]) from None
    verifier = SignatureVerifier(key, max_age_seconds=config.signature_max_age_seconds)
    try:
        tls = tls_context(config.tls.cert_file, config.tls.key_file) if config.tls else None
    except (ssl.SSLError, OSError) as exc:
        detail = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise ConfigError(source, [f"tls: cannot load the certificate or key: {detail}"]) from None
    address = (config.listen.host, config.listen.port)
    try:
        return AgentHttpServer(address, SiteAgent(postgres, verifier, log), tls)
    except OSError as exc:
        raise ConfigError(
            source, [f"listen: cannot listen on {address[0]}:{address[1]}: {exc.strerror or exc}"]
        ) from None


class Stopped(Exception):
    """SIGTERM: stop serving."""


def serve(server: AgentHttpServer) -> None:
    """Serve until SIGTERM (returns) or Ctrl-C (KeyboardInterrupt); an operation in flight is
    given its time to finish before the process goes (its answer is then kept)."""

    def on_term(signum: int, frame: Any) -> None:
        raise Stopped()

    previous = signal.signal(signal.SIGTERM, on_term)
    logger.info("site agent listening on %s", server.url)
    try:
        server.serve_forever(poll_interval=0.5)
    except Stopped:
        logger.info("site agent stopping (SIGTERM)")
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
        if not server.agent.wait_idle(SHUTDOWN_WAIT_SECONDS):
            logger.error("an operation was still running after %d s; leaving it", SHUTDOWN_WAIT_SECONDS)
