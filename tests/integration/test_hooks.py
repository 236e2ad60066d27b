"""Hooks: signed POSTs with an idempotency key, against a real local server that verifies them."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from quorum_dr.adapters.hooks import HttpHookCaller
from quorum_dr.adapters.secrets import StaticSecrets
from quorum_dr.config import Hook
from quorum_dr.signing import SignatureError, SignatureVerifier

KEY = "hook-key-9f8e7d6c-never-log-me"


@dataclass
class HookServer:
    """Does the site-specific work once per idempotency key, as a well-behaved hook receiver."""

    statuses: list[int] = field(default_factory=lambda: [200])
    answer: dict = field(default_factory=lambda: {"ok": True, "fenced": "main"})
    requests: list[dict] = field(default_factory=list)
    done: dict[str, int] = field(default_factory=dict)
    url: str = ""
    verifier: SignatureVerifier = field(default_factory=lambda: SignatureVerifier(KEY))
    refusals: list[str] = field(default_factory=list)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        headers = dict(handler.headers.items())
        try:
            self.verifier.verify(handler.command, handler.path, headers, body)
            status = self.statuses[min(len(self.requests), len(self.statuses) - 1)]
        except SignatureError as exc:
            status = 401
            self.refusals.append(str(exc))
        self.requests.append(
            {"path": handler.path, "headers": headers, "body": json.loads(body), "raw": body}
        )
        if status == 200:
            key = headers["Idempotency-Key"]
            self.done[key] = self.done.get(key, 0) + 1
        payload = json.dumps(self.answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


@pytest.fixture
def server(post_receiver: Callable[[Callable[[BaseHTTPRequestHandler], None]], str]) -> HookServer:
    state = HookServer()
    state.url = post_receiver(state.handle) + "/hooks/fence-main"
    return state


def caller(key: str = KEY) -> HttpHookCaller:
    return HttpHookCaller(StaticSecrets({"quorum-dr/hook-key": key}), backoff_seconds=0.01)


def hook(url: str, required: bool = False) -> Hook:
    return Hook(url=url, signing_secret="quorum-dr/hook-key", timeout_seconds=5, required=required)


def test_hook_is_a_signed_post_with_the_incident_as_idempotency_key(server: HookServer) -> None:
    result = caller().call(
        "fence_main", hook(server.url), incident_id="inc-7", service="booking", payload={"target": "dr"}
    )
    assert (result.ok, result.blocking, result.status_code, result.attempts) == (True, False, 200, 1)
    assert result.reason.startswith(f"fence_main hook (optional) at {server.url} succeeded: ")
    assert result.response == {"ok": True, "fenced": "main"}
    (request,) = server.requests
    assert request["headers"]["Idempotency-Key"] == "inc-7:fence_main"
    body = request["body"]
    assert (body["incident_id"], body["hook"], body["service"], body["target"]) == (
        "inc-7",
        "fence_main",
        "booking",
        "dr",
    )


def test_payload_cannot_override_the_incident_or_hook(server: HookServer) -> None:
    caller().call(
        "before_promote",
        hook(server.url),
        incident_id="inc-8",
        service="booking",
        payload={"incident_id": "forged", "hook": "other"},
    )
    body = server.requests[0]["body"]
    assert (body["incident_id"], body["hook"]) == ("inc-8", "before_promote")


def test_a_retry_after_503_reuses_the_idempotency_key_and_the_work_is_done_once(server: HookServer) -> None:
    server.statuses = [503, 200]
    result = caller().call(
        "before_promote", hook(server.url, required=True), incident_id="inc-9", service="booking"
    )
    assert (result.ok, result.attempts) == (True, 2)
    assert [r["headers"]["Idempotency-Key"] for r in server.requests] == ["inc-9:before_promote"] * 2
    assert server.done == {"inc-9:before_promote": 1}


def test_a_failing_required_hook_is_blocking(server: HookServer) -> None:
    server.statuses = [409]
    result = caller().call(
        "before_promote", hook(server.url, required=True), incident_id="inc-10", service="booking"
    )
    assert (result.ok, result.blocking, result.status_code, result.attempts) == (False, True, 409, 1)
    assert result.reason == (
        f"before_promote hook (required) at {server.url} failed: {server.url} answered HTTP 409: "
        "refused, not retried; blocking: the failover stops"
    )


def test_a_failing_optional_hook_is_not_blocking(server: HookServer) -> None:
    server.statuses = [500]
    result = caller().call("fence_main", hook(server.url), incident_id="inc-11", service="booking")
    assert (result.ok, result.blocking, result.attempts) == (False, False, 3)
    assert result.reason.endswith("gave up after 3 attempts; optional, the failover goes on")


def test_a_wrong_key_is_refused_by_the_receiver(server: HookServer) -> None:
    result = caller(key="not-the-key").call(
        "fence_main", hook(server.url, required=True), incident_id="inc-12", service="booking"
    )
    assert (result.ok, result.blocking, result.status_code) == (False, True, 401)
    assert server.done == {}


def test_ok_false_in_the_answer_is_a_failure(server: HookServer) -> None:
    server.answer = {"ok": False, "reason": "file sync still running"}
    result = caller().call(
        "after_promote", hook(server.url, required=True), incident_id="inc-13", service="booking"
    )
    assert (result.ok, result.blocking) == (False, True)
    assert result.reason == (
        f"after_promote hook (required) at {server.url} answered ok=false: file sync still running; "
        "blocking: the failover stops"
    )


def test_an_unconfigured_hook_is_skipped(server: HookServer) -> None:
    result = caller().call("after_promote", None, incident_id="inc-14", service="booking")
    assert (result.ok, result.blocking, result.skipped) == (True, False, True)
    assert result.reason == "no after_promote hook configured for booking"
    assert server.requests == []


def test_an_unreadable_secret_fails_without_calling(server: HookServer) -> None:
    result = HttpHookCaller(StaticSecrets({})).call(
        "fence_main", hook(server.url, required=True), incident_id="inc-15", service="booking"
    )
    assert (result.ok, result.blocking, result.attempts) == (False, True, 0)
    assert "cannot read signing secret 'quorum-dr/hook-key' (SecretNotFound)" in result.reason
    assert server.requests == []


def test_a_changed_idempotency_key_or_a_replay_is_refused(server: HookServer) -> None:
    """The receiver de-duplicates by Idempotency-Key: a captured request re-sent with another key
    (to do the work twice) or as it was (a replay) is refused by the reference verifier."""
    caller().call("fence_main", hook(server.url), incident_id="inc-16", service="booking")
    (first,) = server.requests
    headers = {k: v for k, v in first["headers"].items() if k.lower() not in ("host", "content-length")}
    forged = requests.post(
        server.url, data=first["raw"], headers={**headers, "Idempotency-Key": "inc-17:fence_main"}, timeout=5
    )
    replayed = requests.post(server.url, data=first["raw"], headers=headers, timeout=5)
    assert (forged.status_code, replayed.status_code) == (401, 401)
    assert server.done == {"inc-16:fence_main": 1}
    assert "does not match" in server.refusals[0] and "replay" in server.refusals[1]


def loop(post_receiver: Callable[[Callable[[BaseHTTPRequestHandler], None]], str], hits: list[str]) -> str:
    """A receiver that redirects every POST to itself."""

    def handle(handler: BaseHTTPRequestHandler) -> None:
        handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        hits.append(handler.path)
        handler.send_response(308)
        handler.send_header("Location", handler.path)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return post_receiver(handle)


@pytest.mark.parametrize("required", [False, True], ids=["optional", "required"])
def test_a_redirect_loop_is_a_failed_hook_named_with_its_location(
    post_receiver: Callable[[Callable[[BaseHTTPRequestHandler], None]], str], required: bool
) -> None:
    hits: list[str] = []
    url = loop(post_receiver, hits) + "/hooks/fence?sig=x"
    result = caller().call(
        "fence_main", hook(url, required=required), incident_id="inc-18", service="booking"
    )
    assert (result.ok, result.blocking, result.status_code, result.attempts) == (False, required, 308, 1)
    assert (
        "answered HTTP 308, a redirect to /hooks/fence?sig=***: signed requests never follow" in result.reason
    )
    assert hits == ["/hooks/fence?sig=x"]
