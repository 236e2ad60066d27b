"""HMAC-SHA256 signatures of outgoing HTTP requests (notifications and hooks), and their verifier.

Scheme `v2`. The signed text is the canonical string, seven lines joined by `\\n`:

    v2
    <METHOD, upper case>
    <request target: the path as sent, and `?query` when there is one>
    <Idempotency-Key header, or empty>
    <X-QuorumDR-Timestamp: epoch seconds, decimal>
    <X-QuorumDR-Nonce: 32 hex digits, random per request>
    <hex SHA-256 of the raw body>

and the request carries

    X-QuorumDR-Timestamp: 1700000000
    X-QuorumDR-Nonce: 0f1e2d3c4b5a69788796a5b4c3d2e1f0
    X-QuorumDR-Signature: v2=<hex HMAC-SHA256 of the canonical string>

so changing the method, the path or query, the idempotency key, the time or the body breaks the
signature. A retry is a new request (new timestamp and nonce, new signature).

A receiver uses `SignatureVerifier` (one per key, kept for the receiver's lifetime):

    verifier = SignatureVerifier(key, max_age_seconds=300, future_skew_seconds=30)
    try:
        verifier.verify(method, path_and_query, headers, body)
    except SignatureError as exc:
        answer 401 with str(exc)

It accepts a timestamp at most `max_age_seconds` old and at most `future_skew_seconds` ahead of
its clock, and remembers every signature it accepted until that signature's timestamp leaves the
window, so one request is accepted once (a replay is refused). The memory is bounded
(`replay_cache_size`); when it is full of signatures still inside the window, requests are
refused rather than forgetting one (fail closed). `SignatureError` is the only error `verify`
raises for any request; its message says why and never contains the key. Bad constructor
arguments (an empty key, a window that is not a finite positive number) raise `ValueError`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

TIMESTAMP_HEADER = "X-QuorumDR-Timestamp"
NONCE_HEADER = "X-QuorumDR-Nonce"
SIGNATURE_HEADER = "X-QuorumDR-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "v2"
DEFAULT_MAX_AGE_SECONDS = 300
DEFAULT_FUTURE_SKEW_SECONDS = 30
DEFAULT_REPLAY_CACHE_SIZE = 10_000
MAX_WINDOW_SECONDS = 3600  # a longer window would only widen what a stolen request can do

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[0-9a-f]{32}")
_HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_METHOD = re.compile(r"[A-Z]{1,16}")


class SignatureError(Exception):
    """The request's signature does not hold; the message says why (never the key)."""


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def canonical_string(
    method: str, target: str, idempotency_key: str, timestamp: int, nonce: str, body: str | bytes
) -> bytes:
    """What the HMAC covers (see the module's text)."""
    for name, value in (("method", method), ("target", target), ("idempotency key", idempotency_key)):
        if "\n" in value or "\r" in value:
            raise ValueError(f"the {name} contains a line break")
    lines = [
        SCHEME,
        method.upper(),
        target,
        idempotency_key,
        str(timestamp),
        nonce,
        hashlib.sha256(_bytes(body)).hexdigest(),
    ]
    return "\n".join(lines).encode("utf-8")


def signature(
    key: str | bytes,
    method: str,
    target: str,
    idempotency_key: str,
    timestamp: int,
    nonce: str,
    body: str | bytes,
) -> str:
    """`v2=<hex>` over the canonical string."""
    text = canonical_string(method, target, idempotency_key, timestamp, nonce, body)
    return f"{SCHEME}={hmac.new(_bytes(key), text, hashlib.sha256).hexdigest()}"


def signed_headers(
    key: str | bytes,
    method: str,
    target: str,
    body: str | bytes,
    *,
    idempotency_key: str | None = None,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers to send with the request (`target` = path and `?query` as sent), signed at
    `now` (default: the current time); `Idempotency-Key` is among them when one is given."""
    if not _bytes(key):
        raise ValueError("the signing key is empty")
    timestamp = int(time.time() if now is None else now)
    nonce = nonce or secrets.token_hex(16)
    headers = {
        TIMESTAMP_HEADER: str(timestamp),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signature(key, method, target, idempotency_key or "", timestamp, nonce, body),
    }
    if idempotency_key is not None:
        headers[IDEMPOTENCY_HEADER] = idempotency_key
    return headers


def _header(headers: Mapping[str, str], name: str) -> str | None:
    found = [value for key, value in headers.items() if isinstance(key, str) and key.lower() == name.lower()]
    if len(found) > 1:
        raise SignatureError(f"the {name} header is given {len(found)} times")
    if found and not isinstance(found[0], str):
        raise SignatureError(f"the {name} header is not text")
    return found[0] if found else None


def _window(name: str, value: float, low: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or not low <= value <= MAX_WINDOW_SECONDS:
        raise ValueError(
            f"{name} must be a finite number from {low:g} to {MAX_WINDOW_SECONDS} s, not {value!r}"
        )
    return float(value)


def _signature_headers(headers: Mapping[str, str]) -> tuple[str, str, str, str | None]:
    """Timestamp, nonce, signature and idempotency key, each well formed, or SignatureError."""
    if not isinstance(headers, Mapping):
        raise SignatureError("the headers are not a mapping")
    stamp = _header(headers, TIMESTAMP_HEADER)
    nonce = _header(headers, NONCE_HEADER)
    sent = _header(headers, SIGNATURE_HEADER)
    idempotency_key = _header(headers, IDEMPOTENCY_HEADER)
    if stamp is None or nonce is None or sent is None:
        raise SignatureError(f"missing {TIMESTAMP_HEADER}, {NONCE_HEADER} or {SIGNATURE_HEADER} header")
    if not _TIMESTAMP.fullmatch(stamp):
        raise SignatureError(f"{TIMESTAMP_HEADER} is not a number of seconds: {stamp[:40]!r}")
    if not _NONCE.fullmatch(nonce):
        raise SignatureError(f"{NONCE_HEADER} is not 32 hex digits")
    if idempotency_key is not None and ("\n" in idempotency_key or "\r" in idempotency_key):
        raise SignatureError(f"{IDEMPOTENCY_HEADER} contains a line break")
    return stamp, nonce, sent, idempotency_key


def _matching(expected: str, sent: str) -> str:
    """The hex digest of the candidate in `sent` that equals `expected` (constant time), else
    SignatureError. `sent` may list several (`v2=..., v2=...`: room for a key in rotation)."""
    matched = None
    for candidate in (part.strip() for part in sent.split(",")):
        scheme, _, digest = candidate.partition("=")
        # only ASCII reaches compare_digest (a str with other characters raises TypeError there)
        if scheme == SCHEME and _HEX_SIGNATURE.fullmatch(digest):
            if hmac.compare_digest(expected.encode("ascii"), candidate.encode("ascii")):
                matched = digest
    if matched is None:
        raise SignatureError(
            "signature does not match the method, target, idempotency key, timestamp, nonce and body"
        )
    return matched


@dataclass(frozen=True)
class VerifiedRequest:
    """What a verified request said about itself."""

    timestamp: int
    nonce: str
    idempotency_key: str | None


class SignatureVerifier:
    """The reference verifier of `v2` signatures with a bounded replay cache (see the module)."""

    def __init__(
        self,
        key: str | bytes,
        *,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        future_skew_seconds: float = DEFAULT_FUTURE_SKEW_SECONDS,
        replay_cache_size: int = DEFAULT_REPLAY_CACHE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(key, str | bytes) or not _bytes(key):
            raise ValueError("the verification key is empty")
        self._key = _bytes(key)
        self.max_age_seconds = _window("max_age_seconds", max_age_seconds, 1)
        self.future_skew_seconds = _window("future_skew_seconds", future_skew_seconds, 0)
        size = replay_cache_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"replay_cache_size must be a positive integer, not {replay_cache_size!r}")
        self.replay_cache_size = replay_cache_size
        self._clock = clock
        self._seen: dict[str, int] = {}  # signature hex -> its timestamp, oldest first
        self._lock = threading.Lock()

    def verify(
        self, method: str, target: str, headers: Mapping[str, str], body: str | bytes
    ) -> VerifiedRequest:
        """Check one received request (`target`: the path and query as received, e.g. the request
        line's target); remember it. Raises SignatureError, and only that, saying why."""
        if not isinstance(method, str) or not _METHOD.fullmatch(method.upper()):
            raise SignatureError("the method is not an HTTP method name")
        if not isinstance(target, str) or not target.startswith("/") or "\n" in target or "\r" in target:
            raise SignatureError("the request target is not a path")
        if not isinstance(body, str | bytes):
            raise SignatureError("the body is not bytes")
        stamp, nonce, sent, idempotency_key = _signature_headers(headers)
        timestamp = int(stamp)
        now = self._clock()
        self._check_time(timestamp, now)
        expected = signature(self._key, method, target, idempotency_key or "", timestamp, nonce, body)
        self._remember(_matching(expected, sent), timestamp, now)
        return VerifiedRequest(timestamp=timestamp, nonce=nonce, idempotency_key=idempotency_key)

    def _check_time(self, timestamp: int, now: float) -> None:
        age = now - timestamp
        if age > self.max_age_seconds:
            raise SignatureError(
                f"timestamp {timestamp} is {age:.0f} s old (at most {self.max_age_seconds:g} s): "
                "a late or replayed request"
            )
        if -age > self.future_skew_seconds:
            raise SignatureError(
                f"timestamp {timestamp} is {-age:.0f} s in the future "
                f"(at most {self.future_skew_seconds:g} s of clock skew)"
            )

    def _remember(self, digest: str, timestamp: int, now: float) -> None:
        with self._lock:
            if digest in self._seen:
                raise SignatureError("this request was already received: a replay")
            if len(self._seen) >= self.replay_cache_size:
                horizon = now - self.max_age_seconds
                self._seen = {d: t for d, t in self._seen.items() if t >= horizon}
            if len(self._seen) >= self.replay_cache_size:
                raise SignatureError(
                    f"replay cache full ({self.replay_cache_size} requests inside the window): "
                    "refused rather than forgetting one"
                )
            self._seen[digest] = timestamp
