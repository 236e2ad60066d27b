"""Receipts from adapters as JSON-able dicts, and the timeline entry every step appends."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any


def as_dict(receipt: Any) -> dict[str, Any]:
    """A receipt (pydantic model, dataclass, mapping or None) as a JSON-able dict."""
    if receipt is None:
        return {}
    if hasattr(receipt, "model_dump"):
        value = receipt.model_dump(mode="json")
    elif dataclasses.is_dataclass(receipt) and not isinstance(receipt, type):
        value = dataclasses.asdict(receipt)
    elif isinstance(receipt, Mapping):
        value = dict(receipt)
    else:
        value = {"reason": str(receipt)}
    return dict(json.loads(json.dumps(value, default=str)))


def entry(step: str, reason: str, at: float, **extra: Any) -> dict[str, Any]:
    return {"at": at, "step": step, "reason": reason, **extra}
