"""Reads the file-sync marker the DR site serves (`services[].file_sync`): when main wrote it, or
the one line that says why it could not be read or understood.

Shared by readiness (`quorum_dr.adapters.readiness`) and the failover's replica check
(`quorum_dr.failover.replica`, through the MarkerReader port). One GET, no redirect followed, only
the first MARKER_MAX_BYTES of whatever DR serves are read (streamed: a large page is not a marker,
and is not loaded). The whole read is bounded: `timeout_seconds` bounds each connect and each
read, and a deadline of `timeout_seconds` + DEADLINE_GRACE_SECONDS bounds them all together, so a
server that trickles its answer is abandoned (its thread ends by its own socket timeouts; nothing
joins it). The URL is redacted in every sentence (it may carry a token). Never raises.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import requests

from quorum_dr.config import FileSync
from quorum_dr.domain.readiness import FileSyncFacts, parse_marker
from quorum_dr.domain.redact import error_line, redact_url
from quorum_dr.ports import MarkerReader

MARKER_MAX_BYTES = 1024
DEADLINE_GRACE_SECONDS = 1.0  # past the socket timeouts, so an ordinary timeout says its own words


def _said(url: str) -> list[str]:
    """The forms of `url` an error may quote: whole, and as its request target (urllib3 says
    "Max retries exceeded with url: /path?query"), each redacted in the error's line."""
    parts = urlsplit(url)
    return [url, f"{parts.path}?{parts.query}"] if parts.query else [url]


def _get(sync: FileSync, url: str, shown: str) -> FileSyncFacts:
    try:
        with requests.get(
            url, timeout=sync.timeout_seconds, verify=sync.verify_tls, allow_redirects=False, stream=True
        ) as answer:
            if answer.status_code != 200:
                return FileSyncFacts(url=shown, error=f"HTTP {answer.status_code}")
            head = next(answer.iter_content(MARKER_MAX_BYTES), b"")  # a marker is one short line
        return FileSyncFacts(url=shown, written_at=parse_marker(head.decode("utf-8", "replace")))
    except requests.RequestException as exc:
        return FileSyncFacts(url=shown, error=error_line(exc, _said(url)))
    except ValueError as exc:  # parse_marker's sentence
        return FileSyncFacts(url=shown, error=str(exc))


def read_marker(sync: FileSync) -> FileSyncFacts:
    """GET the marker DR serves (one try, bounded as the module says; the URL redacted)."""
    url = str(sync.url)
    shown = redact_url(url)
    answers: list[FileSyncFacts] = []

    def read() -> None:
        try:
            answers.append(_get(sync, url, shown))
        except Exception as exc:  # anything else is this read's answer too, never the caller's failure
            answers.append(FileSyncFacts(url=shown, error=error_line(exc, _said(url))))

    reader = threading.Thread(target=read, name="file-sync-marker", daemon=True)
    reader.start()
    bound = sync.timeout_seconds + DEADLINE_GRACE_SECONDS
    reader.join(bound)
    if answers:
        return answers[0]
    return FileSyncFacts(url=shown, error=f"no whole answer within {bound:g} s: abandoned")


class HttpMarkerReader(MarkerReader):
    """The MarkerReader port over HTTP(S): `read_marker`."""

    def read(self, sync: FileSync) -> FileSyncFacts:
        return read_marker(sync)
