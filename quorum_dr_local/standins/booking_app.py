"""The demo booking application the drill protects: one instance per site, on that site's database.

    python -m quorum_dr_local.standins.booking_app --site main --port 8081 --dsn "host=... dbname=booking"

Endpoints (JSON bodies; every response carries `X-Site: <site>`):
- `GET /health` -> 200 `{"status": "ok", "site": ..., "db": "primary" | "standby"}` while the
  site's database answers; a warm standby is a healthy DR site, so it answers 200 with
  `"db": "standby"`. 503 `{"status": "down", "reason": ...}` when the database is unreachable,
  or is a primary that refuses writes (`default_transaction_read_only`, e.g. fenced).
  `GET /health?writable=1` also answers 503 on a standby: the check used after a switch.
- `POST /orders` with `{"order_id": "<uuid chosen by the client>", "amount": 12.5}` -> 201
  `{"order_id": ..., "site": ...}` only after COMMIT returned on this site's database, so an
  order the client saw committed is durably committed on that site's primary. 200 when that
  order id was already committed (retries are idempotent). 503 when the database is unreachable
  or refuses writes (a standby), 400 on a malformed body.
- `GET /orders/count` -> `{"count": n, "site": ...}`; `GET /orders/ids` -> `{"order_ids": [...]}`.

The orders table is created on start when the database is a writable primary (and on the first
order otherwise). One short database connection per request keeps the application honest across
a promotion: it never holds a session to a database that changed role underneath it.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import psycopg2
import psycopg2.errors

from quorum_dr_local.standins.served import ServedInThread

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id   uuid PRIMARY KEY,
    amount     numeric(12, 2) NOT NULL CHECK (amount >= 0),
    site       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
CONNECT_TIMEOUT_SECONDS = 2
MAX_BODY_BYTES = 4096


class DatabaseDown(Exception):
    """The site's database cannot take this request; the message says why (for the 503 body)."""


@dataclass(frozen=True)
class Health:
    ok: bool
    role: str | None  # "primary" | "standby" | None when unreachable
    reason: str


class OrderBook:
    """The application's only state: the orders table of one site's database."""

    def __init__(self, site: str, dsn: str, connect_timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
        self.site = site
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    def _connect(self) -> Any:
        try:
            return psycopg2.connect(
                self.dsn,
                connect_timeout=max(1, int(self.connect_timeout)),
                application_name=f"booking-{self.site}",
            )
        except psycopg2.OperationalError as exc:
            raise DatabaseDown(f"database unreachable: {_first_line(exc)}") from None

    def health(self, need_writable: bool = False) -> Health:
        try:
            conn = self._connect()
        except DatabaseDown as exc:
            return Health(False, None, str(exc))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')")
                in_recovery, read_only = cur.fetchone()
        except psycopg2.Error as exc:
            return Health(False, None, f"database error: {_first_line(exc)}")
        finally:
            conn.close()
        if in_recovery:
            if need_writable:
                return Health(False, "standby", "database is a standby (read-only): it cannot take orders")
            return Health(True, "standby", "database is a streaming standby")
        if read_only == "on":
            return Health(False, "primary", "database is a primary that refuses writes (read-only)")
        return Health(True, "primary", "database is a writable primary")

    def ensure_schema(self) -> bool:
        """Create the orders table if absent; False (and no error) when the database is not writable."""
        with self._schema_lock:
            if self._schema_ready:
                return True
            try:
                conn = self._connect()
            except DatabaseDown:
                return False
            try:
                with conn, conn.cursor() as cur:
                    cur.execute("SELECT pg_is_in_recovery()")
                    if cur.fetchone()[0]:
                        return False
                    cur.execute(SCHEMA)
                self._schema_ready = True
                return True
            except psycopg2.Error:
                return False
            finally:
                conn.close()

    def place(self, order_id: uuid.UUID, amount: Decimal) -> bool:
        """Insert and COMMIT; True when inserted now, False when it was already committed."""
        self.ensure_schema()
        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:  # `with conn` commits on success, rolls back on error
                cur.execute(
                    "INSERT INTO orders (order_id, amount, site) VALUES (%s, %s, %s) "
                    "ON CONFLICT (order_id) DO NOTHING",
                    (str(order_id), amount, self.site),
                )
                inserted = bool(cur.rowcount == 1)
            return inserted
        except psycopg2.errors.ReadOnlySqlTransaction:
            raise DatabaseDown("database refuses writes (standby or read-only)") from None
        except psycopg2.OperationalError as exc:
            raise DatabaseDown(f"database failed during the order: {_first_line(exc)}") from None
        finally:
            conn.close()

    def order_ids(self) -> list[str]:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass('orders') IS NOT NULL")
                if not cur.fetchone()[0]:
                    return []
                cur.execute("SELECT order_id::text FROM orders ORDER BY created_at")
                return [row[0] for row in cur.fetchall()]
        except psycopg2.Error as exc:
            raise DatabaseDown(f"database error: {_first_line(exc)}") from None
        finally:
            conn.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class BookingHandler(BaseHTTPRequestHandler):
    book: OrderBook  # set by make_handler
    server_version = "booking/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet: the drill records the client side
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Site", self.book.site)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urlsplit(self.path)
        if url.path == "/health":
            need_writable = parse_qs(url.query).get("writable", ["0"])[0] in ("1", "true")
            health = self.book.health(need_writable)
            body = {"status": "ok" if health.ok else "down", "site": self.book.site, "db": health.role}
            if not health.ok:
                body["reason"] = health.reason
            self._send(200 if health.ok else 503, body)
        elif url.path in ("/orders/count", "/orders/ids"):
            try:
                ids = self.book.order_ids()
            except DatabaseDown as exc:
                self._send(503, {"error": str(exc), "site": self.book.site})
                return
            if url.path == "/orders/count":
                self._send(200, {"count": len(ids), "site": self.book.site})
            else:
                self._send(200, {"order_ids": ids, "site": self.book.site})
        else:
            self._send(404, {"error": f"no route {url.path}", "site": self.book.site})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        if urlsplit(self.path).path != "/orders":
            self._send(404, {"error": f"no route {self.path}", "site": self.book.site})
            return
        try:
            order_id, amount = self._read_order()
        except ValueError as exc:
            self._send(400, {"error": str(exc), "site": self.book.site})
            return
        try:
            inserted = self.book.place(order_id, amount)
        except DatabaseDown as exc:
            self._send(503, {"error": str(exc), "site": self.book.site})
            return
        self._send(201 if inserted else 200, {"order_id": str(order_id), "site": self.book.site})

    def _read_order(self) -> tuple[uuid.UUID, Decimal]:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY_BYTES:
            raise ValueError(f"body must be 1..{MAX_BODY_BYTES} bytes of JSON")
        try:
            data = json.loads(self.rfile.read(length))
            order_id = uuid.UUID(str(data["order_id"]))
            amount = Decimal(str(data["amount"]))
        except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
            raise ValueError(f"expected {{'order_id': uuid, 'amount': number}}: {exc}") from None
        if not amount.is_finite() or amount < 0:
            raise ValueError("amount must be a non-negative number")
        return order_id, amount


def make_handler(book: OrderBook) -> type[BaseHTTPRequestHandler]:
    return type("BookingHandler", (BookingHandler,), {"book": book})


class BookingApp(ServedInThread):
    """The application as a server: `start()` in a thread (tests, the drill), or as a process."""

    def __init__(self, site: str, dsn: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.book = OrderBook(site, dsn)
        server = ThreadingHTTPServer((host, port), make_handler(self.book))
        server.daemon_threads = True
        super().__init__(server)
        self.thread_name = f"booking-{site}"

    @property
    def site(self) -> str:
        return self.book.site

    def start(self) -> Self:
        self.book.ensure_schema()
        return super().start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the demo booking application of the quorum-dr drill")
    parser.add_argument("--site", required=True, help="site name reported by /health and X-Site")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="0.0.0.0", help="listen address (default all)")
    parser.add_argument("--dsn", required=True, help="libpq connection string of this site's database")
    args = parser.parse_args(argv)
    app = BookingApp(args.site, args.dsn, args.host, args.port)
    app.book.ensure_schema()
    print(f"booking app for site {args.site} on {args.host}:{app.port}", flush=True)
    return app.serve_as_process()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
