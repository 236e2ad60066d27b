"""Errors the state machine tells apart. A Lambda error's type is the class name, so ASL
Retry/Catch match these names (`TransientError` is retried, anything else escalates)."""

from __future__ import annotations

from quorum_dr.ports import StaleState

__all__ = [
    "ColdSiteFailed",
    "FailoverError",
    "HookFailed",
    "InvalidInput",
    "PortNotWired",
    "PromotionFailed",
    "StaleState",  # the state store's error (quorum_dr.ports); the steps turn it into TransientError
    "SwitchFailed",
    "TransientError",
]


class FailoverError(Exception):
    """A failover step failed; the message is the sentence the incident record keeps."""


class InvalidInput(FailoverError):
    """The start input or an event is malformed: nothing was done."""


class TransientError(FailoverError):
    """Worth retrying with backoff (throttling, a timeout talking to a dependency)."""


class PromotionFailed(FailoverError):
    """The DR database could not be promoted or is not writable afterwards."""


class FenceFailed(FailoverError):
    """Main's database is reachable and not verifiably fenced: no promotion (invariant 4b)."""


class SwitchFailed(FailoverError):
    """The edge could not be switched or the read-back disagrees."""


class ColdSiteFailed(FailoverError):
    """The cold site could not be launched."""


class HookFailed(FailoverError):
    """A required site-specific hook (fence_main, before_promote, after_promote) failed."""


class NotificationNotDelivered(FailoverError):
    """A request for an operator's answer (the veto window, an approval) reached no channel: the
    state machine must not wait for an answer nobody was asked for, nor pass silently to auto."""


class PortNotWired(FailoverError):
    """A port has no adapter in this deployment."""
