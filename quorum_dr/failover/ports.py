"""The set of ports one failover or switchover step talks through: the config, the state store, and
a factory per adapter (`quorum_dr.ports` defines each interface).

Production builds the whole set from the environment (`quorum_dr.failover.production`); tests and
the drill build their own and hand it to `quorum_dr.failover.wiring.use`. A Ports built by hand
leaves the ports it was not given unwired: they fail with their name, never silently.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quorum_dr.config import Service, WatchdogConfig
from quorum_dr.failover.errors import PortNotWired
from quorum_dr.ports import (
    ColdSiteLauncher,
    EdgeSwitch,
    HookRunner,
    MarkerReader,
    Notifier,
    ProbeInvoker,
    Promoter,
    ResultStore,
    SiteAgent,
    StateStore,
    SwitchVerifier,
    SyncDigester,
)


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
    # the file-sync marker DR serves, read by the replica check as evidence (never a gate)
    markers: Callable[[], MarkerReader] = field(default_factory=lambda: _unwired("MarkerReader"))
    # the planned switchover: the agent of one site of a service, and the database sync check
    site_agent: Callable[[Service, str], SiteAgent] = field(default_factory=lambda: _unwired("SiteAgent"))
    sync: Callable[[Service], SyncDigester] = field(default_factory=lambda: _unwired("SyncDigester"))
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep  # between verification attempts (tests pass their own)

    def service(self, name: str) -> Service:
        return self.config.service(name)
