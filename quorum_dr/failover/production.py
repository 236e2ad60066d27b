"""The production wiring: every failover port bound to its real adapter.

Built once per Lambda container by `from_env` (which `quorum_dr.failover.wiring.current` calls)
from `LambdaSettings`, the bundled config and Secrets Manager:

- state: DynamoStateStore (STATE_TABLE_NAME); results: DynamoDbResultStore (RESULTS_TABLE_NAME,
  in the home region);
- probes / verifier: the probe function of every region (PROBE_FUNCTION_ARNS), invoked in parallel;
- promoter: PostgresPromoter from the service's database config and its credentials secrets;
- edge: CloudflareEdge with the API token secret;
- hooks: the service's configured hooks, signed, through HttpHookCaller;
- launcher: EC2 with the bundled bootstrap (cold_site/<service>.sh next to the config) and the
  launch templates the CDK app created (COLD_SITE_LAUNCH_TEMPLATES);
- notifier: SNS (ALERT_TOPIC_ARN) and the configured webhooks;
- markers: the file-sync marker DR serves, over HTTP(S) (quorum_dr.adapters.file_sync);
- site_agent: the site agent's client (quorum_dr.adapters.site_agent.SiteAgentClient) with the
  URL of `sites.<site>.agent` and the HMAC key its `signing_secret` names, as the port
  (`AgentClientPort`);
- sync: the database sync check (quorum_dr.adapters.postgres_sync digests a site,
  quorum_dr.domain.sync_check.judge_sync judges), as the port (`SyncCheckPort`).

The site agent's client and the sync check come with their own work: they are imported by name
when first used, and a deployment without them fails that port with PortNotWired.

Each factory asks for its environment variable only when its port is used, so a function fails
with the variable's name, and builds its adapter lazily (no network call at import or wiring).
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

from quorum_dr.agent.contract import Operation, OperationAnswer, SiteStatus, Upstream
from quorum_dr.config import Service, WatchdogConfig, load_config, parse_config
from quorum_dr.failover.errors import PortNotWired
from quorum_dr.failover.ports import Ports
from quorum_dr.ports import (
    ColdSiteLauncher,
    EdgeSwitch,
    HookRunner,
    MarkerReader,
    Notifier,
    ProbeInvoker,
    Promoter,
    ResultStore,
    SecretSource,
    SiteAgent,
    SiteAgentError,
    SiteAgentUnreachable,
    StateStore,
    SwitchVerifier,
    SyncDigester,
)
from quorum_dr.settings import LambdaSettings

SECRETS_MAX_AGE_SECONDS = 300
PROBE_INVOKE_GRACE_SECONDS = 15.0  # a probe function's cold start and its writes, on top of a round
# One request to a site agent: its slowest operation (a clean stop, a promotion, a start as a
# standby) waits for PostgreSQL within this (tests/infrastructure/test_budgets.py counts it). One
# attempt: the state machine's Retry asks again, under the same operation id.
AGENT_TIMEOUT_SECONDS = 90.0
AGENT_STATUS_TIMEOUT_SECONDS = 10.0
SITE_AGENT_MODULE = "quorum_dr.adapters.site_agent"
SYNC_ADAPTER_MODULE = "quorum_dr.adapters.postgres_sync"
SYNC_DOMAIN_MODULE = "quorum_dr.domain.sync_check"

T = TypeVar("T")


class _Once:
    """One adapter per key for the life of the container (thread-safe)."""

    def __init__(self) -> None:
        self._made: dict[Any, Any] = {}
        self._lock = threading.RLock()  # a factory may ask for another (verifier -> probe functions)

    def get(self, key: Any, make: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._made:
                self._made[key] = make()
            value: T = self._made[key]
            return value


def load_bundled_config(path: str) -> WatchdogConfig:
    """The config bundled with the function: YAML, or the JSON the CDK app writes."""
    if path.endswith(".json"):
        return parse_config(json.loads(Path(path).read_text(encoding="utf-8")), path)
    return load_config(path)


def from_env(settings: LambdaSettings | None = None) -> Ports:
    """The Ports of a deployed function, from its environment and its bundled config."""
    settings = settings or LambdaSettings.from_env()
    settings.require("STATE_TABLE_NAME")
    return production_ports(settings, config=load_bundled_config(settings.QUORUM_DR_CONFIG_PATH))


def probe_invoke_timeout(config: WatchdogConfig) -> float:
    """How long to wait for one region's probe function: its round (self-check, then the checks,
    each bounded by the probe timeout) plus the function's start and writes."""
    return 2 * config.probe.timeout_seconds + PROBE_INVOKE_GRACE_SECONDS


def production_ports(
    settings: LambdaSettings,
    *,
    config: WatchdogConfig,
    store: StateStore | None = None,
    secrets: SecretSource | None = None,
) -> Ports:
    """The Ports of a deployed function (see the module docstring)."""
    from quorum_dr.adapters.secrets import SecretsManagerSecrets

    secrets = secrets or SecretsManagerSecrets(max_age=SECRETS_MAX_AGE_SECONDS)
    once = _Once()
    if store is None:
        from quorum_dr.adapters.dynamodb_state import DynamoStateStore

        settings.require("STATE_TABLE_NAME")
        assert settings.STATE_TABLE_NAME is not None
        store = DynamoStateStore(settings.STATE_TABLE_NAME)

    def results() -> ResultStore:
        from quorum_dr.adapters.dynamodb_results import DynamoDbResultStore

        settings.require("RESULTS_TABLE_NAME")
        assert settings.RESULTS_TABLE_NAME is not None
        name = settings.RESULTS_TABLE_NAME
        return once.get(
            "results",
            lambda: DynamoDbResultStore.from_name(
                name, ttl_seconds=config.probe.result_ttl_seconds, region=config.home_region
            ),
        )

    def probe_functions() -> Any:
        from quorum_dr.adapters.lambda_probes import ProbeFunctions

        settings.require("PROBE_FUNCTION_ARNS")
        return once.get(
            "probe_functions",
            lambda: ProbeFunctions(
                settings.PROBE_FUNCTION_ARNS, timeout_seconds=probe_invoke_timeout(config)
            ),
        )

    def probes() -> ProbeInvoker:
        from quorum_dr.adapters.lambda_probes import LambdaProbeInvoker

        return once.get("probes", lambda: LambdaProbeInvoker(probe_functions()))

    def verifier() -> SwitchVerifier:
        from quorum_dr.adapters.lambda_probes import LambdaSwitchVerifier

        return once.get(
            "verifier",
            lambda: LambdaSwitchVerifier(
                probe_functions(),
                quorum=config.quorum,
                public_hostname=lambda name: config.service(name).public_hostname,
            ),
        )

    def promoter(service: Service) -> Promoter:
        from quorum_dr.adapters.postgres_promoter import PostgresPromoter

        database = service.database
        if database is None:
            raise ValueError(f"{service.name} has no database configured: there is nothing to promote")
        return once.get(("promoter", service.name), lambda: PostgresPromoter.from_config(database, secrets))

    def edge(service: Service) -> EdgeSwitch:
        from quorum_dr.adapters.cloudflare_edge import CloudflareEdge

        return CloudflareEdge.for_service(service, secrets)  # the token is read (cached) on each use

    def hooks(service: Service) -> HookRunner:
        from quorum_dr.adapters.hooks import HttpHookCaller, ServiceHooks

        caller = once.get("hook_caller", lambda: HttpHookCaller(secrets))
        return ServiceHooks(service, caller)

    def launcher(service: Service) -> ColdSiteLauncher:
        from quorum_dr.adapters.cold_site import ColdSiteLaunch, Ec2ColdSiteLauncher

        compute = once.get("ec2", Ec2ColdSiteLauncher)
        return ColdSiteLaunch(
            service,
            compute,
            script_dir=Path(settings.QUORUM_DR_CONFIG_PATH).resolve().parent / "cold_site",
            launch_templates=settings.COLD_SITE_LAUNCH_TEMPLATES,
        )

    def notifier() -> Notifier:
        from quorum_dr.adapters.notifier import OperatorNotifier, build_notifier

        return once.get(
            "notifier",
            lambda: OperatorNotifier(
                build_notifier(settings.ALERT_TOPIC_ARN, config.notifications.webhooks, secrets)
            ),
        )

    return Ports(
        config=config,
        store=store,
        results=results,
        probes=probes,
        promoter=promoter,
        edge=edge,
        hooks=hooks,
        launcher=launcher,
        verifier=verifier,
        notifier=notifier,
        markers=http_markers,
        site_agent=site_agents(secrets, once),
        sync=lambda service: SyncCheckPort(service, secrets),
    )


def http_markers() -> MarkerReader:
    """The MarkerReader port: the file-sync marker over HTTP(S) (it keeps nothing between reads)."""
    from quorum_dr.adapters.file_sync import HttpMarkerReader

    return HttpMarkerReader()


def _module(name: str, port: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise PortNotWired(
            f"no adapter is wired for the {port} port: {name} is not in this deployment"
        ) from None


class AgentClientPort(SiteAgent):
    """The site agent's client as the SiteAgent port: `primary` goes as the client's keyword, its
    errors become the port's (unreachable: SiteAgentUnreachable, which the state machine retries;
    any other refusal or failure: SiteAgentError with the agent's reason)."""

    def __init__(self, client: Any, module: Any) -> None:
        self.client, self.module = client, module

    def _call(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except self.module.AgentUnreachable as exc:
            raise SiteAgentUnreachable(str(exc)) from None
        except self.module.SiteAgentError as exc:
            raise SiteAgentError(str(exc)) from None

    def status(self) -> SiteStatus:
        return self._call(lambda: cast(SiteStatus, self.client.status()))

    def run(
        self, operation: Operation, operation_id: str, primary: Upstream | None = None
    ) -> OperationAnswer:
        params = {"primary": primary.model_dump(mode="json")} if primary is not None else {}
        return self._call(lambda: cast(OperationAnswer, self.client.run(operation, operation_id, **params)))


def site_agents(secrets: SecretSource, once: _Once) -> Callable[[Service, str], SiteAgent]:
    """The SiteAgent factory: the agent of `sites.<site>.agent`, signed with the key its
    `signing_secret` names, one client per service and site."""

    def site_agent(service: Service, site: str) -> SiteAgent:
        configured = getattr(service.sites, site, None)
        agent = configured.agent if configured is not None else None
        if agent is None:
            raise ValueError(
                f"{service.name} has no site agent on {site} (sites.{site}.agent): a planned switchover "
                "needs one on both database hosts"
            )
        module = _module(SITE_AGENT_MODULE, "SiteAgent")
        url, secret = str(agent.url), agent.signing_secret

        def make() -> SiteAgent:
            client = module.SiteAgentClient(
                url,
                secrets.get(secret),
                timeout=AGENT_STATUS_TIMEOUT_SECONDS,
                operation_timeout=AGENT_TIMEOUT_SECONDS,
                attempts=1,
            )
            return AgentClientPort(client, module)

        return once.get(("site_agent", service.name, site), make)

    return site_agent


class SyncCheckPort(SyncDigester):
    """The database sync check as the SyncDigester port: a site's digest read over its database
    endpoint (`database.<site>` and its credentials secret), judged by `judge_sync`."""

    def __init__(self, service: Service, secrets: SecretSource) -> None:
        if service.database is None:
            raise ValueError(f"{service.name} has no database configured: there is nothing to compare")
        self.database, self.secrets = service.database, secrets

    def _side(self, site: str) -> tuple[Any, Any, Any]:
        adapter = _module(SYNC_ADAPTER_MODULE, "SyncDigester")
        # `database.sync_check` (which tables, the size limit, the bound) comes with the sync check
        settings: Any = getattr(self.database, "sync_check", None)
        if settings is None:
            raise PortNotWired(
                "no adapter is wired for the SyncDigester port: the config has no database.sync_check"
            )
        side, _ = adapter.sync_sites(self.database, self.secrets, site)  # (that site, the other one)
        return adapter, side, settings

    def settle(self, site: str) -> str:
        adapter, side, settings = self._side(site)
        return str(adapter.settle_position(side, settings))

    def digest(self, site: str) -> Any:
        adapter, side, settings = self._side(site)
        return adapter.digest_side(side, settings)

    def judge(self, active: Mapping[str, Any], target: Mapping[str, Any], final_position: str) -> Any:
        domain = _module(SYNC_DOMAIN_MODULE, "SyncDigester")
        return domain.judge_sync(
            domain.SideDigest.model_validate(active),
            domain.SideDigest.model_validate(target),
            final_position=final_position,
            writes_frozen=True,  # the switchover judges only after its freeze, checked by the agent
        )
