"""Errors the state machine tells apart. A Lambda error's type is the class name, so ASL
Retry/Catch match these names (`TransientError` is retried, anything else escalates)."""

from __future__ import annotations


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


class StaleState(FailoverError):
    """Someone else changed the service state since it was read (optimistic concurrency)."""


class PortNotWired(FailoverError):
    """A port has no adapter in this deployment."""
