"""Proving that the Cloudflare token may edit what a switch edits, without changing what the edge
serves: readiness rewrites only a marker, `quorum-dr edit check <UTC time>`, in the comment of each
DNS record (the description of each load-balancer pool). A write that Cloudflare accepts is the
proof; a read-only token is refused (HTTP 403) and the check FAILs, before a failover finds out.

Why the comment: a switch writes the content (or a pool's `enabled`); the proof never sends either,
so it cannot race a switch into serving the wrong site. Why a marker and not any text: the comment
may be the operator's own; one that is not a marker is never overwritten (the proof is then not
made, and the check says why). Why at most every `edit_proof_interval_seconds`: the marker's time
says when the last proof was made, so a later evaluation (or `drctl readiness`, which never writes)
reads it instead of writing again.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass

MARKER = "quorum-dr edit check"
_MARKED = re.compile(rf"^{MARKER} (\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$")


def marker(now: float) -> str:
    return f"{MARKER} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))}"


def marked_at(text: str | None) -> float | None:
    """The time of a marker, or None when `text` is empty or not a marker (an operator's comment)."""
    found = _MARKED.match((text or "").strip())
    if found is None:
        return None
    return float(calendar.timegm(time.strptime(found.group(1), "%Y-%m-%dT%H:%M:%SZ")))


def is_free(text: str | None) -> bool:
    """Whether the proof may write here: the field is empty or holds a marker already."""
    return not (text or "").strip() or marked_at(text) is not None


@dataclass(frozen=True)
class EditProof:
    """When the edit permission was last proven (None: not proven), and the sentence that says how
    or why not."""

    proven_at: float | None
    sentence: str
