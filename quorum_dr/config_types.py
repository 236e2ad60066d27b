"""The constrained types every file a person writes is checked with: the watchdog config, the drill
scenarios, the manual start.

Numbers are strict (`quorum: true` is not 1, `"3600"` is not a number; an integer is a valid float),
finite (no `.inf`, no `nan`) and bounded by what AWS accepts where the value ends up:

- work done inside one Lambda invocation (a check, a hook, a webhook): at most Lambda's 900 s;
- a Step Functions wait or task timeout (veto window, approval, cold-site readiness): at most a day,
  far below the service's one-year limit and far above any sane setting;
- a DynamoDB TTL is epoch seconds: the lock's lifetime is at most two days, a stored result's a year;
- a Cloudflare record ttl is 1 (automatic) or 60 to 86400.

Strings are printable: no ANSI escapes, no right-to-left overrides, no other control or invisible
character (they would rewrite a terminal or a log line), and at most `MAX_TEXT_CHARS` long.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, AllowInfNan, BaseModel, ConfigDict, Field, Strict, field_validator

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
LAMBDA_MAX_SECONDS = 900
STEP_FUNCTIONS_WAIT_MAX = DAY
LOCK_TTL_MAX = 2 * DAY
RESULT_TTL_MAX = 365 * DAY
MAX_TEXT_CHARS = 4096
MAX_PROSE_CHARS = 20_000
MAX_REASON_CHARS = 500
MAX_BYTES = 1 << 40  # a replication lag or a write volume above a tebibyte is a typo

# Categories that do not print: control (Cc: ANSI escapes, NUL, newlines), format (Cf: right-to-left
# overrides, zero-width characters), surrogates, private use, unassigned, and the Unicode line and
# paragraph separators (they break a line like a newline).
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_BREAKS = frozenset({"Zl", "Zp"})
_PROSE_ALLOWED = frozenset("\n\t")


def first_unprintable(text: str, allowed: frozenset[str] = frozenset()) -> int | None:
    """The index of the first character that does not print, or None."""
    for index, char in enumerate(text):
        if char not in allowed and unicodedata.category(char) in _INVISIBLE:
            return index
    return None


def check_printable(text: str, *, prose: bool = False) -> str:
    limit = MAX_PROSE_CHARS if prose else MAX_TEXT_CHARS
    if len(text) > limit:
        raise ValueError(f"is {len(text)} characters long; at most {limit}")
    index = first_unprintable(text, _PROSE_ALLOWED if prose else frozenset())
    if index is not None:
        raise ValueError(
            f"contains a control or invisible character (U+{ord(text[index]):04X}) at position {index}; "
            "only printable text is accepted"
        )
    return text


def clean_text(text: str) -> str:
    """`text` without control or invisible characters (whitespace controls become spaces), stripped:
    what an operator's free text (a reason) is stored and echoed as."""
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in "\t\n\r\v\f" or category in _BREAKS:
            kept.append(" ")
        elif category not in _INVISIBLE:
            kept.append(char)
    return "".join(kept).strip()


def _check_strings(value: Any, prose: bool) -> None:
    """Every string in `value`, its lists and its mappings, printable. Iterative and visiting each
    container once: YAML aliases can make a structure shared, deep or even cyclic."""
    pending, seen = [value], set()
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            check_printable(item, prose=prose)
        elif isinstance(item, list | tuple | dict) and id(item) not in seen:
            seen.add(id(item))
            if isinstance(item, dict):
                for key in item:
                    if isinstance(key, str):
                        check_printable(key)
                pending.extend(item.values())
            else:
                pending.extend(item)


class StrictModel(BaseModel):
    """Unknown fields are errors; every string field (and the strings in its lists and mappings)
    must be printable. Fields named in `prose_fields` may hold newlines and tabs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    prose_fields: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _printable(cls, value: Any, info: Any) -> Any:
        _check_strings(value, info.field_name in cls.prose_fields)
        return value


# Numbers: strict and finite. Fields add their own bounds with Field(ge=..., le=...).
Number = Annotated[float, Strict(), AllowInfNan(False)]
Count = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]

# Seconds of work inside one Lambda invocation (a check, a hook call, a webhook).
TaskSeconds = Annotated[Number, Field(gt=0, le=LAMBDA_MAX_SECONDS)]
# Seconds of a Step Functions wait or timeout, or of a comparison of receive times.
Seconds = Annotated[Number, Field(gt=0, le=STEP_FUNCTIONS_WAIT_MAX)]
WaitSeconds = Annotated[Count, Field(ge=1, le=STEP_FUNCTIONS_WAIT_MAX)]
Bytes = Annotated[Count, Field(ge=0, le=MAX_BYTES)]


def _dns_ttl(value: int) -> int:
    if value != 1 and not 60 <= value <= DAY:
        raise ValueError(f"{value} is not a Cloudflare ttl: 1 (automatic) or 60 to {DAY} seconds")
    return value


DnsTtl = Annotated[Count, AfterValidator(_dns_ttl)]


def _url_path(value: str) -> str:
    if not re.fullmatch(r"/([!-.0-~][!-~]*)?", value) or len(value) > 1024:
        raise ValueError(
            f"{value[:80]!r} is not a URL path: it must start with a single '/' and hold printable "
            "ASCII without spaces (at most 1024 characters)"
        )
    return value


# An absolute URL path: `@host/x` or `//host/x` would turn "http://127.0.0.1" + path into a URL
# that names another host.
UrlPath = Annotated[str, AfterValidator(_url_path)]
