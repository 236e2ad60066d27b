"""Reading a YAML (or JSON) file a person wrote, with bounds: the watchdog config, a drill scenario.

Whatever the file holds, `read_yaml` returns the loaded data or raises `FileRefused` with one line
that says why, quickly and in little memory:

- only a regular file is read (checked before opening, and again on the open descriptor, which is
  opened non-blocking: a FIFO or a device never hangs the reader), and at most `MAX_FILE_BYTES`;
- the text must be UTF-8;
- the C loader (libyaml) is used where present; nesting deeper than `MAX_DEPTH` and more than
  `MAX_VALUES` values (aliases counted expanded) are refused while parsing, before anything is
  built; integers longer than `MAX_INT_DIGITS` digits are refused;
- a key given twice in one mapping is an error (YAML would silently keep the last one). A merge key
  (`<<: *defaults`) may still be overridden by an explicit key.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_INT_DIGITS = 32
MAX_VALUES = 20_000  # scalars and collections; the example config has about 300
_MAX_SHOWN = 80

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class FileRefused(Exception):
    """The file cannot be used; the message is one line, without the file's name."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


class BoundedSafeLoader(_Base):
    """yaml's safe loader (the C one where present) that refuses duplicate keys and huge integers."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {_short(key)}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return dict(super().construct_mapping(node, deep=deep))

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # A scalar an explicit tag cannot build (`!!timestamp x`, `!!bool maybe`) makes yaml's own
        # constructors raise AttributeError, IndexError, KeyError or ValueError: report it as YAML.
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, LookupError, AttributeError, OverflowError):
            shown = f" {_short(node.value)}" if isinstance(node, yaml.ScalarNode) else ""
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"cannot build a {node.tag.rsplit(':', 1)[-1]} from{shown or ' this node'}",
                node.start_mark,
            ) from None

    def construct_bounded_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(c.isdigit() for c in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"found an integer of {digits} digits (at most {MAX_INT_DIGITS})", node.start_mark
            )
        return int(super().construct_yaml_int(node))


BoundedSafeLoader.add_constructor("tag:yaml.org,2002:int", BoundedSafeLoader.construct_bounded_int)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _size(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MiB" if count >= 1024 * 1024 else f"{count} bytes"


def read_bytes(path: str | Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The file's bytes: a regular file of at most `limit` bytes, or FileRefused."""
    limit_text = f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"
    try:
        info = os.stat(path)
    except OSError as exc:
        raise FileRefused(f"cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused(f"cannot read: {_kind(info.st_mode)}, not a regular file")
    if info.st_size > limit:
        raise FileRefused(f"too large: {_size(info.st_size)}, the limit is {limit_text}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        raise FileRefused(f"cannot read: {exc.strerror}") from None
    with os.fdopen(descriptor, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):  # replaced between the stat and the open
            raise FileRefused(f"cannot read: {_kind(mode)}, not a regular file")
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise FileRefused(f"cannot read: {exc.strerror}") from None
    if len(data) > limit:
        raise FileRefused(f"too large: more than the {limit_text} limit")
    return data


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        hint = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise FileRefused(
            f"not UTF-8 text{hint}: byte 0x{data[exc.start]:02x} at offset {exc.start}; save it as UTF-8"
        ) from None


def _mark(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


def describe_yaml_error(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        parts = [p for p in (exc.problem, exc.context) if p]
        text = _mark(mark) + "; ".join(parts or ["malformed"])
    else:
        text = str(exc)
    return " ".join(text.split())


def _check_shape(text: str) -> None:
    """Walk the parser's events (nothing is built yet): refuse nesting deeper than MAX_DEPTH and
    more than MAX_VALUES values, an alias counting as the values of what it names (so an alias
    bomb, 9 aliases of 9 aliases of ..., is refused instead of expanded by the validation)."""
    depth = values = 0
    sizes: dict[str, int] = {}
    open_collections: list[tuple[str | None, int]] = []
    for event in yaml.parse(text, Loader=BoundedSafeLoader):
        if isinstance(event, yaml.AliasEvent):
            values += sizes.get(event.anchor or "", 1)
        elif isinstance(event, yaml.ScalarEvent):
            values += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise FileRefused(
                    f"not valid YAML: {_mark(event.start_mark)}nested deeper than {MAX_DEPTH} levels"
                )
            open_collections.append((event.anchor, values))
            values += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            anchor, before = open_collections.pop()
            if anchor:
                sizes[anchor] = values - before
        if values > MAX_VALUES:
            raise FileRefused(
                f"too large: {_mark(event.start_mark)}more than {MAX_VALUES} values "
                "(an alias counts as the values it names)"
            )


def parse_yaml(text: str) -> Any:
    """Load YAML text with the bounds above, or raise FileRefused."""
    try:
        _check_shape(text)
        return yaml.load(text, Loader=BoundedSafeLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise FileRefused(f"not valid YAML: {describe_yaml_error(exc)}") from None
    except (ValueError, TypeError, LookupError, AttributeError, RecursionError, OverflowError) as exc:
        # a node the constructor cannot build, outside construct_object
        raise FileRefused(f"not valid YAML: {' '.join(str(exc).split())[:200]}") from None


def read_yaml(path: str | Path, limit: int = MAX_FILE_BYTES) -> Any:
    """The loaded contents of a YAML (or JSON) file, or FileRefused with one line saying why."""
    return parse_yaml(decode(read_bytes(path, limit)))
