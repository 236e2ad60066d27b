"""Which function may read which Secrets Manager secret, derived from the config.

Secrets are referenced by name (the operator creates them, see README "Deploy to AWS"); each
function's role may read only the secrets listed here for it.
"""

from __future__ import annotations

from quorum_dr.config import PostgresCheck, WatchdogConfig


def secrets_by_function(config: WatchdogConfig) -> dict[str, list[str]]:
    access: dict[str, set[str]] = {
        "probe": set(),
        "check_replica": set(),
        "promote_database": set(),
        "fence_main": set(),
        "switch_edge": set(),
        "notify": {hook.signing_secret for hook in config.notifications.webhooks},
        # the planned switchover: the site agents' keys and the sync check's database secrets for
        # its database step only; the API token for its edge step; the webhooks' keys for its record
        "switchover_database": set(),
        "switchover_edge": set(),
        "switchover_record": {hook.signing_secret for hook in config.notifications.webhooks},
        # the scheduled readiness: the API token (verify, read the records); every other secret it
        # only describes (stacks/readiness_function.py), never reads
        "readiness": set(),
    }
    control_checks = [config.probe.control_target, *config.probe.region_control_targets.values()]
    for target in control_checks:
        access["probe"].update(c.credentials_secret for c in target.checks if isinstance(c, PostgresCheck))
    for service in config.services:
        sites = [service.sites.main, service.sites.dr, *([service.sites.cold] if service.sites.cold else [])]
        for site in sites:
            access["probe"].update(c.credentials_secret for c in site.checks if isinstance(c, PostgresCheck))
        access["switch_edge"].add(service.edge.api_token_secret)
        access["switchover_edge"].add(service.edge.api_token_secret)
        access["readiness"].add(service.edge.api_token_secret)
        for site in (service.sites.main, service.sites.dr):
            if site.agent is not None:
                access["switchover_database"].add(site.agent.signing_secret)
        if service.database is not None:
            access["switchover_database"].update(
                {service.database.main.credentials_secret, service.database.dr.credentials_secret}
            )
            # The standby's position and its promotion; fencing talks to the old primary.
            access["check_replica"].add(service.database.dr.credentials_secret)
            access["promote_database"].add(service.database.dr.credentials_secret)
            access["fence_main"].add(service.database.main.credentials_secret)
        if service.hooks.fence_main:
            access["fence_main"].add(service.hooks.fence_main.signing_secret)
        for hook in (service.hooks.before_promote, service.hooks.after_promote):
            if hook:
                access["promote_database"].add(hook.signing_secret)
    return {name: sorted(secrets) for name, secrets in access.items() if secrets}
