"""Environment of the Lambda functions, as a typed model (names are the variables' names).

Each handler reads `LambdaSettings.from_env()` and calls `require(...)` for what it needs, so a
function deployed without a variable fails at once with the variable's name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class SettingsError(Exception):
    pass


class LambdaSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    QUORUM_DR_CONFIG_PATH: str = Field(
        default="watchdog.json", description="the config bundled with the code"
    )
    RESULTS_TABLE_NAME: str | None = None
    STATE_TABLE_NAME: str | None = None
    EVENT_BUS_NAME: str | None = None
    ALERT_TOPIC_ARN: str | None = None
    PROBE_FUNCTION_ARNS: dict[str, str] = Field(
        default_factory=dict, description="JSON object: probe region -> probe function ARN"
    )
    STATE_MACHINE_ARN: str | None = None
    SWITCHOVER_STATE_MACHINE_ARN: str | None = None
    COLD_SITE_LAUNCH_TEMPLATES: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="JSON object: service -> {region, launch_template_id} (launch_cold_site only)",
    )
    ROUND_QUEUE_URL: str | None = Field(
        default=None,
        description="the probe region's round queue (interval below 60 s): the minute's later rounds "
        "wait there instead of in the invocation",
    )
    AWS_REGION: str | None = None

    @field_validator("PROBE_FUNCTION_ARNS", "COLD_SITE_LAUNCH_TEMPLATES", mode="before")
    @classmethod
    def _json_map(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LambdaSettings:
        try:
            return cls.model_validate(dict(os.environ if environ is None else environ))
        except (ValidationError, json.JSONDecodeError) as exc:
            raise SettingsError(f"bad Lambda environment: {exc}") from None

    def require(self, *names: str) -> None:
        missing = [name for name in names if not getattr(self, name)]
        if missing:
            raise SettingsError(f"missing environment variable(s): {', '.join(missing)}")
