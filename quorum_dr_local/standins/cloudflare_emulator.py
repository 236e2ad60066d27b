"""A local emulator of the Cloudflare API subset quorum-dr calls, with injectable faults.

A real HTTP server on 127.0.0.1 (ephemeral port by default) that the official `cloudflare` SDK
talks to through `base_url="http://127.0.0.1:PORT/client/v4"`. It serves, under `/client/v4`:

- `GET  /zones/{zone}/dns_records` with `name` / `name.exact`, `type`, `content` / `content.exact`
  and `proxied` filters and `page` / `per_page` paging. A page past the end comes back empty,
  which is how the SDK's pager knows to stop (it asks for page + 1 until a page is empty).
- `GET  /zones/{zone}/dns_records/{id}` and `PATCH` of the same (name, type and ttl required, as the
  real API requires them).
- `GET  /accounts/{acct}/load_balancers/pools[/{id}]` and `PATCH /accounts/{acct}/load_balancers/pools/{id}`.
- `GET  /user/tokens/verify`: a known token is `active` (its id is a hash of it); an unknown one gets
  401 with code 1000, "Invalid API Token", as Cloudflare answers.

Answers use Cloudflare's envelope `{"success", "errors", "messages", "result"}` (+ `result_info`
on lists). Every API request needs `Authorization: Bearer <token>`: a missing header gets 401 and
an unknown token 403 (code 10000, "Authentication error"); a read-only token gets 403 on writes.

Faults (`Fault`) are programmable from Python (`emulator.add_fault(...)`) or over HTTP
(`POST /__admin/faults`, JSON fault or list; `DELETE /__admin/faults` clears): 429 with
`retry-after`, a 5xx, 403, HTTP 200 with `success: false`, added latency, each for the next N
matching API requests (or every one). The emulator counts successful writes per record / pool and
keeps an audit log of API requests (`GET /__admin/log`, `GET /__admin/writes`), so tests and the
drill can assert "exactly one edge write". `GET /__admin/state` returns the whole state; admin
requests need no token, pass no fault and are not logged (so the edge proxy's polling neither
uses up injected faults nor clutters the log).

Sandbox convention: record content and pool origin addresses may be `host:port` (e.g.
`127.0.0.1:8081`); the emulator stores content as given, and the edge proxy reads the port from it.
Real Cloudflare would want a bare IP for an A record.

Run as a process for the drill:
`python -m quorum_dr_local.standins.cloudflare_emulator --port 0 --state seed.json --ready-file port.txt`.
The state file seeds the emulator and is rewritten (atomically) after every successful write.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from quorum_dr_local.standins.served import ServedInThread

API_PREFIX = "/client/v4"
ADMIN_PREFIX = "/__admin"
TOKEN_VERIFY_PATH = API_PREFIX + "/user/tokens/verify"
MAX_PER_PAGE = 5000
DEFAULT_PER_PAGE = 100
MAX_LATENCY_SECONDS = 30.0
MAX_BODY_BYTES = 1 << 20
FAULT_KINDS = ("rate_limit", "server_error", "forbidden", "success_false", "latency", "drop_write")


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Fault:
    """One injected fault, applied to the next `count` matching API requests (None: all of them).

    kind: `rate_limit` (429 + retry-after), `server_error` (status, default 500), `forbidden` (403),
    `success_false` (HTTP 200, `success: false`, `result: null`), `latency` (sleep, then serve),
    `drop_write` (a write answers success with the new object but is not kept: a lost write).
    `method` / `path_contains` narrow which requests match (e.g. only PATCH).
    """

    kind: str
    count: int | None = 1
    status: int | None = None
    retry_after: float = 1.0
    latency_seconds: float = 0.0
    method: str | None = None
    path_contains: str | None = None
    used: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(FAULT_KINDS)}")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1, or null for every request")
        if not 0 <= self.latency_seconds <= MAX_LATENCY_SECONDS:
            raise ValueError(f"latency_seconds must be between 0 and {MAX_LATENCY_SECONDS:g}")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        known = {"kind", "count", "status", "retry_after", "latency_seconds", "method", "path_contains"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    def matches(self, method: str, path: str) -> bool:
        if self.count is not None and self.used >= self.count:
            return False
        if self.method and self.method.upper() != method:
            return False
        return not (self.path_contains and self.path_contains not in path)


class ApiAnswer(Exception):
    """Raised inside the routing code to answer with an error envelope."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def envelope(
    result: Any,
    *,
    success: bool = True,
    errors: list[dict[str, Any]] | None = None,
    result_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"success": success, "errors": errors or [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


@dataclass
class EmulatorState:
    """The emulated account: tokens, zones with DNS records, accounts with pools."""

    tokens: dict[str, str] = field(default_factory=dict)  # token -> "edit" | "read"
    zones: dict[str, dict[str, Any]] = field(default_factory=dict)  # zone id -> {"name", "records": [...]}
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)  # account id -> {"pools": [...]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmulatorState:
        tokens = data.get("tokens", {})
        if isinstance(tokens, list):
            tokens = {t: "edit" for t in tokens}
        state = cls(
            tokens=dict(tokens),
            zones=copy.deepcopy(data.get("zones", {})),
            accounts=copy.deepcopy(data.get("accounts", {})),
        )
        stamp = _now_iso()
        for zone_id, zone in state.zones.items():
            zone.setdefault("name", zone_id)
            for record in zone.setdefault("records", []):
                for key in ("id", "name", "type", "content"):
                    if key not in record:
                        raise ValueError(f"zone {zone_id}: a record lacks {key!r}")
                record.setdefault("proxied", False)
                record.setdefault("ttl", 1)
                record.setdefault("proxiable", True)
                record.setdefault("comment", None)
                record.setdefault("tags", [])
                record.setdefault("created_on", stamp)
                record.setdefault("modified_on", stamp)
                record["zone_id"] = zone_id
                record["zone_name"] = zone["name"]
        for account_id, account in state.accounts.items():
            for pool in account.setdefault("pools", []):
                if "id" not in pool:
                    raise ValueError(f"account {account_id}: a pool lacks 'id'")
                pool.setdefault("name", pool["id"])
                pool.setdefault("enabled", True)
                pool.setdefault("minimum_origins", 1)
                pool.setdefault("created_on", stamp)
                pool.setdefault("modified_on", stamp)
                for origin in pool.setdefault("origins", []):
                    origin.setdefault("enabled", True)
                    origin.setdefault("weight", 1)
                    origin.setdefault("name", origin.get("address", ""))
        return state

    def to_dict(self) -> dict[str, Any]:
        return {
            "tokens": dict(self.tokens),
            "zones": copy.deepcopy(self.zones),
            "accounts": copy.deepcopy(self.accounts),
        }


class CloudflareEmulator(ServedInThread):
    """The emulator: state, faults, counters and the HTTP server around them."""

    thread_name = "cf-emulator"

    def __init__(
        self,
        seed: dict[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        state_file: str | Path | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self.state = EmulatorState.from_dict(seed or {})
        self.state_file = Path(state_file) if state_file else None
        self.faults: list[Fault] = []
        self.log: list[dict[str, Any]] = []
        self.writes: dict[str, int] = {}
        super().__init__(_EmulatorServer((host, port), self))

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What to give the SDK as `base_url`."""
        return self.url + API_PREFIX

    # -- programming and inspection ---------------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def count_write(self, object_id: str) -> None:
        with self._lock:
            self.writes[object_id] = self.writes.get(object_id, 0) + 1
        self.save_state()

    def fault_list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self.faults]

    def write_counts(self) -> dict[str, Any]:
        with self._lock:
            return {"total": sum(self.writes.values()), "by_id": dict(self.writes)}

    def writes_to(self, object_id: str) -> int:
        with self._lock:
            return self.writes.get(object_id, 0)

    def total_writes(self) -> int:
        with self._lock:
            return sum(self.writes.values())

    def requests(self, method: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self.log if method is None or e["method"] == method]

    def record(self, zone_id: str, record_id: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._find_record(zone_id, record_id))

    def pool(self, account_id: str, pool_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._find_pool(account_id, pool_id))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self.state.to_dict()

    # -- request handling (called from handler threads) ------------------------------------------

    def take_fault(self, method: str, path: str) -> tuple[Fault | None, float]:
        """The first matching non-latency fault (used up), and the latency to add first."""
        latency = 0.0
        with self._lock:
            for fault in self.faults:
                if fault.kind == "latency" and fault.matches(method, path):
                    fault.used += 1
                    latency += fault.latency_seconds
            for fault in self.faults:
                if fault.kind != "latency" and fault.matches(method, path):
                    fault.used += 1
                    return fault, min(latency, MAX_LATENCY_SECONDS)
        return None, min(latency, MAX_LATENCY_SECONDS)

    def append_log(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.log.append(entry)

    def check_token(self, authorization: str | None, method: str, path: str = "") -> None:
        if not authorization or not authorization.startswith("Bearer "):
            raise ApiAnswer(401, 10001, "Unable to authenticate request: missing bearer token")
        scope = self.state.tokens.get(authorization[len("Bearer ") :].strip())
        if scope is None and path == TOKEN_VERIFY_PATH:
            raise ApiAnswer(401, 1000, "Invalid API Token")
        if scope is None:
            raise ApiAnswer(403, 10000, "Authentication error")
        if method != "GET" and scope != "edit":
            raise ApiAnswer(403, 10000, "Authentication error: the token may not edit")

    @staticmethod
    def verify_token(authorization: str) -> dict[str, Any]:
        """The answer to `GET /user/tokens/verify` for a token `check_token` accepted."""
        token = authorization[len("Bearer ") :].strip()
        answer = envelope({"id": hashlib.sha256(token.encode()).hexdigest()[:32], "status": "active"})
        answer["messages"] = [{"code": 10000, "message": "This API Token is valid and active"}]
        return answer

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, *, keep: bool = True
    ) -> tuple[dict[str, Any], str | None]:
        """Serve one API request; returns the envelope and the id written (if any and kept)."""
        parts = [p for p in path[len(API_PREFIX) :].split("/") if p]
        with self._lock:
            saved = None if keep else (copy.deepcopy(self.state.zones), copy.deepcopy(self.state.accounts))
            try:
                if len(parts) >= 3 and parts[0] == "zones" and parts[2] == "dns_records":
                    answer, written = self._dns(method, parts, query, body)
                    return answer, written if keep else None
                if len(parts) >= 4 and parts[0] == "accounts" and parts[2:4] == ["load_balancers", "pools"]:
                    answer, written = self._pools(method, parts, body)
                    return answer, written if keep else None
            finally:
                if saved is not None:
                    self.state.zones, self.state.accounts = saved
        raise ApiAnswer(404, 7003, f"Could not route to {path}, perhaps your object identifier is invalid?")

    # -- DNS --------------------------------------------------------------------------------------

    def _zone(self, zone_id: str) -> dict[str, Any]:
        zone = self.state.zones.get(zone_id)
        if zone is None:
            raise ApiAnswer(
                404, 7003, f"Could not route to /zones/{zone_id}, perhaps your object identifier is invalid?"
            )
        return zone

    def _find_record(self, zone_id: str, record_id: str) -> dict[str, Any]:
        for record in self._zone(zone_id)["records"]:
            if record["id"] == record_id:
                return record
        raise ApiAnswer(404, 81044, "Record does not exist.")

    def _dns(
        self, method: str, parts: list[str], query: dict[str, list[str]], body: Any
    ) -> tuple[dict[str, Any], str | None]:
        zone_id = parts[1]
        if len(parts) == 3 and method == "GET":
            return self._list_records(zone_id, query), None
        if len(parts) == 4 and method == "GET":
            return envelope(dict(self._find_record(zone_id, parts[3]))), None
        if len(parts) == 4 and method == "PATCH":
            return envelope(self._edit_record(zone_id, parts[3], body)), parts[3]
        raise ApiAnswer(405, 10405, f"Method {method} not allowed for this path")

    def _list_records(self, zone_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
        def one(*keys: str) -> str | None:
            for key in keys:
                if key in query:
                    return query[key][0]
            return None

        records = self._zone(zone_id)["records"]
        name = one("name.exact", "name")
        rtype = one("type")
        content = one("content.exact", "content")
        proxied = one("proxied")
        if name is not None:
            records = [r for r in records if r["name"].lower() == name.lower()]
        if rtype is not None:
            records = [r for r in records if r["type"] == rtype.upper()]
        if content is not None:
            records = [r for r in records if r["content"].lower() == content.lower()]
        if proxied is not None:
            records = [r for r in records if r["proxied"] == (proxied.lower() == "true")]
        page = _int_param(one("page"), 1, "page", minimum=1)
        per_page = _int_param(one("per_page"), DEFAULT_PER_PAGE, "per_page", minimum=1, maximum=MAX_PER_PAGE)
        start = (page - 1) * per_page
        chunk = [dict(r) for r in records[start : start + per_page]]
        total = len(records)
        info = {
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": total,
            "total_pages": max(1, -(-total // per_page)),
        }
        return envelope(chunk, result_info=info)

    def _edit_record(self, zone_id: str, record_id: str, body: Any) -> dict[str, Any]:
        record = self._find_record(zone_id, record_id)
        if not isinstance(body, dict):
            raise ApiAnswer(400, 9207, "Request body is invalid.")
        missing = [k for k in ("name", "type", "ttl") if k not in body]
        if missing:
            raise ApiAnswer(400, 9005, f"DNS Validation Error: {', '.join(missing)} required")
        ttl = body["ttl"]
        if not isinstance(ttl, int) or not (ttl == 1 or 30 <= ttl <= 86400):
            raise ApiAnswer(
                400, 9021, "Invalid TTL. Must be between 30 and 86,400 seconds, or 1 for Automatic."
            )
        if body["type"] not in ("A", "AAAA", "CNAME", "TXT"):
            raise ApiAnswer(400, 9005, f"DNS Validation Error: unsupported type {body['type']!r}")
        if "content" in body and not (isinstance(body["content"], str) and body["content"]):
            raise ApiAnswer(400, 9005, "DNS Validation Error: content must be a non-empty string")
        for key in ("name", "type", "ttl", "content", "proxied", "comment", "tags"):
            if key in body:
                record[key] = body[key]
        record["modified_on"] = _now_iso()
        return dict(record)

    # -- load-balancer pools -------------------------------------------------------------------------

    def _find_pool(self, account_id: str, pool_id: str) -> dict[str, Any]:
        account = self.state.accounts.get(account_id)
        if account is None:
            raise ApiAnswer(
                404,
                7003,
                f"Could not route to /accounts/{account_id}, perhaps your object identifier is invalid?",
            )
        for pool in account["pools"]:
            if pool["id"] == pool_id:
                return pool
        raise ApiAnswer(404, 1002, "Pool not found.")

    def _pools(self, method: str, parts: list[str], body: Any) -> tuple[dict[str, Any], str | None]:
        account_id = parts[1]
        if len(parts) == 4 and method == "GET":
            if account_id not in self.state.accounts:
                self._find_pool(account_id, "")
            return envelope(copy.deepcopy(self.state.accounts[account_id]["pools"])), None
        if len(parts) == 5 and method == "GET":
            return envelope(copy.deepcopy(self._find_pool(account_id, parts[4]))), None
        if len(parts) == 5 and method == "PATCH":
            return envelope(self._edit_pool(account_id, parts[4], body)), parts[4]
        raise ApiAnswer(405, 10405, f"Method {method} not allowed for this path")

    def _edit_pool(self, account_id: str, pool_id: str, body: Any) -> dict[str, Any]:
        pool = self._find_pool(account_id, pool_id)
        if not isinstance(body, dict):
            raise ApiAnswer(400, 9207, "Request body is invalid.")
        if "enabled" in body and not isinstance(body["enabled"], bool):
            raise ApiAnswer(400, 1003, "enabled must be a boolean")
        if "origins" in body:
            origins = body["origins"]
            if not isinstance(origins, list) or not all(
                isinstance(o, dict) and o.get("address") for o in origins
            ):
                raise ApiAnswer(400, 1003, "origins must be a list of objects with an address")
            pool["origins"] = [{"enabled": True, "weight": 1, "name": o["address"], **o} for o in origins]
        for key in ("enabled", "name", "description", "minimum_origins"):
            if key in body:
                pool[key] = body[key]
        pool["modified_on"] = _now_iso()
        return copy.deepcopy(pool)

    # -- persistence ------------------------------------------------------------------------------

    def save_state(self) -> None:
        if self.state_file is None:
            return
        with self._save_lock:
            data = self.snapshot()
            tmp = self.state_file.with_suffix(self.state_file.suffix + ".tmp")
            tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
            os.replace(tmp, self.state_file)


def _int_param(
    value: str | None, default: int, name: str, *, minimum: int, maximum: int | None = None
) -> int:
    if value is None:
        return default
    try:
        number = int(float(value))
    except ValueError:
        raise ApiAnswer(400, 1004, f"{name} must be a number") from None
    if number < minimum or (maximum is not None and number > maximum):
        raise ApiAnswer(400, 1004, f"{name} must be between {minimum} and {maximum or 'any'}")
    return number


class _EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the client gave up (e.g. its timeout ran out): nothing to report
        super().handle_error(request, client_address)

    def __init__(self, address: tuple[str, int], emulator: CloudflareEmulator) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator


class _Handler(BaseHTTPRequestHandler):
    server: _EmulatorServer

    server_version = "cloudflare-emulator"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_PATCH(self) -> None:  # noqa: N802
        self._serve("PATCH")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._serve("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise ApiAnswer(413, 9207, "Request body too large.")
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiAnswer(400, 9207, "Request body is invalid JSON.") from None

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            body = self._read_body()
        except ApiAnswer as answer:
            self._send(
                answer.status,
                envelope(None, success=False, errors=[{"code": answer.code, "message": answer.message}]),
            )
            return
        if url.path.startswith(ADMIN_PREFIX):
            self._admin(method, url.path[len(ADMIN_PREFIX) :], body)
        elif url.path.startswith(API_PREFIX + "/"):
            self._api(method, url.path, parse_qs(url.query), body)
        else:
            self._send(
                404,
                envelope(None, success=False, errors=[{"code": 7000, "message": "No route for that URI"}]),
            )

    def _api(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> None:
        entry: dict[str, Any] = {
            "at": time.time(),
            "method": method,
            "path": path,
            "query": {k: v[0] for k, v in query.items()},
            "body": body,
            "status": 0,
            "fault": None,
            "write": None,
        }
        status, answer, headers = self._answer(method, path, query, body, entry)
        entry["status"] = status
        self.server.emulator.append_log(entry)
        self._send(status, answer, headers)

    def _answer(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, entry: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        fault, latency = self.server.emulator.take_fault(method, path)
        if latency:
            time.sleep(latency)
        try:
            authorization = self.headers.get("Authorization")
            self.server.emulator.check_token(authorization, method, path)
            if fault is not None:
                entry["fault"] = fault.kind
            if fault is not None and fault.kind != "drop_write":
                return _fault_answer(fault)
            if path == TOKEN_VERIFY_PATH and method == "GET" and authorization:
                return 200, self.server.emulator.verify_token(authorization), {}
            keep = fault is None
            answer, written = self.server.emulator.route(method, path, query, body, keep=keep)
        except ApiAnswer as err:
            return (
                err.status,
                envelope(None, success=False, errors=[{"code": err.code, "message": err.message}]),
                err.headers,
            )
        if written is not None:
            entry["write"] = written
            self.server.emulator.count_write(written)
        return 200, answer, {}

    def _admin(self, method: str, path: str, body: Any) -> None:
        try:
            self._send(200, self._admin_answer(method, path, body))
        except (ValueError, TypeError) as exc:
            self._send(400, {"error": str(exc)})

    def _admin_answer(self, method: str, path: str, body: Any) -> Any:
        if path == "/faults" and method == "POST":
            items = body if isinstance(body, list) else [body]
            added = [self.server.emulator.add_fault(Fault.from_dict(item)) for item in items]
            return {"added": [asdict(f) for f in added]}
        if path == "/faults" and method == "DELETE":
            self.server.emulator.clear_faults()
            return {"cleared": True}
        if path == "/faults" and method == "GET":
            return self.server.emulator.fault_list()
        if path == "/log" and method == "GET":
            return self.server.emulator.requests()
        if path == "/writes" and method == "GET":
            return self.server.emulator.write_counts()
        if path == "/state" and method == "GET":
            return self.server.emulator.snapshot()
        raise ValueError(f"no admin route {method} {path}")


def _fault_answer(fault: Fault) -> tuple[int, dict[str, Any], dict[str, str]]:
    if fault.kind == "rate_limit":
        return (
            429,
            envelope(
                None,
                success=False,
                errors=[{"code": 971, "message": "Please wait and consider throttling your request speed"}],
            ),
            {"retry-after": f"{fault.retry_after:g}"},
        )
    if fault.kind == "server_error":
        return (
            fault.status or 500,
            envelope(None, success=False, errors=[{"code": 10002, "message": "Internal server error"}]),
            {},
        )
    if fault.kind == "forbidden":
        return (
            403,
            envelope(None, success=False, errors=[{"code": 10000, "message": "Authentication error"}]),
            {},
        )
    return (
        200,
        envelope(None, success=False, errors=[{"code": 1000, "message": "injected failure: success false"}]),
        {},
    )


def seed_for_service(service: Any, token: str, *, active: str = "main") -> dict[str, Any]:
    """A seed holding `service`'s edge (a `quorum_dr.config.Service`) pointing at site `active`.

    DNS kind: one record per configured record, content = the active site's origin, id = the
    configured record_id or `rec-<n>`. Load-balancer kind: one pool per configured pool id, only
    the active site's enabled, each with one enabled origin (the site's origin).
    """
    edge = service.edge
    sites = {"main": service.sites.main, "dr": service.sites.dr}
    if service.sites.cold is not None:
        sites["cold"] = service.sites.cold
    seed: dict[str, Any] = {"tokens": {token: "edit"}, "zones": {}, "accounts": {}}
    records = [
        {
            "id": r.record_id or f"rec-{n}",
            "name": r.name,
            "type": r.type,
            "content": sites[active].origin,
            "proxied": r.proxied,
            "ttl": r.ttl,
        }
        for n, r in enumerate(edge.records, start=1)
    ]
    seed["zones"][edge.zone_id] = {"name": service.public_hostname, "records": records}
    if edge.pools is not None and edge.account_id:
        pool_ids = {"main": edge.pools.main, "dr": edge.pools.dr, "cold": edge.pools.cold}
        seed["accounts"][edge.account_id] = {
            "pools": [
                {
                    "id": pool_id,
                    "name": f"{service.name}-{site}",
                    "enabled": site == active,
                    "origins": [{"name": site, "address": sites[site].origin, "enabled": True}],
                }
                for site, pool_id in pool_ids.items()
                if pool_id and site in sites
            ]
        }
    return seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local Cloudflare API emulator (quorum-dr sandbox)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--state", help="JSON seed (tokens, zones, accounts); rewritten after every write")
    parser.add_argument("--ready-file", help="write the chosen port here once listening")
    args = parser.parse_args(argv)
    seed = json.loads(Path(args.state).read_text(encoding="utf-8")) if args.state else {}
    emulator = CloudflareEmulator(seed, port=args.port, state_file=args.state)
    print(f"cloudflare emulator listening on {emulator.url} (API at {emulator.base_url})", flush=True)
    return emulator.serve_as_process(args.ready_file)


if __name__ == "__main__":
    raise SystemExit(main())
