"""The drill's customer: keeps placing orders through the edge and records every attempt.

Each attempt is one `POST /orders` on a fresh connection to the edge proxy's address, with the
public hostname in the Host header, a client-chosen order id (uuid4) and a bounded timeout. An
attempt is a success only when the answer is 201/200 (the booking app answers after COMMIT), so
`committed_order_ids()` is exactly the set of orders the client saw committed. The site that
served it comes from the `X-Site` header.

The client stops by itself at the end of its duration (or on `stop()`); it never sends more
than `rate_per_second` attempts a second and never retries an attempt.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class Attempt:
    at: float  # epoch seconds when the attempt started
    ok: bool
    status: int | None  # HTTP status, None when no answer
    site: str | None  # X-Site of the answer
    order_id: str
    latency_ms: float
    error: str | None = None  # why it failed, when it failed

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class TrafficClient:
    """Orders through the edge at a bounded rate for a bounded time. `start()` runs it in a thread."""

    def __init__(
        self,
        edge_host: str,
        edge_port: int,
        public_hostname: str,
        *,
        rate_per_second: float = 10.0,
        duration_seconds: float = 60.0,
        timeout_seconds: float = 1.0,
        jsonl_path: str | Path | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if rate_per_second <= 0 or duration_seconds <= 0 or timeout_seconds <= 0:
            raise ValueError("rate, duration and timeout must be positive")
        self.edge_host = edge_host
        self.edge_port = edge_port
        self.public_hostname = public_hostname
        self.rate_per_second = rate_per_second
        self.duration_seconds = duration_seconds
        self.timeout_seconds = timeout_seconds
        self.jsonl_path = Path(jsonl_path) if jsonl_path else None
        self.on_attempt = on_attempt
        self.clock = clock
        self._attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> TrafficClient:
        self._thread = threading.Thread(target=self.run, name="traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.timeout_seconds + 5)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """Place orders until the duration ends or `stop()`; bounded by duration x rate attempts."""
        spacing = 1.0 / self.rate_per_second
        start = time.monotonic()
        max_attempts = int(self.duration_seconds * self.rate_per_second) + 1
        sink: IO[str] | None = self.jsonl_path.open("a", encoding="utf-8") if self.jsonl_path else None
        try:
            for index in range(max_attempts):
                due = start + index * spacing
                if due - start >= self.duration_seconds or self._stop.is_set():
                    break
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                attempt = self.place_one()
                with self._lock:
                    self._attempts.append(attempt)
                if sink is not None:
                    sink.write(attempt.to_json() + "\n")
                    sink.flush()
                if self.on_attempt is not None:
                    self.on_attempt(attempt)
        finally:
            if sink is not None:
                sink.close()

    def place_one(self) -> Attempt:
        order_id = str(uuid.uuid4())
        body = json.dumps({"order_id": order_id, "amount": 10}).encode()
        at = self.clock()
        began = time.monotonic()
        conn = http.client.HTTPConnection(self.edge_host, self.edge_port, timeout=self.timeout_seconds)
        try:
            conn.request(
                "POST",
                "/orders",
                body=body,
                headers={
                    "Host": self.public_hostname,
                    "Content-Type": "application/json",
                    "Connection": "close",
                },
            )
            response = conn.getresponse()
            response.read()
            status, site = response.status, response.getheader("X-Site")
        except (OSError, http.client.HTTPException) as exc:
            latency = (time.monotonic() - began) * 1000
            return Attempt(at, False, None, None, order_id, latency, _describe(exc))
        finally:
            conn.close()
        latency = (time.monotonic() - began) * 1000
        ok = status in (200, 201)
        return Attempt(at, ok, status, site, order_id, latency, None if ok else f"HTTP {status}")

    # -- what it saw -------------------------------------------------------------------------------

    @property
    def attempts(self) -> list[Attempt]:
        with self._lock:
            return list(self._attempts)

    def committed_order_ids(self) -> list[str]:
        return [a.order_id for a in self.attempts if a.ok]

    def success_series(self, bucket_seconds: float = 1.0) -> list[tuple[float, float, int]]:
        """(bucket start, success ratio, attempts) per bucket, in time order."""
        return success_series(self.attempts, bucket_seconds)


def success_series(attempts: list[Attempt], bucket_seconds: float = 1.0) -> list[tuple[float, float, int]]:
    buckets: dict[int, list[bool]] = {}
    for attempt in attempts:
        buckets.setdefault(int(attempt.at // bucket_seconds), []).append(attempt.ok)
    return [(key * bucket_seconds, sum(oks) / len(oks), len(oks)) for key, oks in sorted(buckets.items())]


def read_attempts(path: str | Path) -> list[Attempt]:
    """Load the JSONL a client wrote."""
    with Path(path).open(encoding="utf-8") as lines:
        return [Attempt(**json.loads(line)) for line in lines if line.strip()]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}".strip()
