"""HMAC-SHA256 signatures of outgoing webhooks (notifications and hooks).

The signed text is `f"{timestamp}.{body}"`, the timestamp in epoch seconds, sent in two
headers:

    X-QuorumDR-Timestamp: 1700000000
    X-QuorumDR-Signature: v1=<hex HMAC-SHA256>

A receiver recomputes the HMAC over the raw body with the shared key, compares in constant time,
and refuses a timestamp older than a few minutes (a replayed request). `verify` does exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-QuorumDR-Timestamp"
SIGNATURE_HEADER = "X-QuorumDR-Signature"
SCHEME = "v1"
DEFAULT_MAX_AGE_SECONDS = 300


class SignatureError(Exception):
    """The request's signature does not hold; the message says why (never the key)."""


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def signature(key: str | bytes, timestamp: int, body: str | bytes) -> str:
    """`v1=<hex>` over `timestamp.body`."""
    digest = hmac.new(_bytes(key), str(timestamp).encode("ascii") + b"." + _bytes(body), hashlib.sha256)
    return f"{SCHEME}={digest.hexdigest()}"


def signed_headers(key: str | bytes, body: str | bytes, now: float | None = None) -> dict[str, str]:
    """The two headers to send with `body`, signed at `now` (default: the current time)."""
    timestamp = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(key, timestamp, body)}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def verify(
    key: str | bytes,
    body: str | bytes,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
    max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
) -> int:
    """Check a received request; return its timestamp, or raise SignatureError saying why."""
    stamp = _header(headers, TIMESTAMP_HEADER)
    sent = _header(headers, SIGNATURE_HEADER)
    if stamp is None or sent is None:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not an integer: {stamp[:40]!r}") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > max_age_seconds:
        raise SignatureError(
            f"timestamp {timestamp} is {current - timestamp:.0f} s away from now "
            f"(at most {max_age_seconds:g} s)"
        )
    expected = signature(key, timestamp, body)
    candidates = [part.strip() for part in sent.split(",")]  # room for a second scheme during rotation
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("signature does not match the body and timestamp")
    return timestamp
