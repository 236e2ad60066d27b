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
client. Query and Scan stay outside: on AWS they are not serializable with transactions either.
"""

from __future__ import annotations

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

BACKEND_LOCK = threading.RLock()
_installs = 0
_originals: dict[str, Callable[..., Any]] = {}
_guard = threading.Lock()


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with BACKEND_LOCK:
            return method(*args, **kwargs)

    return call


def install() -> None:
    """Serialize the backend's writes from now on (counted: nested installs are fine)."""
    from moto.dynamodb.models import DynamoDBBackend

    global _installs
    with _guard:
        _installs += 1
        if _installs > 1:
            return
        for name in SERIALIZED:
            original = getattr(DynamoDBBackend, name)
            _originals[name] = original
            setattr(DynamoDBBackend, name, _serialized(original))


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
