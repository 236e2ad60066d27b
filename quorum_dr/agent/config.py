"""The site agent's configuration (`drctl agent --config agent.yaml`) and the secrets it names.

The YAML file is read with the bounds of `quorum_dr.config_file` and validated by `AgentConfig`
(unknown fields are errors). Secrets are never in that file: it names files that hold them (the
HMAC key the agent verifies requests with, the replication and rewind credentials as JSON
`{"username": ..., "password": ...}`, the superuser's password if it needs one), each a regular
file of at most 64 KiB that other users may not read (mode 0600 or 0400). Every problem is one
`field: reason` line (`ConfigError`), and no line ever holds a secret.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from quorum_dr.agent.local_postgres import Credentials, LocalCluster, LocalPostgres, Timeouts
from quorum_dr.config import ConfigError, describe_errors
from quorum_dr.config_file import FileRefused, read_bytes, read_yaml
from quorum_dr.config_types import Count, Number, StrictModel

SECRET_FILE_LIMIT = 64 * 1024
_RESERVED_ROLES = {"public", "none", "current_role", "current_user", "session_user"}


def _absolute(path: Path) -> Path:
    if not path.is_absolute():
        raise ValueError(f"{str(path)[:200]!r} is not an absolute path (the agent runs as a service)")
    return path


AbsolutePath = Annotated[Path, AfterValidator(_absolute)]
Port = Annotated[Count, Field(ge=1, le=65535)]


class Listen(StrictModel):
    host: str = Field(default="127.0.0.1", min_length=1, description="the address the agent listens on")
    port: Port = 8443


class Tls(StrictModel):
    cert_file: AbsolutePath = Field(description="PEM certificate chain")
    key_file: AbsolutePath = Field(description="PEM private key")


class DatabaseSettings(StrictModel):
    data_dir: AbsolutePath
    bin_dir: AbsolutePath = Path("/usr/lib/postgresql/15/bin")
    host: str = Field(default="/var/run/postgresql", min_length=1, description="socket directory or address")
    port: Port = 5432
    superuser: str = Field(default="postgres", min_length=1, max_length=63)
    superuser_password_file: AbsolutePath | None = Field(
        default=None,
        description="only when the superuser needs a password (peer auth over the socket does not)",
    )
    application_roles: list[str] = Field(
        default_factory=lambda: ["app"],
        min_length=1,
        description="the application's login roles: freeze takes their LOGIN and ends their sessions",
    )
    run_as: str | None = Field(
        default=None,
        min_length=1,
        description="the OS user owning the cluster: pg_ctl and pg_rewind run as it when the agent is root",
    )
    log_file: AbsolutePath | None = Field(
        default=None,
        description="the server log of a server the agent starts (default state_dir/postgresql.log); "
        "outside the data directory",
    )
    standby_name: str | None = Field(
        default=None,
        max_length=63,
        description="application_name this cluster gives its primary as a standby",
    )

    @field_validator("application_roles")
    @classmethod
    def _role_names(cls, roles: list[str]) -> list[str]:
        for role in roles:
            if not role or len(role.encode()) > 63:
                raise ValueError(f"{role!r} is not a PostgreSQL role name (1 to 63 bytes)")
            if role.lower() in _RESERVED_ROLES or role.startswith("pg_"):
                raise ValueError(f"{role!r} is reserved by PostgreSQL, not an application role")
        if len(set(roles)) != len(roles):
            raise ValueError("an application role is named twice")
        return roles

    @model_validator(mode="after")
    def _superuser_is_not_frozen(self) -> DatabaseSettings:
        if self.superuser in self.application_roles:
            raise ValueError(
                f"application_roles names the superuser {self.superuser!r}: a freeze would lock the agent out"
            )
        if self.log_file is not None and self.log_file.is_relative_to(self.data_dir):
            raise ValueError("log_file is inside data_dir: pg_rewind replaces the data directory's files")
        return self


class AgentTimeouts(StrictModel):
    statement_seconds: Number = Field(default=10, gt=0, le=300)
    stop_seconds: Count = Field(default=60, ge=1, le=3600)
    start_seconds: Count = Field(default=60, ge=1, le=3600)
    follow_seconds: Number = Field(default=60, gt=0, le=3600, description="bounded wait until it streams")
    rewind_seconds: Number = Field(default=600, gt=0, le=6 * 3600)
    rebuild_seconds: Number = Field(
        default=3600, gt=0, le=24 * 3600, description="bounded pg_basebackup of the whole cluster"
    )
    promote_seconds: Count = Field(default=60, ge=1, le=3600)


class AgentConfig(StrictModel):
    listen: Listen = Field(default_factory=Listen)
    tls: Tls | None = Field(default=None, description="serve HTTPS with this certificate (else plain HTTP)")
    signing_key_file: AbsolutePath = Field(
        description="the HMAC key requests are signed with (the hook's / sites.<site>.agent signing secret)"
    )
    signature_max_age_seconds: Count = Field(
        default=300, ge=1, le=3600, description="oldest signed request accepted"
    )
    state_dir: AbsolutePath = Field(description="where the agent keeps its operation ids and their answers")
    database: DatabaseSettings = Field(description="the local PostgreSQL cluster")
    replication_credentials_file: AbsolutePath | None = Field(
        default=None,
        description='JSON {"username", "password"} of the replication role, for follow, rewind and rebuild',
    )
    rewind_credentials_file: AbsolutePath | None = Field(
        default=None,
        description="JSON credentials pg_rewind connects to the new primary with (default: the replication "
        "ones; the role needs EXECUTE on pg_ls_dir, pg_stat_file, pg_read_binary_file and pg_checkpoint)",
    )
    timeouts: AgentTimeouts = Field(default_factory=AgentTimeouts)

    @property
    def log_file(self) -> Path:
        return self.database.log_file or self.state_dir / "postgresql.log"


def load_agent_config(path: str | Path) -> AgentConfig:
    """The validated config in the file, or ConfigError with one `field: reason` per problem."""
    try:
        data = read_yaml(path)
    except FileRefused as exc:
        raise ConfigError(str(path), [f"(file): {exc}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["(top level): expected a mapping of fields"])
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(str(path), describe_errors(exc)) from None


def read_secret_file(path: Path) -> bytes:
    """A secret file's bytes: a regular file that other users may not read, non-empty. Raises
    ValueError saying why (never its contents)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if stat.S_ISREG(mode) and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"{path} may be read by other users (mode {stat.S_IMODE(mode):04o}): chmod 600 it")
    try:
        data = read_bytes(path, SECRET_FILE_LIMIT).strip()
    except FileRefused as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not data:
        raise ValueError(f"{path} is empty")
    return data


def read_credentials(path: Path) -> Credentials:
    data = read_secret_file(path)
    try:
        value = json.loads(data)
    except ValueError:
        raise ValueError(f'{path} is not JSON {{"username": ..., "password": ...}}') from None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("username"), str)
        or not isinstance(value.get("password"), str)
        or not value["username"]
    ):
        raise ValueError(f'{path} is not JSON {{"username": ..., "password": ...}} with text values')
    return Credentials(value["username"], value["password"])


def build_postgres(config: AgentConfig, source: str = "<agent config>") -> tuple[LocalPostgres, bytes]:
    """The local cluster's operations and the signing key, from the config and the files it names;
    ConfigError with one line per problem."""
    problems: list[str] = []
    secrets: dict[str, object] = {}
    readers = {
        "signing_key_file": (config.signing_key_file, read_secret_file),
        "replication_credentials_file": (config.replication_credentials_file, read_credentials),
        "rewind_credentials_file": (config.rewind_credentials_file, read_credentials),
        "database.superuser_password_file": (config.database.superuser_password_file, read_secret_file),
    }
    for name, (path, reader) in readers.items():
        if path is None:
            continue
        try:
            secrets[name] = reader(path)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    if os.geteuid() == 0 and not config.database.run_as:
        problems.append(
            "database.run_as: the agent runs as root: name the OS user that owns the cluster (e.g. postgres)"
        )
    if problems:
        raise ConfigError(source, problems)
    password = secrets.get("database.superuser_password_file")
    settings = config.database
    cluster = LocalCluster(
        data_dir=settings.data_dir,
        bin_dir=settings.bin_dir,
        host=settings.host,
        port=settings.port,
        superuser=settings.superuser,
        application_roles=tuple(settings.application_roles),
        log_file=config.log_file,
        superuser_password=password.decode("utf-8", "replace") if isinstance(password, bytes) else None,
        run_as=settings.run_as,
        standby_name=settings.standby_name,
    )
    timeouts = config.timeouts
    replication = secrets.get("replication_credentials_file")
    rewind = secrets.get("rewind_credentials_file")
    postgres = LocalPostgres(
        cluster,
        replication=replication if isinstance(replication, Credentials) else None,
        rewind=rewind if isinstance(rewind, Credentials) else None,
        timeouts=Timeouts(
            statement=timeouts.statement_seconds,
            stop=timeouts.stop_seconds,
            start=timeouts.start_seconds,
            follow=timeouts.follow_seconds,
            rewind=timeouts.rewind_seconds,
            rebuild=timeouts.rebuild_seconds,
            promote=timeouts.promote_seconds,
        ),
    )
    key = secrets["signing_key_file"]
    assert isinstance(key, bytes)
    return postgres, key
