"""The one contract between the site agent (`quorum_dr.agent.server`) and its client
(`quorum_dr.adapters.site_agent.SiteAgentClient`): what a request says and what the answer holds.

    POST /v1/operations   body: OperationRequest   answer: OperationAnswer
    GET  /v1/status       no body                  answer: SiteStatus
    POST /hooks/fence_main, /hooks/before_promote  (the hooks' own payload)  answer: HookAnswer
    any refusal before acting (401, 400, 404, 413)                          answer: Refusal

Every request is signed with `quorum_dr.signing` (scheme v2). An operation is idempotent under
its `operation_id`: the agent keeps the answer of every operation that succeeded, and a request
with the same id gets that stored answer back with `replayed: true`, without acting again. An
operation refused for the state it found (409) or that failed (500) is not kept: once the
state is right, the same id may be sent again. LSNs are PostgreSQL's text form (`0/3000148`).

`follow`, `rewind` and `rebuild` name the primary to stream from (`params.primary`); `rebuild`
replaces the data directory with a fresh base backup of it (the old one is kept, renamed).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from quorum_dr.config_types import Count, Flag, StrictModel

# Anchored: pydantic searches a pattern anywhere in the string (and `$` is the very end there).
OPERATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}$")
LSN = re.compile(r"^[0-9A-F]{1,8}/[0-9A-F]{1,8}$")
HOST = re.compile(r"^[A-Za-z0-9._:%\[\]-]{1,253}$")
MAX_REASON = 2000

Lsn = Annotated[str, Field(pattern=LSN.pattern, description="a PostgreSQL LSN as text, e.g. 0/3000148")]
Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON, description="a sentence that says why")]


class Operation(StrEnum):
    STATUS = "status"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    STOP = "stop"
    START = "start"
    FOLLOW = "follow"
    REWIND = "rewind"
    REBUILD = "rebuild"
    PROMOTE = "promote"


# The operations that name the primary to stream from; every other one takes no parameter.
NEEDS_PRIMARY = frozenset({Operation.FOLLOW, Operation.REWIND, Operation.REBUILD})


class DatabaseRole(StrEnum):
    PRIMARY = "primary"
    STANDBY = "standby"
    STOPPED = "stopped"


class SiteStatus(StrictModel):
    """The local PostgreSQL as the agent sees it."""

    role: DatabaseRole
    running: Flag
    timeline: Count | None = Field(
        default=None,
        ge=1,
        description="primary: the timeline it writes; standby: the timeline it receives (else its last "
        "restart point's); stopped: the latest checkpoint's",
    )
    current_lsn: Lsn | None = Field(default=None, description="primary: pg_current_wal_lsn()")
    receive_lsn: Lsn | None = Field(
        default=None,
        description="standby: the WAL it has, pg_last_wal_receive_lsn() or, when further (right after a "
        "start), pg_last_wal_replay_lsn()",
    )
    replay_lsn: Lsn | None = Field(default=None, description="standby: pg_last_wal_replay_lsn()")
    lag_bytes: Count | None = Field(
        default=None, ge=0, description="standby: bytes received and not yet replayed"
    )
    following: str | None = Field(
        default=None,
        max_length=300,
        description="standby: host:port of the upstream it is configured to stream from (no password)",
    )
    streaming: Flag = False
    frozen: Flag = Field(
        default=False, description="running: no application role may log in (checked in pg_roles)"
    )
    checkpoint_lsn: Lsn | None = Field(
        default=None,
        description="stopped: pg_controldata's 'Latest checkpoint location', after a clean stop the "
        "final position",
    )
    shutdown_clean: Flag | None = Field(
        default=None,
        description="stopped: pg_controldata's cluster state is 'shut down' or 'shut down in recovery'",
    )
    reason: Reason

    @model_validator(mode="after")
    def _role_agrees_with_running(self) -> SiteStatus:
        if self.running == (self.role == DatabaseRole.STOPPED):
            raise ValueError(f"role {self.role.value} does not agree with running={self.running}")
        return self


class Upstream(StrictModel):
    """The primary a standby streams from (the credentials are the agent's own, never sent)."""

    host: str = Field(pattern=HOST.pattern, description="host name, IPv4 or IPv6 address")
    port: Count = Field(default=5432, ge=1, le=65535)

    def address(self) -> str:
        return f"{self.host}:{self.port}"


class OperationParams(StrictModel):
    primary: Upstream | None = None


class OperationRequest(StrictModel):
    operation: Operation
    operation_id: str = Field(
        pattern=OPERATION_ID.pattern,
        description="1 to 128 characters: letters, digits and . _ : @ / + = -, starting with a letter or "
        "digit; the same id is the same operation",
    )
    params: OperationParams = Field(default_factory=OperationParams)

    @field_validator("params", mode="before")
    @classmethod
    def _no_null_params(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _params_fit_the_operation(self) -> OperationRequest:
        needs = self.operation in NEEDS_PRIMARY
        if needs and self.params.primary is None:
            raise ValueError(f"{self.operation.value} needs params.primary (host and port)")
        if not needs and self.params.primary is not None:
            raise ValueError(f"{self.operation.value} takes no params")
        return self

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a repeated operation id to be the same request."""
        return {"operation": self.operation.value, "params": self.params.model_dump(mode="json")}


class OperationAnswer(StrictModel):
    ok: Flag
    operation: Operation
    operation_id: str = Field(pattern=OPERATION_ID.pattern)
    reason: Reason
    status: SiteStatus
    replayed: Flag = Field(
        default=False,
        description="this is the stored answer of an earlier request with the same operation_id",
    )
    rebuild_needed: Flag = Field(
        default=False,
        description="follow or rewind: this cluster cannot become a standby of the primary that way "
        "(pg_rewind failed, the primary is another cluster, or the WAL it needs is gone from the "
        "primary); only `rebuild`, a fresh base backup, can make it one",
    )


class AgentCallError(Exception):
    """A call to a site agent did not succeed (`quorum_dr.adapters.site_agent` raises its
    subclasses): `reason` says why; `answer` is the agent's answer when it sent one (a 409 or 500
    with its status and `rebuild_needed`)."""

    def __init__(self, reason: str, status_code: int | None = None, answer: OperationAnswer | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code
        self.answer = answer


class HookAnswer(StrictModel):
    """The answer to a hook call, in the shape `quorum_dr.adapters.hooks` reads: `ok` false makes
    the hook fail with `reason`."""

    ok: Flag
    hook: str = Field(min_length=1, max_length=64)
    reason: Reason
    status: SiteStatus | None = None
    replayed: Flag = False


class Refusal(StrictModel):
    """A request the agent did not act on at all (bad or replayed signature, bad body, unknown path)."""

    ok: Flag = False
    reason: Reason
