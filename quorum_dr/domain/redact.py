"""URLs fit to store, log or print: credentials and query values replaced by `***`.

A configured URL may carry secrets the operator put there (`https://ops:pw@host/health?token=t`).
Wherever a URL is stored (probe results, events, the incident record), logged or printed, it goes
through `redact_url` first: the user-info becomes `***`, each query value becomes `***` (the names
stay, they help to tell checks apart), a fragment becomes `***`. Scheme, host, port and path stay.
It never raises: a URL it cannot parse is replaced whole.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


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
