"""Make moto's DynamoDB writes atomic, as DynamoDB's are (development only: it imports moto).

moto evaluates a ConditionExpression and then writes the item in two Python steps, with nothing
between them to stop another thread: two threads can both find `attribute_not_exists(pk)` true and
both write, so two executions would both "acquire" the incident lock. Its TransactWriteItems
deep-copies the table and restores the copy on failure, which also drops a concurrent writer's item.
DynamoDB itself checks and writes one item atomically, and runs a transaction serializably.

`atomic_writes()` takes one re-entrant lock around every write of moto's DynamoDB backend (and
GetItem / TransactGetItems, which AWS serializes with TransactWriteItems). Both paths meet there:
boto3 clients in the tests and handlers, and the Step Functions engine's direct DynamoDB
integrations (`arn:aws:states:::dynamodb:putItem`), which call the same backend through a boto3
client.

Reads hand back copies. moto returns its live item objects and turns them into the response
after the backend call, outside any lock: a write in another thread meanwhile changed the dict
under the response's iteration ("dictionary changed size during iteration", seen in CI). GetItem,
Query and Scan therefore run under the lock and return a deep copy made there (one item is read
atomically on AWS too; Query and Scan gain no isolation a test could lean on beyond that: each
page is a copy of the table as it was during the call).
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SERIALIZED = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "batch_write_item",
    "get_item",
    "transact_get_items",
)
# Reads whose results moto would serialize from its live objects: copied under the lock.
COPIED = ("get_item", "query", "scan")

BACKEND_LOCK = threading.RLock()
_installs = 0
_originals: dict[str, Callable[..., Any]] = {}
_guard = threading.Lock()


def _serialized(method: Callable[..., Any], *, copied: bool = False) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with BACKEND_LOCK:
            result = method(*args, **kwargs)
            return copy.deepcopy(result) if copied else result

    return call


def install() -> None:
    """Serialize the backend's writes from now on (counted: nested installs are fine)."""
    from moto.dynamodb.models import DynamoDBBackend

    global _installs
    with _guard:
        _installs += 1
        if _installs > 1:
            return
        for name in dict.fromkeys((*SERIALIZED, *COPIED)):
            original = getattr(DynamoDBBackend, name)
            _originals[name] = original
            setattr(DynamoDBBackend, name, _serialized(original, copied=name in COPIED))


def uninstall() -> None:
    """Undo one `install()`; the last one restores moto's own methods."""
    from moto.dynamodb.models import DynamoDBBackend

    global _installs
    with _guard:
        if _installs == 0:
            return
        _installs -= 1
        if _installs:
            return
        for name, original in _originals.items():
            setattr(DynamoDBBackend, name, original)
        _originals.clear()


def installed() -> bool:
    return _installs > 0


@contextmanager
def atomic_writes() -> Iterator[None]:
    install()
    try:
        yield
    finally:
        uninstall()
