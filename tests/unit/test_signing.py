"""HMAC signing of webhooks and hooks (scheme v2): what the reference verifier checks."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quorum_dr.signing import (
    IDEMPOTENCY_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    SignatureVerifier,
    signed_headers,
)

KEY = "s3cret-key"
BODY = b'{"incident_id": "inc-1"}'
NOW = 1_700_000_000
NONCE = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
TARGET = "/hooks/fence-main?tenant=a"


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def verifier(clock: Clock | None = None, **kw: Any) -> SignatureVerifier:
    return SignatureVerifier(KEY, clock=clock or Clock(), **kw)


def signed(
    now: float = NOW, key: str = KEY, nonce: str = NONCE, idem: str | None = "inc-1:fence_main"
) -> dict:
    return signed_headers(key, "POST", TARGET, BODY, idempotency_key=idem, now=now, nonce=nonce)


def test_signature_is_hmac_sha256_over_the_documented_canonical_string() -> None:
    headers = signed()
    canonical = "\n".join(
        ["v2", "POST", TARGET, "inc-1:fence_main", str(NOW), NONCE, hashlib.sha256(BODY).hexdigest()]
    )
    expected = hmac.new(KEY.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    assert headers == {
        TIMESTAMP_HEADER: str(NOW),
        NONCE_HEADER: NONCE,
        SIGNATURE_HEADER: f"v2={expected}",
        IDEMPOTENCY_HEADER: "inc-1:fence_main",
    }
    verified = verifier().verify("POST", TARGET, headers, BODY)
    assert (verified.timestamp, verified.nonce, verified.idempotency_key) == (NOW, NONCE, "inc-1:fence_main")


def test_header_names_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in signed().items()}
    assert verifier().verify("POST", TARGET, headers, BODY).timestamp == NOW


def _with(headers: dict, **changes: str) -> dict:
    return {**headers, **{k.replace("_", "-"): v for k, v in changes.items()}}


@pytest.mark.parametrize(
    ("method", "target", "change", "body", "message"),
    [
        ("POST", TARGET, {}, BODY + b" ", "signature does not match"),
        ("PUT", TARGET, {}, BODY, "signature does not match"),
        ("POST", "/hooks/other", {}, BODY, "signature does not match"),
        ("POST", "/hooks/fence-main?tenant=b", {}, BODY, "signature does not match"),
        ("POST", TARGET, {"Idempotency_Key": "inc-2:fence_main"}, BODY, "signature does not match"),
        ("POST", TARGET, {"X_QuorumDR_Timestamp": str(NOW - 1)}, BODY, "signature does not match"),
        ("POST", TARGET, {"X_QuorumDR_Nonce": "1" * 32}, BODY, "signature does not match"),
    ],
    ids=["tampered-body", "method", "path", "query", "idempotency-key", "timestamp", "nonce"],
)
def test_every_signed_part_is_covered(
    method: str, target: str, change: dict, body: bytes, message: str
) -> None:
    headers = _with(signed(), **change)
    with pytest.raises(SignatureError, match=re.escape(message)) as caught:
        verifier().verify(method, target, headers, body)
    assert KEY not in str(caught.value)


def test_a_dropped_idempotency_key_does_not_verify() -> None:
    headers = {k: v for k, v in signed().items() if k != IDEMPOTENCY_HEADER}
    with pytest.raises(SignatureError, match="does not match"):
        verifier().verify("POST", TARGET, headers, BODY)


def test_the_wrong_key_does_not_verify() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verifier().verify("POST", TARGET, signed(key="other-key"), BODY)


def test_a_request_is_accepted_once_then_refused_as_a_replay() -> None:
    check = verifier()
    headers = signed()
    check.verify("POST", TARGET, headers, BODY)
    with pytest.raises(SignatureError, match="already received: a replay"):
        check.verify("POST", TARGET, headers, BODY)
    # the same content signed again (a retry: new nonce) is a new request
    check.verify("POST", TARGET, signed(nonce="a" * 32), BODY)


@pytest.mark.parametrize(
    ("sent_at", "accepted", "message"),
    [
        (NOW - 300, True, ""),
        (NOW - 301, False, "is 301 s old (at most 300 s)"),
        (NOW + 30, True, ""),
        (NOW + 31, False, "is 31 s in the future (at most 30 s of clock skew)"),
        (NOW + 299, False, "is 299 s in the future"),
        (0, False, "s old"),
    ],
    ids=["300s-old", "301s-old", "30s-ahead", "31s-ahead", "299s-ahead", "1970"],
)
def test_a_bounded_past_and_a_small_future_skew(sent_at: int, accepted: bool, message: str) -> None:
    headers = signed(now=sent_at)
    if accepted:
        assert verifier().verify("POST", TARGET, headers, BODY).timestamp == sent_at
    else:
        with pytest.raises(SignatureError, match=re.escape(message)):
            verifier().verify("POST", TARGET, headers, BODY)


@pytest.mark.parametrize(
    "value",
    ["v2=é" + "0" * 63, "v2=" + "０" * 64, "v1=é", "é", "v2=" + "0" * 64 + ",v2=ü"],
    ids=["latin", "fullwidth-digits", "v1-latin", "bare", "second-candidate"],
)
def test_a_non_ascii_signature_is_a_signature_error_not_a_type_error(value: str) -> None:
    headers = {**signed(), SIGNATURE_HEADER: value}
    with pytest.raises(SignatureError, match="does not match"):
        verifier().verify("POST", TARGET, headers, BODY)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing"),
        ({TIMESTAMP_HEADER: "soon", NONCE_HEADER: NONCE, SIGNATURE_HEADER: "v2=00"}, "not a number"),
        ({TIMESTAMP_HEADER: "١٧٠٠٠٠٠٠٠٠", NONCE_HEADER: NONCE, SIGNATURE_HEADER: "v2=00"}, "not a number"),
        ({TIMESTAMP_HEADER: "1_700_000_000", NONCE_HEADER: NONCE, SIGNATURE_HEADER: "v2=0"}, "not a number"),
        ({TIMESTAMP_HEADER: str(NOW), NONCE_HEADER: "short", SIGNATURE_HEADER: "v2=00"}, "32 hex digits"),
    ],
    ids=["none", "word", "arabic-digits", "underscores", "short-nonce"],
)
def test_missing_or_malformed_headers_are_refused(headers: dict, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verifier().verify("POST", TARGET, headers, BODY)


def test_a_header_given_twice_is_refused() -> None:
    headers = {**signed(), TIMESTAMP_HEADER.lower(): str(NOW)}
    with pytest.raises(SignatureError, match="given 2 times"):
        verifier().verify("POST", TARGET, headers, BODY)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": ""}, "key is empty"),
        ({"key": b""}, "key is empty"),
        ({"max_age_seconds": math.nan}, "finite"),
        ({"max_age_seconds": math.inf}, "finite"),
        ({"max_age_seconds": -5}, "finite"),
        ({"max_age_seconds": 0}, "finite"),
        ({"future_skew_seconds": math.nan}, "finite"),
        ({"future_skew_seconds": -1}, "finite"),
        ({"max_age_seconds": True}, "number of seconds"),
        ({"replay_cache_size": 0}, "positive integer"),
    ],
    ids=[
        "empty-key",
        "empty-bytes",
        "nan",
        "inf",
        "negative",
        "zero",
        "skew-nan",
        "skew-negative",
        "bool",
        "cache",
    ],
)
def test_bad_verifier_settings_are_refused_at_construction(kwargs: dict, message: str) -> None:
    args: dict[str, Any] = {"key": KEY, **kwargs}
    with pytest.raises(ValueError, match=message):
        SignatureVerifier(args.pop("key"), **args)


def test_an_empty_signing_key_is_refused() -> None:
    with pytest.raises(ValueError, match="key is empty"):
        signed_headers("", "POST", "/", BODY)


def test_the_replay_cache_is_bounded_and_forgets_only_what_left_the_window() -> None:
    clock = Clock()
    check = verifier(clock, replay_cache_size=2)
    check.verify("POST", TARGET, signed(nonce="1" * 32), BODY)
    check.verify("POST", TARGET, signed(nonce="2" * 32), BODY)
    with pytest.raises(SignatureError, match="replay cache full"):
        check.verify("POST", TARGET, signed(nonce="3" * 32), BODY)
    clock.now = NOW + 301  # the first two are too old to be replayed now: forgotten
    check.verify("POST", TARGET, signed(now=NOW + 301, nonce="3" * 32), BODY)
    assert len(check._seen) == 1


# ---------------------------------------------------------------------------------------------
# Fuzz: random and mutated requests give an answer or SignatureError, never anything else
# ---------------------------------------------------------------------------------------------

_header_names = st.sampled_from(
    [TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER, IDEMPOTENCY_HEADER, "x-quorumdr-signature", "Other"]
)
_anything = st.one_of(st.text(max_size=80), st.integers(), st.none(), st.binary(max_size=20))


@st.composite
def _requests(draw: st.DrawFn) -> tuple[Any, Any, Any, Any]:
    headers: dict[Any, Any] = dict(signed(now=NOW - draw(st.integers(-100, 400))))
    method: Any = "POST"
    target: Any = TARGET
    body: Any = BODY
    for _ in range(draw(st.integers(0, 4))):
        what = draw(st.sampled_from(["set", "drop", "flip", "method", "target", "body"]))
        if what == "set":
            headers[draw(_header_names)] = draw(st.one_of(st.text(max_size=120), _anything))
        elif what == "drop" and headers:
            headers.pop(draw(st.sampled_from(sorted(headers, key=str))))
        elif what == "flip":
            name = draw(st.sampled_from(sorted(headers, key=str))) if headers else SIGNATURE_HEADER
            value = str(headers.get(name, ""))
            at = draw(st.integers(0, max(len(value), 1)))
            headers[name] = value[:at] + draw(st.characters()) + value[at + 1 :]
        elif what == "method":
            method = draw(_anything)
        elif what == "target":
            target = draw(st.one_of(st.text(max_size=60), _anything))
        else:
            body = draw(st.one_of(st.binary(max_size=60), _anything))
    if draw(st.integers(0, 9)) == 0:  # now and then, headers that are no mapping of text at all
        headers = draw(st.one_of(st.dictionaries(_anything, _anything, max_size=4), _anything))
    return method, target, headers, body


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests())
def test_fuzz_the_verifier_raises_only_signature_error(request: tuple[Any, Any, Any, Any]) -> None:
    method, target, headers, body = request
    check = verifier()
    try:
        check.verify(method, target, headers, body)
    except SignatureError as exc:
        assert KEY not in str(exc)
