"""From the typed config to stacks: one control stack in the home region, one probe stack per
probe region, one cold-site stack per cold-site region."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import App, Environment, Stack, Tags

from quorum_dr.config import ConfigError, Service, WatchdogConfig, load_config
from stacks import naming
from stacks.cold_site import ColdSiteStack, render_bootstrap
from stacks.control_stack import ControlStack
from stacks.lambda_asset import LambdaAssets
from stacks.nag import acknowledge, enable_checks, logical_id
from stacks.probe_stack import ProbeStack

DEFAULT_CONFIG = "config/watchdog.example.yaml"
ROOT = Path(__file__).resolve().parent.parent


class SynthError(Exception):
    pass


def _flag(app: App, key: str, default: bool) -> bool:
    value = app.node.try_get_context(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def read_config(app: App) -> tuple[Path, WatchdogConfig]:
    """The config named by context `config` (cdk.json, or `-c config=PATH`), validated."""
    path = Path(app.node.try_get_context("config") or DEFAULT_CONFIG)
    if not path.is_absolute():
        path = ROOT / path
    try:
        return path, load_config(path)
    except ConfigError as exc:  # one `path: reason` line per problem, as `drctl config validate`
        raise SynthError("\n".join(exc.lines())) from None


@dataclass
class Deployment:
    config: WatchdogConfig
    control: ControlStack
    probes: dict[str, ProbeStack]
    cold_sites: dict[str, ColdSiteStack] = field(default_factory=dict)

    @property
    def stacks(self) -> list[Stack]:
        return [*self.cold_sites.values(), self.control, *self.probes.values()]


def build(app: App) -> Deployment:
    _, config = read_config(app)
    skip_bundling = _flag(app, "skip_bundling", False)
    services_with_cold = [s for s in config.services if s.cold_site is not None]
    assets = LambdaAssets(
        json.dumps(config.model_dump(mode="json"), indent=1, sort_keys=True),
        skip_bundling=skip_bundling,
        cold_site_scripts={s.name: render_bootstrap(config, s) for s in services_with_cold},
    )
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")

    def env(region: str) -> Environment:
        return Environment(account=account, region=region)

    by_region: dict[str, list[Service]] = {}
    for service in services_with_cold:
        assert service.cold_site is not None
        by_region.setdefault(service.cold_site.region, []).append(service)
    cold_sites = {
        region: ColdSiteStack(
            app,
            f"QuorumDr-ColdSite-{naming.stack_region_suffix(region)}",
            config=config,
            services=services,
            env=env(region),
            cross_region_references=True,
            description=f"quorum-dr cold-site launch templates in {region}",
        )
        for region, services in sorted(by_region.items())
    }
    control = ControlStack(
        app,
        "QuorumDr-Control",
        config=config,
        assets=assets,
        cold_sites=[target for stack in cold_sites.values() for target in stack.targets],
        env=env(config.home_region),
        cross_region_references=True,
        description="quorum-dr control plane: tables, failover state machine, action functions, alarms",
    )
    probes = {}
    for region in config.probe_regions:
        probe = ProbeStack(
            app,
            f"QuorumDr-Probe-{naming.stack_region_suffix(region)}",
            config=config,
            region=region,
            assets=assets,
            env=env(region),
            description=f"quorum-dr probe in {region}",
        )
        # The probe writes to the home table and bus by name: deploy the control plane first.
        probe.add_stack_dependency(control, "the probe writes to the home results table and bus")
        probes[region] = probe
    deployment = Deployment(config=config, control=control, probes=probes, cold_sites=cold_sites)
    for stack in deployment.stacks:
        Tags.of(stack).add("project", "quorum-dr")
    _acknowledge_generated(deployment)
    if _flag(app, "nag", True):
        enable_checks(app)
    return deployment


def _acknowledge_generated(deployment: Deployment) -> None:
    """Findings on resources CDK generates itself, acknowledged where they appear."""
    control = deployment.control
    machines = {"failover": control.failover.role, "switchover": control.switchover.role}
    for machine, sm_role in machines.items():
        for name in naming.MACHINE_FUNCTIONS[machine]:
            logical = logical_id(control.actions.functions[name].function)
            acknowledge(
                sm_role,
                f"AwsSolutions-IAM5[Resource::<{logical}.Arn>:*]",
                "grant_invoke also allows the function's versions and aliases (ARN:*); it is still one "
                "of the state machine's own functions.",
            )
