"""The production wiring of the switchover's two ports: the site agent's client and the database
sync check, imported by name when first used. Stand-in modules shaped like theirs check what the
wiring asks of them; without them the port fails with PortNotWired and its name."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from quorum_dr.adapters.secrets import StaticSecrets
from quorum_dr.agent.contract import DatabaseRole, Operation, OperationAnswer, SiteStatus, Upstream
from quorum_dr.failover.errors import PortNotWired
from quorum_dr.failover.production import (
    AGENT_TIMEOUT_SECONDS,
    SITE_AGENT_MODULE,
    SYNC_ADAPTER_MODULE,
    SYNC_DOMAIN_MODULE,
    SyncCheckPort,
    _Once,
    site_agents,
)
from quorum_dr.ports import SiteAgentError, SiteAgentUnreachable
from tests.fakes import switchover_config

KEYS = StaticSecrets(
    {
        "quorum-dr/booking/main-agent-key": "main-key",
        "quorum-dr/booking/dr-agent-key": "dr-key",
        "quorum-dr/booking/db-admin": {"username": "qdr", "password": "pw"},
    }
)
STATUS = SiteStatus(role=DatabaseRole.PRIMARY, running=True, current_lsn="0/5000000", reason="primary")


def agent_module(raise_: BaseException | None = None) -> types.ModuleType:
    """Shaped like quorum_dr.adapters.site_agent: SiteAgentClient(url, key, timeout, *, ...), its
    run(operation, operation_id, **params), and its error classes."""
    module = types.ModuleType(SITE_AGENT_MODULE)

    class SiteAgentErrorOfTheClient(Exception):
        pass

    class AgentUnreachable(SiteAgentErrorOfTheClient):
        pass

    class SiteAgentClient:
        made: list[tuple[Any, ...]] = []

        def __init__(self, url: str, key: str, timeout: float = 10, **options: Any) -> None:
            SiteAgentClient.made.append((url, key, timeout, options))
            self.runs: list[tuple[Any, ...]] = []

        def status(self) -> SiteStatus:
            if raise_ is not None:
                raise raise_
            return STATUS

        def run(self, operation: Any, operation_id: str, **params: Any) -> OperationAnswer:
            self.runs.append((operation, operation_id, params))
            if raise_ is not None:
                raise raise_
            return OperationAnswer(
                ok=True, operation=operation, operation_id=operation_id, reason="done", status=STATUS
            )

    module.SiteAgentError = SiteAgentErrorOfTheClient  # type: ignore[attr-defined]
    module.AgentUnreachable = AgentUnreachable  # type: ignore[attr-defined]
    module.SiteAgentClient = SiteAgentClient  # type: ignore[attr-defined]
    return module


def test_the_agent_client_is_made_from_the_sites_agent_with_one_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = agent_module()
    monkeypatch.setitem(sys.modules, SITE_AGENT_MODULE, module)
    factory = site_agents(KEYS, _Once())
    service = switchover_config().service("booking")
    agent = factory(service, "dr")
    assert factory(service, "dr") is agent, "one client per service and site"
    ((url, key, timeout, options),) = module.SiteAgentClient.made
    assert (url, key) == ("https://198.51.100.20:8443/", "dr-key")
    assert (
        options == {"operation_timeout": AGENT_TIMEOUT_SECONDS, "attempts": 1}
        and timeout < AGENT_TIMEOUT_SECONDS
    )
    assert agent.status() == STATUS
    answer = agent.run(Operation.FOLLOW, "sw-1.follow.main", Upstream(host="198.51.100.20", port=5432))
    assert answer.ok
    assert agent.client.runs == [  # type: ignore[attr-defined]
        (Operation.FOLLOW, "sw-1.follow.main", {"primary": {"host": "198.51.100.20", "port": 5432}})
    ]
    agent.run(Operation.FREEZE, "sw-1.freeze.main")
    assert agent.client.runs[-1] == (Operation.FREEZE, "sw-1.freeze.main", {})  # type: ignore[attr-defined]


def test_the_clients_errors_become_the_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = agent_module()
    unreachable = agent_module(probe.AgentUnreachable("main-agent:8443: connection refused"))
    unreachable.AgentUnreachable = probe.AgentUnreachable  # type: ignore[attr-defined]
    unreachable.SiteAgentError = probe.SiteAgentError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, SITE_AGENT_MODULE, unreachable)
    agent = site_agents(KEYS, _Once())(switchover_config().service("booking"), "main")
    with pytest.raises(SiteAgentUnreachable, match="connection refused"):
        agent.status()
    refused = agent_module(probe.SiteAgentError("409: main is running: stop it first"))
    refused.AgentUnreachable = probe.AgentUnreachable  # type: ignore[attr-defined]
    refused.SiteAgentError = probe.SiteAgentError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, SITE_AGENT_MODULE, refused)
    agent = site_agents(KEYS, _Once())(switchover_config().service("booking"), "main")
    with pytest.raises(SiteAgentError, match="409: main is running") as caught:
        agent.run(Operation.STOP, "sw-1.stop.main")
    assert not isinstance(caught.value, SiteAgentUnreachable)


def test_without_the_agents_client_the_port_is_not_wired(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, SITE_AGENT_MODULE, None)  # importing it fails
    with pytest.raises(
        PortNotWired, match=f"the SiteAgent port: {SITE_AGENT_MODULE} is not in this deployment"
    ):
        site_agents(KEYS, _Once())(switchover_config().service("booking"), "main")


def test_a_site_without_an_agent_says_which_config_field_is_missing() -> None:
    from tests.fakes import make_config

    with pytest.raises(ValueError, match=r"booking has no site agent on main \(sites.main.agent\)"):
        site_agents(KEYS, _Once())(make_config().service("booking"), "main")


def test_the_sync_check_digests_a_site_over_its_endpoint_and_judges_with_the_final_position(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    adapter = types.ModuleType(SYNC_ADAPTER_MODULE)
    domain = types.ModuleType(SYNC_DOMAIN_MODULE)
    calls: list[tuple[Any, ...]] = []

    def sync_sites(database: Any, secrets: Any, active: str) -> tuple[str, str]:
        calls.append(("sync_sites", active))
        return f"{active}-site", "other-site"

    def settle_position(site: str, settings: Any) -> str:
        calls.append(("settle_position", site, settings))
        return "0/5000000"

    def digest_side(site: str, settings: Any) -> dict[str, Any]:
        calls.append(("digest_side", site, settings))
        return {"site": site}

    class SideDigest(dict):
        @classmethod
        def model_validate(cls, value: Any) -> SideDigest:
            return cls(value)

    def judge_sync(active: Any, target: Any, *, final_position: str, writes_frozen: bool) -> dict[str, Any]:
        calls.append(
            ("judge_sync", type(active).__name__, type(target).__name__, final_position, writes_frozen)
        )
        return {"in_sync": True, "reason": "in sync"}

    adapter.sync_sites, adapter.digest_side = sync_sites, digest_side  # type: ignore[attr-defined]
    adapter.settle_position = settle_position  # type: ignore[attr-defined]
    domain.SideDigest, domain.judge_sync = SideDigest, judge_sync  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, SYNC_ADAPTER_MODULE, adapter)
    monkeypatch.setitem(sys.modules, SYNC_DOMAIN_MODULE, domain)
    port = SyncCheckPort(switchover_config().service("booking"), KEYS)
    port.database = types.SimpleNamespace(sync_check="the settings")  # type: ignore[assignment]
    assert port.settle("main") == "0/5000000"
    assert port.digest("dr") == {"site": "dr-site"}
    assert port.judge({"site": "main"}, {"site": "dr"}, "0/5000000") == {"in_sync": True, "reason": "in sync"}
    assert calls == [
        ("sync_sites", "main"),
        ("settle_position", "main-site", "the settings"),
        ("sync_sites", "dr"),
        ("digest_side", "dr-site", "the settings"),
        ("judge_sync", "SideDigest", "SideDigest", "0/5000000", True),
    ]


def test_without_the_sync_check_the_port_is_not_wired(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, SYNC_ADAPTER_MODULE, None)
    port = SyncCheckPort(switchover_config().service("booking"), KEYS)
    with pytest.raises(PortNotWired, match="the SyncDigester port"):
        port.digest("main")
