"""Probe targets are not ours: what a target answers cannot keep a round busy, and a pattern the
linear-time engine cannot run is refused when the config is validated."""

from __future__ import annotations

import time

import pytest
import yaml

from quorum_dr.config import ConfigError, HttpCheck, parse_config
from quorum_dr.domain.redact import redact_url
from quorum_dr.domain.results import FailureClass, Vote
from quorum_dr.probes.http import judge_response
from tests.conftest import ROOT

EVIL = r"^(a+)+$"


@pytest.mark.timeout(20)
def test_a_catastrophic_pattern_against_a_hostile_body_returns_at_once() -> None:
    check = HttpCheck(name="health", url="http://127.0.0.1/health", body_regex=EVIL)
    body = b"a" * 34 + b"!"  # 35 bytes: hours of backtracking for a backtracking engine
    started = time.perf_counter()
    outcome = judge_response(check, str(check.url), 200, {}, body, 1.0)
    took = time.perf_counter() - started
    assert outcome.vote is Vote.DOWN and outcome.failure_class is FailureClass.BODY_MISMATCH
    assert took < 0.5, f"{took:.2f} s"
    up = judge_response(check, str(check.url), 200, {}, b"a" * 35, 1.0)
    assert up.vote is Vote.UP, up.detail


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [(r'"site":\s*"main"', b'{"site": "main"}'), (r"(?i)OK", b"all ok"), (r"^\d{3}$", b"200")],
)
def test_ordinary_patterns_work_as_before(pattern: str, matches: bytes) -> None:
    check = HttpCheck(name="health", url="http://127.0.0.1/health", body_regex=pattern)
    assert judge_response(check, "http://127.0.0.1/health", 200, {}, matches, 1.0).vote is Vote.UP


@pytest.mark.parametrize(
    "pattern",
    [r"(a)\1", r"ok(?=!)", r"(?<!x)ok", r"(unclosed"],
    ids=["backreference", "lookahead", "lookbehind", "syntax"],
)
def test_a_pattern_re2_cannot_compile_is_a_config_error(pattern: str) -> None:
    with pytest.raises(ValueError, match="RE2 .* cannot compile it"):
        HttpCheck(name="health", url="http://127.0.0.1/health", body_regex=pattern)
    data = yaml.safe_load((ROOT / "config" / "watchdog.example.yaml").read_text())
    data["services"][0]["sites"]["main"]["checks"][0]["body_regex"] = pattern
    with pytest.raises(ConfigError, match=r"services\.0\.sites\.main\.checks\.0.*body_regex.*RE2"):
        parse_config(data)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://ops:Sup3rS3cret@host/health?token=abc123", "http://***@host/health?token=***"),
        ("https://host:8443/h?a=1&b=&flag", "https://host:8443/h?a=***&b=***&***"),
        ("https://host/h#secret", "https://host/h#***"),
        ("https://host/plain", "https://host/plain"),
        ("/path?sig=x", "/path?sig=***"),
        ("http://[::1/broken?x=1", "<unparsable URL ***>"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
