"""Recorded probe rounds built by hand for the replay tests: each region's rounds as the probe
service stores them (the self-check, then every check of config/watchdog.example.yaml's booking
service without its cold site), with main reachable or not from each region and the DR standby
streaming from main or not, as the test says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from quorum_dr.config import WatchdogConfig, parse_config
from quorum_dr.config_file import read_yaml
from quorum_dr.domain.results import DbRole, DbStatus, FailureClass, ProbeResult, Vote, format_lsn

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "watchdog.example.yaml"
REGIONS = ("eu-west-2", "us-east-1", "us-west-2")
T0 = 1_796_270_000.0  # 2026-12-03 03:53:20Z
PHASES = (0.0, 7.0, 14.0)  # each region's scheduled round, seconds into every interval
WRITE = 0.5  # a round's results are received this long after it started
SERVICE = "booking"


def example_config_data(**probe: Any) -> dict[str, Any]:
    """config/watchdog.example.yaml without its cold site, with these `probe` settings."""
    data = read_yaml(EXAMPLE)
    for service in data["services"]:
        service["sites"].pop("cold", None)
        service.pop("cold_site", None)
    data["probe"].update(probe)
    return data


def example_config(
    *, quorum: int = 2, confirmation: dict[str, Any] | None = None, **probe: Any
) -> WatchdogConfig:
    data = example_config_data(**probe)
    data["quorum"] = quorum
    data["confirmation"].update(confirmation or {})
    return parse_config(data, str(EXAMPLE))


def write_config(path: Path, config: WatchdogConfig) -> Path:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)), encoding="utf-8")
    return path


def _standby(received_until: float, *, streaming: bool, heard_ago: float) -> DbStatus:
    lsn = format_lsn((0x16 << 32) + int(received_until * 1000))
    return DbStatus(
        role=DbRole.STANDBY,
        receive_lsn=lsn,
        replay_lsn=lsn,
        replay_lag_bytes=0,
        replay_lag_seconds=0.2 if streaming else None,
        streaming=streaming,
        last_msg_age_seconds=round(heard_ago, 3),
        wal_receiver_timeout_seconds=60,
    )


def streaming(t: float) -> DbStatus:
    """The DR standby of a live primary: streaming, its receive position moving, heard just now."""
    return _standby(t, streaming=True, heard_ago=0.4)


def lost_main(since: float) -> Callable[[float], DbStatus]:
    """The DR standby after main died at `since`: no longer streaming, its position frozen."""
    return lambda t: _standby(since, streaming=False, heard_ago=t - since)


def round_results(
    region: str,
    started: float,
    *,
    main_up: bool,
    standby: DbStatus,
    round_id: str | None = None,
    received: float | None = None,
    control_up: bool = True,
) -> list[ProbeResult]:
    """One region's round: the self-check, main's checks, dr's checks."""
    common: dict[str, Any] = dict(
        service=SERVICE,
        region=region,
        round_id=round_id or f"sched-{int(started)}-{region}",
        probe_time=started,
        received_at=started + WRITE if received is None else received,
        abstaining=not control_up,
        latency_ms=40.0,
    )
    failed = {"vote": Vote.DOWN, "failure_class": FailureClass.CONNECT_TIMEOUT, "latency_ms": 5000.0}
    main = {} if main_up else failed
    primary = DbStatus(role=DbRole.PRIMARY, current_lsn=standby.receive_lsn)
    return [
        ProbeResult(
            site="_control",
            check="control-aws",
            check_type="tcp",
            **{**common, "vote": Vote.UP if control_up else Vote.DOWN},
        ),
        ProbeResult(
            site="main", check="https-health", check_type="http", **{**common, "vote": Vote.UP, **main}
        ),
        ProbeResult(site="main", check="tcp-443", check_type="tcp", **{**common, "vote": Vote.UP, **main}),
        ProbeResult(
            site="main",
            check="postgres",
            check_type="postgres",
            counts=False,
            db=primary if main_up else None,
            **{**common, "vote": Vote.UP, **main},
        ),
        ProbeResult(site="dr", check="https-health", check_type="http", vote=Vote.UP, **common),
        ProbeResult(
            site="dr",
            check="postgres",
            check_type="postgres",
            counts=False,
            vote=Vote.UP,
            db=standby,
            **common,
        ),
    ]


def recorded(
    rounds: int,
    *,
    main_up: Callable[[str, float], bool] = lambda region, t: True,
    standby: Callable[[float], DbStatus] = streaming,
    regions: Sequence[str] = REGIONS,
    interval: float = 30.0,
    start: float = T0,
) -> list[ProbeResult]:
    """`rounds` scheduled rounds per region, `interval` apart at each region's phase."""
    results: list[ProbeResult] = []
    for region, phase in zip(regions, PHASES, strict=False):
        for k in range(rounds):
            t = start + phase + k * interval
            results += round_results(region, t, main_up=main_up(region, t), standby=standby(t))
    return results


def main_down_from(
    at: float, regions: Iterable[str] = REGIONS, until: float = float("inf")
) -> Callable[[str, float], bool]:
    """Main unreachable from `regions` from `at` until `until`."""
    cut = set(regions)
    return lambda region, t: not (region in cut and at <= t < until)


def standby_losing_main_at(at: float) -> Callable[[float], DbStatus]:
    lost = lost_main(at)
    return lambda t: streaming(t) if t < at else lost(t)
