"""The site agent's config for a sandbox PostgreSQL cluster (`quorum_dr_local.standins.postgres`):
what `drctl agent --config` reads, with the secret files it names written beside it (mode 0600,
as the agent demands). Used by the agent's tests and by the drill, which runs one agent per
database site as a real `drctl agent` process.

The sandbox's replication role follows and rebuilds; pg_rewind connects as the sandbox superuser
(a deployment grants its rewind role the functions `config/agent.example.yaml` lists instead).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from quorum_dr_local.standins.postgres import SERVICE_USER, PgCluster


def write_secret(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o600)
    return path


def sandbox_agent_settings(
    cluster: PgCluster,
    files: Path,
    state_dir: Path,
    *,
    key: str,
    listen_host: str = "127.0.0.1",
    port: int,
    follow_seconds: float = 20.0,
    rewind_as_superuser: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """The AgentConfig (as JSON data) of an agent for `cluster`, listening on `listen_host:port`;
    the signing key, the superuser's password and the replication credentials go into `files`."""
    roles = cluster.roles
    settings: dict[str, Any] = {
        "listen": {"host": listen_host, "port": port},
        "signing_key_file": str(write_secret(files / "signing.key", key + "\n")),
        "state_dir": str(state_dir),
        "database": {
            "data_dir": str(cluster.data_dir),
            "bin_dir": str(cluster.bin_dir),
            "host": cluster.host,
            "port": cluster.port,
            "superuser": roles.superuser.username,
            "superuser_password_file": str(write_secret(files / "superuser.pw", roles.superuser.password)),
            "application_roles": [roles.app.username],
            "run_as": SERVICE_USER if os.geteuid() == 0 else None,  # the server tools run as it
            "log_file": str(cluster.base_dir / f"{cluster.name}-agent.log"),
            "standby_name": cluster.name,
        },
        "replication_credentials_file": str(
            write_secret(files / "replication.json", json.dumps(roles.replication.as_secret()))
        ),
        "timeouts": {"follow_seconds": follow_seconds, "stop_seconds": 30, "start_seconds": 30},
    }
    if rewind_as_superuser:
        settings["rewind_credentials_file"] = str(
            write_secret(files / "rewind.json", json.dumps(roles.superuser.as_secret()))
        )
    return {**settings, **extra}
