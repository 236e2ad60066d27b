"""The client of a site agent (`drctl agent`): signed requests, answers as the contract's models.

    agent = SiteAgentClient("https://10.0.1.5:8443", key, timeout=10)
    agent.status()                                              -> SiteStatus
    agent.run("freeze", "sw-42:freeze")                         -> OperationAnswer (ok)
    agent.run("follow", "sw-42:follow", primary={"host": "10.0.2.7", "port": 5432})
    agent.run("rebuild", "rj-42:rebuild", primary=Upstream(host="10.0.2.7"))

Every request is signed like the hooks (`quorum_dr.signing`, scheme v2; the operation id is the
signed Idempotency-Key) and never follows a redirect. A connection error, a timeout, or a 502 /
503 / 504 is retried with exponential backoff, each attempt freshly signed: that is safe because
the agent runs an operation id once and answers a repeat with the stored answer. Nothing else is
retried. Failures raise a `SiteAgentError` (an `AgentCallError` of the contract) that says why:

- `AgentUnreachable`: no answer after every attempt (network, timeout, 502-504);
- `AgentRefused`: the agent did not act (401 signature, 400 bad request, 404, 413, a redirect);
- `OperationRefused`: 409, the state is wrong for the operation (nothing changed); `.answer`
  holds the agent's answer and status when it sent one;
- `OperationFailed`: 500, the operation failed on the way; `.answer` says where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests
from pydantic import ValidationError

from quorum_dr.agent.contract import (
    AgentCallError,
    Operation,
    OperationAnswer,
    OperationRequest,
    Refusal,
    SiteStatus,
)
from quorum_dr.config import SiteAgent
from quorum_dr.domain.redact import redact_url
from quorum_dr.ports import SecretSource
from quorum_dr.signing import signed_headers

USER_AGENT = "quorum-dr"
ATTEMPTS = 3
BACKOFF_SECONDS = 0.5
TIMEOUT_SECONDS = 10.0
OPERATION_TIMEOUT_SECONDS = 900.0  # a rewind of a large cluster; the agent bounds each step itself
RETRIED_STATUSES = (502, 503, 504)
STATUS_PATH = "/v1/status"
OPERATIONS_PATH = "/v1/operations"


class SiteAgentError(AgentCallError):
    """A request to a site agent did not succeed; the message says why (never the key)."""


class AgentUnreachable(SiteAgentError):
    """No answer after every attempt."""


class AgentRefused(SiteAgentError):
    """The agent refused the request before acting (signature, bad request, route, redirect)."""


class OperationRefused(SiteAgentError):
    """409: the state is wrong for the operation; nothing changed."""


class OperationFailed(SiteAgentError):
    """500: the operation failed on the way."""


class SiteAgentClient:
    def __init__(
        self,
        url: str,
        key: str | bytes,
        timeout: float = TIMEOUT_SECONDS,
        *,
        operation_timeout: float = OPERATION_TIMEOUT_SECONDS,
        attempts: int = ATTEMPTS,
        backoff_seconds: float = BACKOFF_SECONDS,
        verify: bool | str = True,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not key:
            raise ValueError("the signing key is empty")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.url = url.rstrip("/")
        self._key = key
        self.timeout = timeout
        self.operation_timeout = operation_timeout
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.verify = verify
        self._session = session or requests.Session()
        self._sleep = sleep
        self.where = redact_url(self.url)

    @classmethod
    def from_config(cls, agent: SiteAgent, secrets: SecretSource, **options: Any) -> SiteAgentClient:
        """The client of a site's configured agent, its key read from the secret store."""
        return cls(str(agent.url), secrets.get(agent.signing_secret), **options)

    def status(self) -> SiteStatus:
        response = self._send("GET", STATUS_PATH, b"", None, self.timeout)
        if response.status_code == 200:
            return self._parse(SiteStatus, response)
        raise self._refusal(response, None)

    def run(
        self, operation: Operation | str, operation_id: str, *, timeout: float | None = None, **params: Any
    ) -> OperationAnswer:
        """Run one operation under `operation_id` (the same id never acts twice); its answer when
        ok, else the SiteAgentError that says why. `params`: `primary={"host", "port"}` (or an
        `Upstream`) for follow, rewind and rebuild. The request is validated here first
        (ValueError: nothing is sent)."""
        try:
            request = OperationRequest.model_validate(
                {"operation": operation, "operation_id": operation_id, "params": params}
            )
        except ValidationError as exc:
            raise ValueError(f"not a valid operation request: {exc.errors()[0]['msg']}") from None
        body = request.model_dump_json().encode("utf-8")
        response = self._send(
            "POST", OPERATIONS_PATH, body, request.operation_id, timeout or self.operation_timeout
        )
        answer = self._answer(response)
        if response.status_code == 200 and answer is not None and answer.ok:
            return answer
        raise self._refusal(response, answer)

    # -- sending -------------------------------------------------------------------------------

    def _send(
        self, method: str, path: str, body: bytes, operation_id: str | None, timeout: float
    ) -> requests.Response:
        reason = ""
        for attempt in range(1, self.attempts + 1):
            headers = {"User-Agent": USER_AGENT}
            if body:
                headers["Content-Type"] = "application/json"
            prepared = self._session.prepare_request(
                requests.Request(method, self.url + path, data=body, headers=headers)
            )
            # signed as sent, with a fresh timestamp and nonce on every attempt
            prepared.headers.update(
                signed_headers(self._key, method, prepared.path_url, body, idempotency_key=operation_id)
            )
            try:
                response = self._session.send(
                    prepared, timeout=timeout, allow_redirects=False, verify=self.verify
                )
            except requests.Timeout:
                reason = f"the agent at {self.where} did not answer within {timeout:g} s"
            except requests.ConnectionError as exc:
                reason = f"cannot connect to the agent at {self.where}: {type(exc).__name__}"
            else:
                if response.status_code not in RETRIED_STATUSES:
                    return response
                reason = f"the agent at {self.where} answered HTTP {response.status_code}: {_said(response)}"
            if attempt < self.attempts:
                self._sleep(self.backoff_seconds * (2 ** (attempt - 1)))
        raise AgentUnreachable(f"{reason}; gave up after {self.attempts} attempt(s)")

    # -- reading answers -----------------------------------------------------------------------------

    def _parse(self, model: type[Any], response: requests.Response) -> Any:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise SiteAgentError(
                f"the agent at {self.where} answered HTTP {response.status_code} with something that is not "
                f"a {model.__name__}: {exc.errors()[0]['msg']}",
                response.status_code,
            ) from None

    @staticmethod
    def _answer(response: requests.Response) -> OperationAnswer | None:
        try:
            return OperationAnswer.model_validate_json(response.content)
        except ValidationError:
            return None

    def _refusal(self, response: requests.Response, answer: OperationAnswer | None) -> SiteAgentError:
        code = response.status_code
        said = answer.reason if answer is not None else _said(response)
        text = f"the agent at {self.where} answered HTTP {code}: {said}"
        if 300 <= code < 400:
            location = response.headers.get("Location")
            named = redact_url(location) if location else "no Location header"
            return AgentRefused(
                f"the agent at {self.where} answered HTTP {code}, a redirect to {named}: signed requests "
                "never follow redirects (configure the final URL)",
                code,
            )
        if code == 409:
            return OperationRefused(text, code, answer)
        if code >= 500 or (code == 200 and answer is not None):
            return OperationFailed(text, code, answer)
        return AgentRefused(text, code, answer)


def _said(response: requests.Response) -> str:
    """The reason of an agent's refusal, or the start of whatever the body is."""
    try:
        return Refusal.model_validate_json(response.content).reason
    except ValidationError:
        return " ".join(response.text[:200].split()) or "(no body)"


__all__ = [
    "AgentRefused",
    "AgentUnreachable",
    "OperationFailed",
    "OperationRefused",
    "SiteAgentClient",
    "SiteAgentError",
]
