"""The ports one failover step talks through, built once per Lambda container from its environment.

Tests and the drill hand their own set to `use(...)`; production builds every port from
`LambdaSettings`, the bundled config and Secrets Manager (`quorum_dr.failover.production`).
`attach(...)` can still replace a factory by field name (the drill, a custom deployment). A Ports
built by hand leaves the ports it was not given unwired: they fail with their name, never silently.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quorum_dr.config import Service, WatchdogConfig, load_config, parse_config
from quorum_dr.failover.errors import PortNotWired
from quorum_dr.ports import (
    ColdSiteLauncher,
    EdgeSwitch,
    HookRunner,
    Notifier,
    ProbeInvoker,
    Promoter,
    ResultStore,
    StateStore,
    SwitchVerifier,
)
from quorum_dr.settings import LambdaSettings


def _unwired(name: str) -> Callable[..., Any]:
    def missing(*_args: Any, **_kwargs: Any) -> Any:
        raise PortNotWired(f"no adapter is wired for the {name} port in this deployment")

    return missing


@dataclass
class Ports:
    config: WatchdogConfig
    store: StateStore
    results: Callable[[], ResultStore] = field(default_factory=lambda: _unwired("ResultStore"))
    probes: Callable[[], ProbeInvoker] = field(default_factory=lambda: _unwired("ProbeInvoker"))
    promoter: Callable[[Service], Promoter] = field(default_factory=lambda: _unwired("Promoter"))
    edge: Callable[[Service], EdgeSwitch] = field(default_factory=lambda: _unwired("EdgeSwitch"))
    hooks: Callable[[Service], HookRunner] = field(default_factory=lambda: _unwired("HookRunner"))
    launcher: Callable[[Service], ColdSiteLauncher] = field(
        default_factory=lambda: _unwired("ColdSiteLauncher")
    )
    verifier: Callable[[], SwitchVerifier] = field(default_factory=lambda: _unwired("SwitchVerifier"))
    notifier: Callable[[], Notifier] = field(default_factory=lambda: _unwired("Notifier"))
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def service(self, name: str) -> Service:
        return self.config.service(name)


_lock = threading.Lock()
_ports: Ports | None = None
_attachments: dict[str, Any] = {}


def use(ports: Ports | None) -> None:
    """Use this set of ports from now on (None: build from the environment on next use)."""
    global _ports
    with _lock:
        _ports = ports


def attach(**factories: Any) -> None:
    """Production wiring: attach adapter factories by Ports field name (promoter=..., edge=...)."""
    with _lock:
        _attachments.update(factories)


def load_bundled_config(path: str) -> WatchdogConfig:
    if path.endswith(".json"):
        return parse_config(json.loads(Path(path).read_text(encoding="utf-8")), path)
    return load_config(path)


def from_env(settings: LambdaSettings | None = None) -> Ports:
    """Production: every port bound to its real adapter, then any attached replacement."""
    from quorum_dr.failover.production import production_ports

    settings = settings or LambdaSettings.from_env()
    settings.require("STATE_TABLE_NAME")
    config = load_bundled_config(settings.QUORUM_DR_CONFIG_PATH)
    ports = production_ports(settings, config=config)
    for name, factory in _attachments.items():
        setattr(ports, name, factory)
    return ports


def current() -> Ports:
    global _ports
    with _lock:
        if _ports is None:
            _ports = from_env()
        return _ports
