"""URLs fit to store, log or print: credentials and query values replaced by `***`.

A configured URL may carry secrets the operator put there (`https://ops:pw@host/health?token=t`).
Wherever a URL is stored (probe results, events, the incident record), logged or printed, it goes
through `redact_url` first: the user-info becomes `***`, each query value becomes `***` (the names
stay, they help to tell checks apart), a fragment becomes `***`. Scheme, host, port and path stay.
It never raises: a URL it cannot parse is replaced whole.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from quorum_dr.config_types import clean_text

MASK = "***"
MAX_ERROR_CHARS = 300


def _query(query: str) -> str:
    parts = []
    for item in query.split("&"):
        if not item:
            continue
        name, sep, _value = item.partition("=")
        parts.append(f"{name}={MASK}" if sep else MASK)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """`url` with user-info, query values and fragment masked (see the module)."""
    try:
        parts = urlsplit(str(url))
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
        query = _query(parts.query)
        fragment = MASK if parts.fragment else ""
        return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
    except ValueError:
        return f"<unparsable URL {MASK}>"


def redact_text(text: str, urls: list[str]) -> str:
    """`text` with every occurrence of each of `urls` replaced by its redacted form."""
    for url in sorted({u for u in urls if u}, key=len, reverse=True):
        text = text.replace(url, redact_url(url))
    return text


def printable_line(text: str) -> str:
    """Any text as one printable line of at most MAX_ERROR_CHARS."""
    text = " ".join(clean_text(text).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def error_line(error: BaseException, urls: list[str]) -> str:
    """An error as one printable line, `Type: message`, each of `urls` redacted before it is cut."""
    return printable_line(redact_text(f"{type(error).__name__}: {error}", urls))


class RedactUrlsInLogs(logging.Filter):
    """A logging filter for HTTP client libraries' loggers (httpx logs every request's full URL at
    INFO, urllib3 the path and query at DEBUG): URL arguments are redacted before formatting."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._redact(arg) for arg in record.args)
        return True

    @staticmethod
    def _redact(arg: object) -> object:
        text = str(arg) if type(arg).__name__ == "URL" else arg  # httpx.URL, without importing httpx
        if isinstance(text, str) and text.startswith(("http://", "https://", "/")):
            return redact_url(text)
        return arg


def redact_urls_in_logs(*logger_names: str) -> None:
    """Put the filter on these loggers once (idempotent)."""
    for name in logger_names:
        target = logging.getLogger(name)
        if not any(isinstance(f, RedactUrlsInLogs) for f in target.filters):
            target.addFilter(RedactUrlsInLogs())
