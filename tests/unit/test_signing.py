"""HMAC signing of webhooks: what a receiver checks."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from quorum_dr.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, signed_headers, verify

KEY = "s3cret-key"
BODY = b'{"incident_id": "inc-1"}'
NOW = 1_700_000_000


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    headers = signed_headers(KEY, BODY, now=NOW)
    expected = hmac.new(KEY.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert headers == {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: f"v1={expected}"}
    assert verify(KEY, BODY, headers, now=NOW + 10) == NOW


def test_header_names_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in signed_headers(KEY, BODY, now=NOW).items()}
    assert verify(KEY, BODY, headers, now=NOW) == NOW


@pytest.mark.parametrize(
    ("key", "body", "now", "message"),
    [
        ("other-key", BODY, NOW, "signature does not match"),
        (KEY, BODY + b" ", NOW, "signature does not match"),
        (KEY, BODY, NOW + 301, "is 301 s away from now (at most 300 s)"),
        (KEY, BODY, NOW - 400, "is -400 s away from now"),
    ],
    ids=["wrong-key", "tampered-body", "too-old", "from-the-future"],
)
def test_verify_refuses_with_a_reason(key: str, body: bytes, now: int, message: str) -> None:
    headers = signed_headers(KEY, BODY, now=NOW)
    with pytest.raises(SignatureError, match=re.escape(message)) as caught:
        verify(key, body, headers, now=now)
    assert KEY not in str(caught.value)


def test_missing_or_malformed_headers_are_refused() -> None:
    with pytest.raises(SignatureError, match="missing"):
        verify(KEY, BODY, {}, now=NOW)
    with pytest.raises(SignatureError, match="not an integer"):
        verify(KEY, BODY, {TIMESTAMP_HEADER: "soon", SIGNATURE_HEADER: "v1=00"}, now=NOW)
