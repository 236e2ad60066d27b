"""Site-specific hooks: signed HTTPS calls around the promotion (fence main, stop file sync, ...).

Each call is a POST of JSON `{incident_id, hook, service, ...payload}`, signed like the
notifications, with `Idempotency-Key: <incident_id>:<hook>` (covered by the signature) so that
the receiver can do the work once per incident however often the state machine retries. A 2xx
answer is success unless its JSON body says `{"ok": false}`. A failed required hook is blocking:
the failover must stop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import requests
from aws_lambda_powertools import Logger

from quorum_dr.adapters.notifier import POST_ATTEMPTS, POST_BACKOFF_SECONDS, post_signed
from quorum_dr.config import Hook, Service
from quorum_dr.domain.redact import redact_url
from quorum_dr.failover.errors import HookFailed
from quorum_dr.ports import HookCaller, HookName, HookResult, HookRunner, SecretSource
from quorum_dr.signing import IDEMPOTENCY_HEADER

__all__ = ["IDEMPOTENCY_HEADER", "HttpHookCaller", "ServiceHooks", "idempotency_key"]

logger = Logger(service="quorum-dr", child=True)


def idempotency_key(incident_id: str, hook: str) -> str:
    return f"{incident_id}:{hook}"


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class HttpHookCaller(HookCaller):
    def __init__(
        self,
        secrets: SecretSource,
        *,
        attempts: int = POST_ATTEMPTS,
        backoff_seconds: float = POST_BACKOFF_SECONDS,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._secrets = secrets
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._session = session or requests.Session()
        self._sleep = sleep

    def call(
        self,
        name: HookName,
        hook: Hook | None,
        *,
        incident_id: str,
        service: str,
        payload: Mapping[str, Any] | None = None,
    ) -> HookResult:
        if hook is None:
            return HookResult(
                hook=name,
                ok=True,
                blocking=False,
                skipped=True,
                reason=f"no {name} hook configured for {service}",
            )
        url = str(hook.url)
        label = f"{name} hook ({'required' if hook.required else 'optional'}) at {redact_url(url)}"
        try:
            key = self._secrets.get(hook.signing_secret)
        except Exception as exc:  # the secret store's own errors; the key itself is never shown
            return self._failed(
                name,
                hook,
                incident_id,
                f"{label} not called: cannot read signing secret "
                f"{hook.signing_secret!r} ({type(exc).__name__})",
                None,
                0,
            )
        body = {
            **(payload or {}),
            "incident_id": incident_id,
            "hook": name,
            "service": service,
            "sent_at": time.time(),
        }
        delivery = post_signed(
            url,
            body,
            key,
            timeout_seconds=hook.timeout_seconds,
            idempotency_key=idempotency_key(incident_id, name),  # signed, sent as Idempotency-Key
            attempts=self._attempts,
            backoff_seconds=self._backoff,
            session=self._session,
            sleep=self._sleep,
        )
        answer = _json_object(delivery.body)
        if delivery.delivered and answer is not None and answer.get("ok") is False:
            said = str(answer.get("reason") or "no reason given")[:300]
            return self._failed(
                name,
                hook,
                incident_id,
                f"{label} answered ok=false: {said}",
                delivery.status_code,
                delivery.attempts,
                answer,
            )
        if not delivery.delivered:
            return self._failed(
                name,
                hook,
                incident_id,
                f"{label} failed: {delivery.reason}",
                delivery.status_code,
                delivery.attempts,
                answer,
            )
        result = HookResult(
            hook=name,
            ok=True,
            blocking=False,
            status_code=delivery.status_code,
            attempts=delivery.attempts,
            reason=f"{label} succeeded: {delivery.reason}",
            response=answer,
        )
        logger.info(result.reason, extra={"incident_id": incident_id, "hook": name})
        return result

    @staticmethod
    def _failed(
        name: HookName,
        hook: Hook,
        incident_id: str,
        reason: str,
        status_code: int | None,
        attempts: int,
        response: dict[str, Any] | None = None,
    ) -> HookResult:
        verdict = "; blocking: the failover stops" if hook.required else "; optional, the failover goes on"
        result = HookResult(
            hook=name,
            ok=False,
            blocking=hook.required,
            status_code=status_code,
            attempts=attempts,
            reason=reason + verdict,
            response=response,
        )
        logger.error(result.reason, extra={"incident_id": incident_id, "hook": name})
        return result


class ServiceHooks(HookRunner):
    """The failover layer's HookRunner port: the service's configured hooks through a HookCaller.

    A hook that is not configured is a skipped no-op; a failed required hook raises HookFailed
    (the failover stops and escalates); a failed optional hook is reported and the failover goes on.
    """

    NAMES = ("fence_main", "before_promote", "after_promote")

    def __init__(self, service: Service, caller: HookCaller) -> None:
        self.service = service
        self.caller = caller

    def run(self, hook: str, *, incident_id: str, payload: Mapping[str, Any]) -> HookResult:
        if hook not in self.NAMES:
            raise ValueError(f"unknown hook {hook!r}; known: {list(self.NAMES)}")
        result = self.caller.call(
            cast(HookName, hook),
            getattr(self.service.hooks, hook),
            incident_id=incident_id,
            service=self.service.name,
            payload=payload,
        )
        if result.blocking:
            raise HookFailed(result.reason)
        return result
