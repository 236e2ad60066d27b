"""Which ports the rehearsal's steps use in this process: the environment's (production), or a
set a test or the drill hands to `use(...)`."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from quorum_dr.rehearsal.service import RehearsalPorts

_lock = threading.Lock()
_ports: RehearsalPorts | None = None


def use(ports: RehearsalPorts | None) -> None:
    global _ports
    with _lock:
        _ports = ports


def current() -> RehearsalPorts:
    global _ports
    with _lock:
        if _ports is None:
            _ports = from_env()
        return _ports


@lru_cache(maxsize=1)
def from_env() -> RehearsalPorts:
    """Environment: QUORUM_DR_CONFIG_PATH, STATE_TABLE_NAME, EVENT_BUS_NAME,
    COLD_SITE_LAUNCH_TEMPLATES (the same as launch_cold_site's)."""
    from quorum_dr.adapters.cold_site import ColdSiteLaunch, Ec2ColdSiteLauncher
    from quorum_dr.adapters.dynamodb_state import DynamoStandbyWatch
    from quorum_dr.adapters.eventbridge import EventBridgePublisher
    from quorum_dr.adapters.rehearsal import DynamoRehearsalStore, Ec2InstanceTerminator, s3_figures
    from quorum_dr.config import Service, load_config
    from quorum_dr.settings import LambdaSettings

    settings = LambdaSettings.from_env()
    settings.require("STATE_TABLE_NAME", "EVENT_BUS_NAME")
    assert settings.STATE_TABLE_NAME and settings.EVENT_BUS_NAME
    config = load_config(settings.QUORUM_DR_CONFIG_PATH)
    compute = Ec2ColdSiteLauncher()

    def launcher(service: Service) -> ColdSiteLaunch:
        return ColdSiteLaunch(
            service,
            compute,
            script_dir=Path(settings.QUORUM_DR_CONFIG_PATH).resolve().parent / "cold_site",
            launch_templates=settings.COLD_SITE_LAUNCH_TEMPLATES,
        )

    return RehearsalPorts(
        config=config,
        launcher=launcher,
        figures=s3_figures(),
        terminator=Ec2InstanceTerminator,
        store=DynamoRehearsalStore(settings.STATE_TABLE_NAME, region=config.home_region),
        service_state=DynamoStandbyWatch(settings.STATE_TABLE_NAME, region=config.home_region).service_state,
        events=EventBridgePublisher.from_name(settings.EVENT_BUS_NAME, region=config.home_region),
    )
