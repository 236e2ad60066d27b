"""The probe round with injected check runners (no sockets): self-check, selection, deadlines, verdicts."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from quorum_dr.adapters.secrets import StaticSecrets
from quorum_dr.config import WatchdogConfig, parse_config
from quorum_dr.domain.results import CONTROL_SITE, FailureClass, Vote
from quorum_dr.probes.outcome import CheckOutcome
from quorum_dr.probes.round import run_round, site_round_verdicts

ROOT = Path(__file__).resolve().parents[2]
UP = CheckOutcome.up(1.0, "fine")


def config(**probe: Any) -> WatchdogConfig:
    """The example config, with checks whose names say what the fake runners answer."""
    data = yaml.safe_load((ROOT / "config" / "watchdog.example.yaml").read_text())
    data["probe"].update({"timeout_seconds": 0.2, **probe})
    data["probe"]["control_target"] = {
        "checks": [{"name": "control-a", "type": "tcp", "host": "control.test", "port": 443}]
    }
    return parse_config(data)


class Fake:
    """Runners by type; a check's outcome is chosen by `answers[check name]`, default UP."""

    def __init__(self, answers: dict[str, CheckOutcome] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple[str, float]] = []

    async def http(self, check: Any, *, timeout: float, secrets: Any) -> CheckOutcome:
        self.calls.append((check.name, timeout))
        return self.answers.get(check.name, UP)

    async def tcp(self, check: Any, *, timeout: float, secrets: Any) -> CheckOutcome:
        self.calls.append((check.name, timeout))
        return self.answers.get(check.name, UP)

    def postgres(self, check: Any, *, timeout: float, secrets: Any) -> CheckOutcome:  # blocking runner
        self.calls.append((check.name, timeout))
        credentials = secrets.get_json(check.credentials_secret)
        return CheckOutcome.up(2.0, f"connected as {credentials['username']}")

    def runners(self) -> dict[str, Any]:
        return {"http": self.http, "tcp": self.tcp, "postgres": self.postgres}


SECRETS = StaticSecrets({"quorum-dr/booking/db-monitor": {"username": "monitor", "password": "x"}})


def test_every_check_of_every_site_becomes_a_result_with_its_fields() -> None:
    fake = Fake()
    clock = iter(float(t) for t in range(1000, 2000))
    report = run_round(
        config(),
        region="eu-west-2",
        round_id="r1",
        secrets=SECRETS,
        runners=fake.runners(),
        clock=lambda: next(clock),
    )
    keys = {(r.site, r.check) for r in report.results}
    assert keys == {
        (CONTROL_SITE, "control-a"),
        ("main", "https-health"),
        ("main", "tcp-443"),
        ("main", "postgres"),
        ("dr", "https-health"),
        ("dr", "postgres"),
        ("cold", "https-health"),
    }
    pg = next(r for r in report.results if r.site == "main" and r.check == "postgres")
    assert pg.service == "booking" and pg.region == "eu-west-2" and pg.round_id == "r1"
    assert pg.check_type == "postgres"
    assert pg.counts is False  # vote: false in the example
    assert pg.detail == "connected as monitor"
    assert pg.probe_time >= 1000
    assert all(not r.abstaining for r in report.results)
    assert report.reason == "eu-west-2 votes: control target reachable (control-a)"


def test_control_target_down_makes_every_result_abstaining() -> None:
    down = CheckOutcome.down(FailureClass.CONNECT_TIMEOUT, 200.0, "no TCP connection to control.test:443")
    fake = Fake({"control-a": down, "https-health": CheckOutcome.down(FailureClass.TIMEOUT, 200, "slow")})
    report = run_round(config(), region="us-east-1", round_id="r2", secrets=SECRETS, runners=fake.runners())
    assert report.abstaining
    assert report.reason == (
        "us-east-1 abstains: its control target is unreachable "
        "(control-a: no TCP connection to control.test:443)"
    )
    assert report.results and all(r.abstaining for r in report.results)
    control = [r for r in report.results if r.site == CONTROL_SITE]
    assert [r.vote for r in control] == [Vote.DOWN]
    main = next(v for v in report.site_verdicts() if v.site == "main")
    assert main.abstaining and "not a vote: us-east-1 abstains" in main.reason


def test_one_reachable_control_check_is_enough_to_vote() -> None:
    data = config().model_dump(mode="json", exclude_none=True)
    data["probe"]["control_target"]["checks"].append(
        {"name": "control-b", "type": "tcp", "host": "other.test", "port": 443}
    )
    two = parse_config(data)
    fake = Fake({"control-a": CheckOutcome.down(FailureClass.DNS, 1, "cannot resolve control.test")})
    report = run_round(two, region="eu-west-2", round_id="r3", secrets=SECRETS, runners=fake.runners())
    assert not report.abstaining
    assert report.reason == "eu-west-2 votes: control target reachable (control-b)"


def test_sites_selection_and_per_check_timeout() -> None:
    fake = Fake()
    report = run_round(
        config(), region="eu-west-2", round_id="r4", sites=["dr"], secrets=SECRETS, runners=fake.runners()
    )
    assert {r.site for r in report.results} == {CONTROL_SITE, "dr"}
    assert {timeout for _, timeout in fake.calls} == {0.2}


def test_unknown_service_is_rejected() -> None:
    with pytest.raises(KeyError, match="no service named 'shop'"):
        run_round(
            config(),
            region="eu-west-2",
            round_id="r5",
            services=["shop"],
            secrets=SECRETS,
            runners=Fake().runners(),
        )


def test_a_hung_runner_is_cut_at_its_hard_deadline_and_the_rest_are_kept() -> None:
    release = threading.Event()
    fake = Fake()

    async def hung_http(check: Any, *, timeout: float, secrets: Any) -> CheckOutcome:
        if check.name == "https-health":
            await asyncio.sleep(3600)
        return UP

    def hung_postgres(check: Any, *, timeout: float, secrets: Any) -> CheckOutcome:
        release.wait(30)  # a blocking runner that ignores its timeout
        return UP

    runners = {**fake.runners(), "http": hung_http, "postgres": hung_postgres}
    try:
        report = run_round(config(), region="eu-west-2", round_id="r6", secrets=SECRETS, runners=runners)
    finally:
        release.set()
    by = {(r.site, r.check): r for r in report.results}
    assert by[("main", "https-health")].failure_class is FailureClass.TIMEOUT
    assert by[("main", "https-health")].detail == "https-health: no outcome within 0.2 s"
    assert by[("dr", "postgres")].failure_class is FailureClass.TIMEOUT
    assert by[("main", "tcp-443")].vote is Vote.UP


def test_a_crashing_runner_is_a_down_result_not_a_lost_round() -> None:
    def broken(check: Any, *, timeout: float, secrets: Any) -> CheckOutcome:
        raise RuntimeError("driver exploded")

    report = run_round(
        config(),
        region="eu-west-2",
        round_id="r7",
        secrets=SECRETS,
        runners={**Fake().runners(), "postgres": broken},
    )
    pg = next(r for r in report.results if r.site == "main" and r.check == "postgres")
    assert pg.failure_class is FailureClass.DB_ERROR
    assert pg.detail == "postgres: the probe failed: RuntimeError: driver exploded"


def test_missing_secret_is_a_db_error_naming_the_secret_not_a_value() -> None:
    report = run_round(
        config(),
        region="eu-west-2",
        round_id="r8",
        secrets=StaticSecrets({}),
        runners={"http": Fake().http, "tcp": Fake().tcp},  # postgres: the real runner, lazily imported
    )
    pg = next(r for r in report.results if r.site == "main" and r.check == "postgres")
    assert pg.vote is Vote.DOWN
    assert pg.failure_class is FailureClass.DB_ERROR
    assert pg.detail == "cannot read the credentials secret 'quorum-dr/booking/db-monitor' (SecretNotFound)"


def test_concurrency_is_bounded() -> None:
    running = 0
    peak = 0

    async def counting(check: Any, *, timeout: float, secrets: Any) -> CheckOutcome:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return UP

    run_round(
        config(max_concurrency=2),
        region="eu-west-2",
        round_id="r9",
        secrets=SECRETS,
        runners={"http": counting, "tcp": counting, "postgres": counting},
    )
    assert peak == 2


def test_site_verdict_down_when_any_voting_check_fails_and_informational_failures_do_not_count() -> None:
    fake = Fake(
        {
            "tcp-443": CheckOutcome.down(
                FailureClass.CONNECT_REFUSED, 1, "connection to 203.0.113.10:443 refused"
            ),
        }
    )

    def pg_down(check: Any, *, timeout: float, secrets: Any) -> CheckOutcome:
        return CheckOutcome.down(FailureClass.DB_ERROR, 1, "database unreachable")

    report = run_round(
        config(),
        region="us-west-2",
        round_id="r10",
        secrets=SECRETS,
        runners={**fake.runners(), "postgres": pg_down},
    )
    verdicts = {v.site: v for v in site_round_verdicts(report.results)}
    assert verdicts["main"].vote is Vote.DOWN
    assert verdicts["main"].reason == (
        "main is DOWN from us-west-2: tcp-443 failed (connection to 203.0.113.10:443 refused)"
    )
    assert verdicts["dr"].vote is Vote.UP  # its postgres check failed but does not vote
    assert verdicts["dr"].reason == "dr is UP from us-west-2: all 1 voting check(s) passed"
    assert CONTROL_SITE not in verdicts
    assert report.as_dict()["verdicts"][0]["service"] == "booking"


def test_the_round_does_not_wait_for_a_hung_resolver_thread() -> None:
    """A check stuck in the loop's default executor (as getaddrinfo is) must not hold the round."""
    release = threading.Event()
    finished: list[bool] = []

    def stuck_resolver() -> None:
        release.wait(10)
        finished.append(True)

    async def resolving(check: Any, *, timeout: float, secrets: Any) -> CheckOutcome:
        await asyncio.get_running_loop().run_in_executor(None, stuck_resolver)
        return UP

    try:
        report = run_round(
            config(),
            region="eu-west-2",
            round_id="r11",
            secrets=SECRETS,
            runners={**Fake().runners(), "http": resolving},
        )
        assert finished == [], "run_round returned only after the stuck thread ended"
    finally:
        release.set()
    assert {r.failure_class for r in report.results if r.check_type == "http"} == {FailureClass.TIMEOUT}
