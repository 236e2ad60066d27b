"""SecretSource adapters: Secrets Manager through Powertools (production), a dict (local runs, tests).

Secret values are never logged; errors name the secret, never its value.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quorum_dr.adapters.aws_sdk import sdk_config
from quorum_dr.ports import SecretSource

DEFAULT_MAX_AGE_SECONDS = 300


class SecretNotFound(KeyError):
    pass


class SecretsManagerSecrets(SecretSource):
    """Reads secrets from AWS Secrets Manager with Powertools' SecretsProvider and its cache.

    `max_age` is explicit: a rotated secret is picked up at most this many seconds later. The
    provider (and its boto3 client) is created on first use, so building this object costs nothing.
    The client comes from boto3's default session, like every other adapter's: left to itself the
    provider would build a new session, which parses botocore's endpoint and partition data again
    (about 60 ms of CPU more for the first secret a function reads; several times that in wall
    time on a small Lambda; issue 14). Threads of one round (the PostgreSQL checks) may ask at
    once: the provider is made once, under a lock.
    """

    def __init__(self, *, max_age: int = DEFAULT_MAX_AGE_SECONDS, boto3_client: Any = None) -> None:
        self.max_age = max_age
        self._boto3_client = boto3_client
        self._provider: Any = None
        self._lock = threading.Lock()

    def _get_provider(self) -> Any:
        with self._lock:
            if self._provider is None:
                import boto3
                from aws_lambda_powertools.utilities.parameters import SecretsProvider

                client = self._boto3_client or boto3.client("secretsmanager", config=sdk_config())
                self._provider = SecretsProvider(boto3_client=client)
            return self._provider

    def get(self, name: str) -> str:
        value = (self._provider or self._get_provider()).get(name, max_age=self.max_age)
        if isinstance(value, bytes):
            return value.decode("utf-8")
        return str(value)


class StaticSecrets(SecretSource):
    """Secrets held in memory: name -> text (a dict or list value is stored as its JSON text)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = {
            name: value if isinstance(value, str) else json.dumps(value) for name, value in values.items()
        }

    def get(self, name: str) -> str:
        try:
            return self._values[name]
        except KeyError:
            raise SecretNotFound(f"no secret named {name!r} (known: {sorted(self._values)})") from None

    @classmethod
    def from_file(cls, path: str | Path) -> StaticSecrets:
        """A JSON file mapping secret names to values, e.g. {"quorum-dr/db": {"username": ...}}."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object mapping secret names to values")
        return cls(data)
