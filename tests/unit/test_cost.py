"""The cost model (`quorum_dr/domain/cost.py`, `drctl cost`): its arithmetic on a tiny deployment
against figures worked out by hand, the shipped price table (every price sourced and dated, a
missing one said, never guessed), and the command's answers to bad input."""

from __future__ import annotations

import argparse
import json
import math
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from quorum_dr.cli import cost_cmd
from quorum_dr.config import WatchdogConfig, load_config, parse_config
from quorum_dr.domain.cost import (
    PROBE_METRICS,
    READINESS_HANDLER_METRICS,
    REQUIRED_PRICES,
    REQUIRED_USAGE,
    Cadence,
    CostLine,
    PriceTable,
    ProbeDesign,
    UsageTable,
    cost_lines,
    cost_report,
    probe_month,
    readiness_checks,
    readiness_lookback_seconds,
    readiness_metrics,
    route53,
    secret_copies,
    total_with_free_tier,
)
from quorum_dr.pricing import PricingError, load_prices, load_usage
from tests.conftest import ROOT

HOME, REGIONS = "eu-west-2", ["eu-west-2", "us-east-1", "us-west-2"]
MONTH_MINUTES = 730 * 60  # 43,800: one invocation a minute


def tiny_config(**probe: Any) -> WatchdogConfig:
    """Three regions, one service, main and DR with one TCP check each, the control target one."""
    tcp = {"type": "tcp", "host": "192.0.2.1", "port": 443}
    site = {"origin": "192.0.2.1", "checks": [{**tcp, "name": "tcp"}]}
    return parse_config(
        {
            "home_region": HOME,
            "probe_regions": REGIONS,
            "quorum": 2,
            "probe": {
                "interval_seconds": 30,
                "timeout_seconds": 5,
                "control_target": {"checks": [{**tcp, "name": "control"}]},
                **probe,
            },
            "services": [
                {
                    "name": "shop",
                    "public_hostname": "shop.example",
                    "sites": {
                        "main": {**site, "label": "A", "marker": "main"},
                        "dr": {**site, "label": "B", "marker": "dr"},
                    },
                    "edge": {
                        "zone_id": "z",
                        "api_token_secret": "cf-token",
                        "records": [{"name": "shop.example"}],
                    },
                }
            ],
        }
    )


def tiny_prices(**amounts: float | None) -> PriceTable:
    """Every price $1 per unit unless named, sourced and dated."""
    entry = {"service": "S", "item": "i", "unit": "u", "region": "r", "source": "https://example.com/p"}
    prices = {
        key: {**entry, "amount": amounts.get(key, 1.0), "as_of": "2026-12-01", "note": "n"}
        for key in REQUIRED_PRICES
    }
    return PriceTable.model_validate({"currency": "USD", "month_hours": 730, "prices": prices})


def tiny_usage(**values: float) -> UsageTable:
    base = {key: 0.0 for key in REQUIRED_USAGE}
    base.update(
        probe_round_local_seconds=0.3,
        wan_checks_seconds=0.5,
        wan_store_seconds=0.2,  # a round: 0.3 + 0.5 + 0.2 = 1.0 s
        probe_round_cold_down_local_seconds=5.127,
        probe_round_cold_down_timeout_seconds=5,
        item_bytes_tcp=500,
        item_bytes_http=700,
        item_bytes_postgres=1100,
        log_bytes_per_invocation=100,
        log_bytes_per_round=1000,
        platform_log_bytes_per_invocation=400,
        probe_secret_cache_seconds=300,
        **values,
    )
    figures = {k: {"value": v, "unit": "u", "basis": "assumption", "source": "test"} for k, v in base.items()}
    return UsageTable.model_validate({"measured_on": "2026-12-01", "figures": figures})


def line(lines: list[CostLine], region: str, item: str) -> CostLine:
    (found,) = [x for x in lines if x.region == region and x.item == item]
    return found


# -- the arithmetic, by hand -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "rate_minutes", "rounds", "spacing", "queued", "period"),
    [
        (5, 1, 12, 5.0, True, 5.0),
        (20, 1, 3, 20.0, True, 20.0),
        (30, 1, 2, 30.0, True, 30.0),
        (45, 1, 2, 45.0, True, 30.0),  # a minute's schedule: the second round, then the next minute's
        (59, 1, 2, 59.0, True, 30.0),
        (60, 1, 1, 0.0, False, 60.0),
        (90, 2, 1, 0.0, False, 120.0),  # rounded to whole minutes (Scheduler's finest rate)
        (120, 2, 1, 0.0, False, 120.0),
        (3600, 60, 1, 0.0, False, 3600.0),
    ],
)
def test_the_cadence_the_model_bills_and_the_stack_deploys(
    interval: float, rate_minutes: int, rounds: int, spacing: float, queued: bool, period: float
) -> None:
    """One rule for both (stacks/probe_schedule.py's ProbeCadence is this class)."""
    cadence = Cadence.of(interval)
    assert (cadence.rate_minutes, cadence.rounds, cadence.spacing_seconds) == (rate_minutes, rounds, spacing)
    assert cadence.queued is queued and cadence.round_period_seconds == pytest.approx(period)


def test_as_deployed_a_30_second_interval_is_two_invocations_a_minute_one_of_them_queued() -> None:
    config, usage = tiny_config(), tiny_usage()

    month = probe_month(config, "us-east-1", usage, ProbeDesign(), MONTH_MINUTES)

    assert month.cadence == Cadence(rate_minutes=1, rounds=2, spacing_seconds=30.0)
    assert month.invocations == 87_600 and month.rounds == 87_600
    # the schedule fires once a minute; the minute's second round comes through the round queue
    assert month.scheduled_invocations == 43_800 and month.queued_rounds == 43_800
    assert month.round_seconds == pytest.approx(1.0)
    assert month.billed_seconds == pytest.approx(1.0) and month.wait_seconds == 0


def test_before_a_30_second_interval_was_two_rounds_in_one_invocation_a_minute_and_the_wait_billed() -> None:
    config, usage = tiny_config(), tiny_usage()

    month = probe_month(config, "us-east-1", usage, ProbeDesign(wait_between_rounds=True), MONTH_MINUTES)

    assert month.invocations == 43_800 and month.rounds == 87_600
    assert month.scheduled_invocations == 43_800 and month.queued_rounds == 0
    # the first round starts at 0 s, the second at 30 s and lasts 1 s: 31 s billed, 29 s of it waiting
    assert month.billed_seconds == pytest.approx(31.0)
    assert month.wait_seconds == pytest.approx(29.0)


def test_a_60_second_interval_queues_nothing() -> None:
    config = parse_config(
        {**tiny_config().model_dump(mode="json", by_alias=True, exclude_none=True)}
        | {
            "probe": {
                **tiny_config().probe.model_dump(mode="json", exclude_none=True),
                "interval_seconds": 60,
            }
        }
    )
    lines = cost_lines(config, tiny_prices(), tiny_usage(round_queue_idle_receives_per_minute=15))
    assert not [x for x in lines if x.price_key == "sqs_requests"]
    assert line(lines, "us-east-1", "schedule invocations").quantity == 43_800
    assert line(lines, "us-east-1", "probe function requests").quantity == 43_800


def test_the_probe_lines_of_a_tiny_deployment_match_the_figures_worked_out_by_hand() -> None:
    prices = tiny_prices(lambda_duration_arm64=0.00001, dynamodb_write_request_units=1.0)
    prices.prices["dynamodb_write_request_units"] = prices["dynamodb_write_request_units"].model_copy(
        update={"per": 1_000_000}
    )

    usage = tiny_usage(round_queue_idle_receives_per_minute=15, log_bytes_round_queue_per_invocation=440)
    lines = cost_lines(tiny_config(), prices, usage)

    duration = line(lines, "us-east-1", "probe function duration")
    # 87,600 invocations (one a round) x 1 s x 0.25 GB (256 MB) = 21,900 GB-s, at $0.00001
    assert duration.quantity == pytest.approx(21_900)
    assert duration.monthly == pytest.approx(0.219)
    # the trigger: the schedule once a minute, the minute's second round through the round queue
    assert line(lines, "us-east-1", "schedule invocations").quantity == 43_800
    # 43,800 queued rounds: SendMessage, the mapping's ReceiveMessage and DeleteMessage
    assert line(lines, "us-east-1", "round queue: the queued rounds").quantity == 43_800 * 3
    # the mapping's empty long polls: 15 a minute (the usage figure), 43,800 minutes
    polling = line(lines, "us-east-1", "round queue: the mapping's polling")
    assert polling.quantity == 43_800 * 15 and polling.price_key == "sqs_requests"
    writes = line(lines, "us-east-1", "results written (home table)")
    # 3 results a round (control, main, DR) of 500 bytes: 3 WRU; 87,600 rounds; $1 per million
    assert writes.quantity == pytest.approx(262_800)
    assert writes.monthly == pytest.approx(0.2628)
    reads = line(lines, "us-east-1", "recent results read (home table)")
    # the look-back is max(90, 3 x 30) = 90 s: 3 rounds x 3 regions x 1,500 bytes = 13,500 bytes,
    # 4 x 4 KB, eventually consistent: 2 RRU a round; plus a 0.5 RRU clock query an invocation
    assert reads.quantity == pytest.approx(87_600 * 2 + 87_600 * 0.5)
    transfer = line(lines, "us-east-1", "results to and from the home region")
    # 1,500 bytes written and 13,500 read a round, 87,600 rounds
    assert transfer.quantity == pytest.approx(87_600 * 15_000 / 2**30)
    assert not [x for x in lines if x.region == HOME and x.item == "results to and from the home region"]
    logs = line(lines, "us-east-1", "probe log lines")
    # 100 + 1 round x 1,000 + 400 + the queue's sentence 440 = 1,940 bytes an invocation, 87,600 of them
    assert logs.quantity == pytest.approx(87_600 * 1_940 / 2**30)
    assert line(lines, "us-east-1", "probe metrics").quantity == len(PROBE_METRICS) == 4


def test_one_round_per_invocation_bills_the_rounds_and_not_the_wait() -> None:
    lines = cost_lines(tiny_config(), tiny_prices(), tiny_usage(), ProbeDesign(wait_between_rounds=False))

    duration = line(lines, "us-west-2", "probe function duration")
    # 87,600 invocations x 1 s x 0.25 GB (256 MB)
    assert duration.quantity == pytest.approx(21_900)
    assert line(lines, "us-west-2", "probe function requests").quantity == 87_600


def test_a_cold_site_that_is_not_launched_holds_every_round_for_its_timeout() -> None:
    config = tiny_config()
    cold = {"label": "C", "marker": "cold", "origin": "192.0.2.9"}
    cold["checks"] = [{"name": "h", "type": "http", "url": "https://192.0.2.9/health", "timeout_seconds": 4}]
    data = config.model_dump(mode="json")
    data["services"][0]["sites"]["cold"] = cold
    data["services"][0]["cold_site"] = {"region": "us-west-2", "ami_id": "ami-1", "backup_bucket": "bkt"}
    with_cold = parse_config(data)
    usage = tiny_usage()

    waiting = probe_month(
        with_cold, "us-east-1", usage, ProbeDesign(cold_checked_while_idle=True), MONTH_MINUTES
    )
    skipped = probe_month(with_cold, "us-east-1", usage, ProbeDesign(), MONTH_MINUTES)  # as deployed

    # the cold check's 4 s timeout plus what the measured round spent around its wait (0.127 s),
    # then the store: 4.127 + 0.2
    assert waiting.round_seconds == pytest.approx(4.327)
    assert waiting.items_per_round == 4 and skipped.items_per_round == 3
    assert waiting.cold_events == pytest.approx(87_600 / 10)  # ProbeFailed every retrigger_rounds
    assert skipped.round_seconds == pytest.approx(1.0) and skipped.cold_events == 0


def test_the_total_is_the_sum_of_the_lines_and_the_free_tier_comes_off_once_per_price() -> None:
    prices = tiny_prices()
    prices.prices["lambda_requests"] = prices["lambda_requests"].model_copy(
        update={"free_per_month": 100_000}
    )

    report = cost_report(tiny_config(), prices, tiny_usage())

    assert report.total == pytest.approx(sum(x.monthly or 0.0 for x in report.lines))
    requests = sum(x.quantity for x in report.lines if x.price_key == "lambda_requests")
    # three probe regions, one a round (two a minute); the readiness function, one every 5 minutes;
    # no executions
    assert requests == pytest.approx(3 * 87_600 + 8_760)
    assert report.total - report.total_with_free_tier == pytest.approx(100_000)
    assert total_with_free_tier(report.lines, prices) == report.total_with_free_tier


def two_services() -> WatchdogConfig:
    """The tiny deployment with a second service like the first, its own Cloudflare token."""
    data = tiny_config().model_dump(mode="json", by_alias=True, exclude_none=True)
    second = {**data["services"][0], "name": "cart", "public_hostname": "cart.example"}
    second["edge"] = {
        **second["edge"],
        "api_token_secret": "cf-token-cart",
        "records": [{"name": "cart.example"}],
    }
    data["services"].append(second)
    return parse_config(data)


WATCH = {"state_item_bytes": 300, "standby_record_bytes": 600, "wan_standby_watch_seconds": 0.25}


@pytest.mark.parametrize("services", [1, 2])
def test_the_standby_watch_reads_the_state_twice_a_round_for_each_service_in_every_region(
    services: int,
) -> None:
    config = tiny_config() if services == 1 else two_services()
    usage = tiny_usage(**WATCH)

    lines = cost_lines(config, tiny_prices(), usage)

    for region in REGIONS:
        reads = line(lines, region, "standby watch reads (state table)")
        # 87,600 rounds x each service x 2 strongly consistent GetItems of items under 4 KB: 1 RRU each
        assert reads.quantity == pytest.approx(87_600 * services * 2)
        assert reads.unit == "read request units" and "DR-down alert" in reads.driver
        assert "UpdateItem" in reads.driver and "not counted" in reads.driver
    for region in ("us-east-1", "us-west-2"):
        transfer = line(lines, region, "standby watch reads across regions")
        # the state item (300 bytes) and the standby record (600) from the home region, each round
        assert transfer.quantity == pytest.approx(87_600 * services * 900 / 2**30)
        assert transfer.price_key == "data_transfer_inter_region"
    assert not [x for x in lines if x.region == HOME and x.item == "standby watch reads across regions"]
    # a round: 0.3 + 0.5 + 0.2, then each service's two reads one after the other (0.25 s)
    month = probe_month(config, "us-west-2", usage, ProbeDesign(), MONTH_MINUTES)
    assert month.round_seconds == pytest.approx(1.0 + 0.25 * services)


def test_a_standby_item_over_4_kb_costs_a_read_unit_per_4_kb() -> None:
    lines = cost_lines(tiny_config(), tiny_prices(), tiny_usage(standby_record_bytes=5000))

    assert line(lines, HOME, "standby watch reads (state table)").quantity == pytest.approx(87_600 * 3)


READINESS = {
    "readiness_local_seconds": 0.5,
    "readiness_wan_seconds": 1.5,
    "readiness_item_bytes": 1283,
    "readiness_log_bytes_per_invocation": 2000,
    "state_item_bytes": 300,
}


@pytest.mark.parametrize("services", [1, 2])
def test_the_readiness_function_is_priced_from_what_it_does_every_5_minutes(services: int) -> None:
    config = tiny_config() if services == 1 else two_services()

    lines = cost_lines(config, tiny_prices(), tiny_usage(**READINESS))

    def quantity(item: str) -> float:
        (found,) = [x for x in lines if x.scope == "readiness" and x.item == item]
        assert found.region == HOME
        return found.quantity

    invocations = 730 * 60 / 5  # 8,760
    assert (
        quantity("readiness function requests") == quantity("readiness schedule invocations") == invocations
    )
    # each service one after the other: (0.5 + 1.5) s each, at 256 MB
    assert quantity("readiness function duration") == pytest.approx(invocations * services * 2.0 * 0.25)
    # each service: the clock query (0.5); every region's last 600 s of results: 20 rounds x 3
    # regions x 3 results of 500 bytes = 90,000 bytes, 22 x 4 KB eventually consistent = 11; the
    # state, the lock and the previous readiness, 1 each
    assert quantity("readiness reads (state, results)") == pytest.approx(invocations * services * 14.5)
    # the readiness item of 1,283 bytes: 2 WRU a service
    assert quantity("readiness records written") == pytest.approx(invocations * services * 2)
    # each service: GetSecretValue of its token, DescribeSecret of its one copy (TCP checks: no
    # probe secret)
    assert quantity("readiness secret calls") == pytest.approx(invocations * services * 2)
    assert quantity("decrypts of the token reads") == pytest.approx(invocations * services)
    # probe_regions, service_state, edge, cloudflare_token, secrets (no database, no cold site),
    # and overall, per service; ReadinessEvaluations once
    assert quantity("readiness metrics") == services * 6 + 1 == readiness_metrics(config)
    assert quantity("readiness log lines") == pytest.approx(invocations * (services * 2000 + 400) / 2**30)
    assert quantity("readiness traces") == invocations


def test_the_readiness_checks_are_the_ones_assess_judges_for_the_config(example: WatchdogConfig) -> None:
    booking = example.services[0]

    assert readiness_checks(example, booking) == [
        "standby",
        "probe_regions",
        "service_state",
        "edge",
        "cloudflare_token",
        "cold_site",
        "secrets",
    ]
    data = example.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["services"][0]["cold_site"]["wal_archive"] = {
        "server": "booking",
        "kms_key_arn": "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    }
    data["services"][0]["file_sync"] = {"url": "https://198.51.100.20/.sync-marker"}
    more = parse_config(data)
    assert readiness_checks(more, more.services[0]) == [
        "standby",
        "probe_regions",
        "service_state",
        "edge",
        "cloudflare_token",
        "cold_site",
        "base_backup",
        "wal_archive",
        "backup_encryption",
        "secrets",
        "file_sync",
    ]
    assert readiness_metrics(more) == 11 + 1 + 1


@pytest.mark.parametrize("interval", [5, 30, 60, 120])
def test_the_readiness_look_back_is_the_gatherer_s(interval: int) -> None:
    from quorum_dr.adapters.readiness import lookback_seconds

    config = tiny_config(interval_seconds=interval, timeout_seconds=min(5, interval - 1))

    assert readiness_lookback_seconds(config) == lookback_seconds(config)


# -- the example deployment, with the shipped tables -----------------------------------------------


@pytest.fixture(scope="module")
def example() -> WatchdogConfig:
    return load_config(ROOT / "config" / "watchdog.example.yaml")


def test_route53_beside_the_example_is_one_check_per_site_with_the_features_priced_per_check(
    example: WatchdogConfig,
) -> None:
    prices = load_prices()

    fast, standard = route53(example, prices, 10), route53(example, prices, 30)

    # main and DR outside AWS: $0.75 + 3 features x $2.00; the cold site in AWS: $0.50 + 3 x $1.00
    assert fast.total == pytest.approx(2 * (0.75 + 3 * 2.00) + (0.50 + 3 * 1.00)) == pytest.approx(17.00)
    assert standard.total == pytest.approx(2 * (0.75 + 2 * 2.00) + (0.50 + 2 * 1.00)) == pytest.approx(12.00)


def test_secrets_are_counted_in_every_region_that_needs_a_copy(example: WatchdogConfig) -> None:
    from stacks.secret_access import secrets_by_function

    copies = secret_copies(example)

    assert copies == {
        "eu-west-2": {
            "quorum-dr/booking/db-monitor",
            "quorum-dr/cloudflare-token",
            "quorum-dr/booking/db-admin",
            "quorum-dr/webhook-key",
            "quorum-dr/booking/fence-main-hook-key",
            "quorum-dr/booking/stop-file-sync-hook-key",
        },
        "us-east-1": {"quorum-dr/booking/db-monitor"},
        "us-west-2": {"quorum-dr/booking/db-monitor", "quorum-dr/backup-manifest-key"},
    }
    granted = {name for names in secrets_by_function(example).values() for name in names}
    assert copies[example.home_region] == granted, "the functions' grants (stacks/secret_access.py)"


def test_every_priced_line_has_a_price_with_its_source_and_as_of_date(example: WatchdogConfig) -> None:
    prices, usage = load_prices(), load_usage()

    report = cost_report(example, prices, usage)
    lines = report.lines + [x for c in report.comparisons for x in c.lines]

    assert {x.price_key for x in lines} <= REQUIRED_PRICES
    for priced in lines:
        price = prices[priced.price_key]
        assert price.source.startswith("https://") and isinstance(price.as_of, date), priced.price_key
        assert (priced.monthly is None) == (price.amount is None)
        row = priced.as_dict(prices)
        assert row["source"] == price.source and row["as_of"] == price.as_of.isoformat()
    unpriced = sorted({x.price_key for x in report.lines if x.monthly is None})
    assert unpriced == ["dynamodb_point_in_time_recovery"]
    assert any(note.startswith("no price found") and unpriced[0] in note for note in report.notes)
    assert report.comparisons[2].total is None, "Cloudflare's prices were not found: said, not guessed"


def test_the_shipped_price_table_says_where_each_figure_was_read_and_why_one_is_missing() -> None:
    prices = load_prices()

    assert set(prices.prices) == REQUIRED_PRICES
    for key, price in prices.prices.items():
        if price.amount is None:
            assert "not found" in price.note, key
        elif not price.evidence:
            raise AssertionError(f"{key}: where was ${price.amount} read?")


def test_the_usage_figures_say_whether_they_are_measured_and_match_the_code() -> None:
    usage = load_usage()
    handler = (ROOT / "lambdas" / "probe" / "handler.py").read_text(encoding="utf-8")

    assert set(usage.figures) == REQUIRED_USAGE
    max_age = re.search(r"^SECRETS_MAX_AGE_SECONDS = (\d+)", handler, flags=re.MULTILINE)
    assert max_age and usage["probe_secret_cache_seconds"] == int(max_age.group(1))
    record = handler[handler.index("def _record") :]
    assert set(re.findall(r'add_metric\(\s*name="(\w+)"', record)) == set(PROBE_METRICS)
    readiness = (ROOT / "lambdas" / "readiness" / "handler.py").read_text(encoding="utf-8")
    assert set(re.findall(r'add_metric\(\s*name="(\w+)"', readiness)) == set(READINESS_HANDLER_METRICS)
    measured = {k for k, f in usage.figures.items() if f.basis == "measured"}
    assert {"probe_round_local_seconds", "item_bytes_postgres", "transitions_false_alarm"} <= measured


def test_the_example_costs_what_the_model_says_and_its_drivers_are_named(example: WatchdogConfig) -> None:
    report = cost_report(example, load_prices(), load_usage())

    duration = [x for x in report.lines if x.item == "probe function duration"]
    assert len(duration) == 3 and all("from the round queue" in x.driver for x in duration)
    assert not any("waiting" in x.driver for x in duration)
    levers = {lever.name: lever for lever in report.levers}
    as_deployed = report.levers[0]
    before = levers["before: the minute's rounds in one invocation"]
    assert as_deployed.name == "as deployed" and as_deployed.total == pytest.approx(report.total)
    # the cold site left out of scheduled rounds while not launched is as deployed: the old design costs more
    (cold_before,) = [lever for lever in report.levers if lever.name.endswith("(before)")]
    assert cold_before.design.cold_checked_while_idle and not as_deployed.design.cold_checked_while_idle
    assert cold_before.total > as_deployed.total and cold_before.probe_lambda > as_deployed.probe_lambda
    everything = levers["before issue 14: all three"]
    assert everything.total > max(before.total, cold_before.total)
    assert math.isclose(as_deployed.probe_lambda, sum(x.monthly or 0.0 for x in duration))
    # The design change: the queue's requests cost far less than the wait they replace.
    queue = sum(x.monthly or 0.0 for x in report.lines if x.price_key == "sqs_requests")
    assert 0 < queue < (before.probe_lambda - as_deployed.probe_lambda) / 10
    assert as_deployed.total < before.total
    before_lines = cost_lines(example, load_prices(), load_usage(), ProbeDesign(wait_between_rounds=True))
    assert not [x for x in before_lines if x.price_key == "sqs_requests"]
    assert all(
        "waiting between them" in x.driver for x in before_lines if x.item == "probe function duration"
    )


def test_the_probing_alone_is_the_probe_lines_and_the_probes_own_secret_copies(
    example: WatchdogConfig,
) -> None:
    # The like-for-like figure beside the health checks: what probing costs, no control plane.
    prices = load_prices()
    report = cost_report(example, prices, load_usage())
    probe_lines = sum(x.monthly or 0.0 for x in report.lines if x.scope == "probe")
    storage = sum(x.monthly or 0.0 for x in report.lines if x.item == "results table")
    reads = sum(
        x.monthly or 0.0 for x in report.lines if x.item in ("probe secret reads", "decrypts of those reads")
    )
    # the example's probe reads one secret (its PostgreSQL checks' credentials), kept in each of 3 regions
    copies = 3 * (prices["secrets_manager_secrets"].amount or 0.0)

    assert reads > 0 and storage > 0 and copies > 0
    assert report.probing_total == pytest.approx(probe_lines + storage + reads + copies)
    control = [x for x in report.lines if x.item in ("dashboard", "readiness metrics", "alert topic key")]
    assert len(control) == 3 and report.probing_total < report.monitoring_total - sum(
        x.monthly or 0 for x in control
    )


# -- bad input ---------------------------------------------------------------------------------------


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    cost_cmd.register(parser.add_subparsers())
    code = cost_cmd.run_cost(parser.parse_args(["cost", *argv]))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_missing_config_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["--config", str(tmp_path / "absent.yaml")], capsys)

    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and "absent.yaml" in err


def test_an_unknown_service_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        ["--config", str(ROOT / "config" / "watchdog.example.yaml"), "--service", "shop"], capsys
    )

    assert code == 2 and out == ""
    assert err.splitlines() == ["drctl cost: --service: no service named 'shop'; configured: ['booking']"]


def test_a_price_table_with_an_unknown_service_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = yaml.safe_load((ROOT / "quorum_dr" / "pricing" / "prices.yaml").read_text())
    table["prices"]["amazon_rds_instances"] = dict(table["prices"]["kms_keys"])
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(table))

    code, out, err = run(
        ["--config", str(ROOT / "config" / "watchdog.example.yaml"), "--prices", str(path)], capsys
    )

    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert "unknown price 'amazon_rds_instances'" in err and str(path) in err


def test_a_price_without_its_source_is_refused() -> None:
    table = yaml.safe_load((ROOT / "quorum_dr" / "pricing" / "prices.yaml").read_text())
    del table["prices"]["lambda_requests"]["source"]

    with pytest.raises(Exception, match="source"):
        PriceTable.model_validate(table)


def test_a_price_file_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(PricingError) as raised:
        load_prices(tmp_path / "nope.yaml")

    assert "\n" not in str(raised.value) and "nope.yaml" in str(raised.value)


def test_json_output_lists_every_line_with_its_source_and_adds_up(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--config", str(ROOT / "config" / "watchdog.example.yaml"), "--json"], capsys)

    answer = json.loads(out)
    assert code == 0
    assert answer["total_usd"] == pytest.approx(sum(x["monthly_usd"] or 0 for x in answer["lines"]), abs=1e-3)
    assert all(x["source"].startswith("https://") and x["as_of"] for x in answer["lines"])
    assert [c["name"] for c in answer["comparisons"]] == [
        "Route 53 health checks, 10 s",
        "Route 53 health checks, 30 s",
        "Cloudflare Load Balancing",
    ]
    assert answer["comparisons"][2]["total_usd"] is None


def test_the_table_prints_each_line_the_totals_and_the_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--config", str(ROOT / "config" / "watchdog.example.yaml")], capsys)

    assert code == 0
    assert "probe function duration" in out and "$0.0000133334 / GB-seconds" in out
    assert re.search(r"^  Total\s+\$\d+\.\d\d$", out, flags=re.MULTILINE)
    assert "Route 53 health checks, 10 s" in out and "$17.00" in out
    assert "Cloudflare Load Balancing" in out and "not found" in out
    assert "What drives the cost" in out and "before: the minute's rounds in one invocation" in out
    assert "round queue: the mapping's polling" in out and "$0.40 / 1M requests" in out
