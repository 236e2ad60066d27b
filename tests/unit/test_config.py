"""The typed config: the example validates; each malformed case names its field and reason."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from quorum_dr.cli import main
from quorum_dr.config import ConfigError, load_config, parse_config


@pytest.fixture()
def example(example_config_path: Path) -> dict[str, Any]:
    return yaml.safe_load(example_config_path.read_text())


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


def test_example_config_validates(example_config_path: Path) -> None:
    config = load_config(example_config_path)
    assert config.quorum == 2
    assert config.service("booking").sites.cold is not None


def test_cli_prints_ok_and_exits_zero(example_config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "validate", str(example_config_path)]) == 0
    assert capsys.readouterr().out.startswith("OK")


def test_fewer_than_three_regions(example: dict[str, Any]) -> None:
    example["probe_regions"] = ["eu-west-2", "us-east-1"]
    assert "probe_regions: at least 3 probe regions are needed for a quorum, got 2" in problems_of(example)


@pytest.mark.parametrize(("regions", "quorum"), [(3, 1), (4, 2), (5, 2), (6, 3)])
def test_quorum_not_above_half(example: dict[str, Any], regions: int, quorum: int) -> None:
    example["probe_regions"] = [
        "eu-west-2",
        "us-east-1",
        "us-west-2",
        "eu-central-1",
        "ap-south-1",
        "sa-east-1",
    ][:regions]
    example["quorum"] = quorum
    [problem] = problems_of(example)
    assert problem.startswith("(top level): quorum must be more than half")


def test_quorum_above_region_count(example: dict[str, Any]) -> None:
    example["quorum"] = 4
    assert problems_of(example) == ["(top level): quorum 4 is more than the 3 probe regions"]


def test_duplicate_region(example: dict[str, Any]) -> None:
    example["probe_regions"] = ["eu-west-2", "us-east-1", "eu-west-2"]
    assert "probe_regions: duplicate probe region name 'eu-west-2'" in problems_of(example)


def test_duplicate_service(example: dict[str, Any]) -> None:
    example["services"].append(copy.deepcopy(example["services"][0]))
    assert problems_of(example) == ["services: duplicate service name 'booking'"]


def test_duplicate_check(example: dict[str, Any]) -> None:
    checks = example["services"][0]["sites"]["main"]["checks"]
    checks.append(copy.deepcopy(checks[0]))
    assert problems_of(example) == ["services.0.sites.main.checks: duplicate check name 'https-health'"]


def test_timeout_not_below_interval(example: dict[str, Any]) -> None:
    example["probe"]["timeout_seconds"] = 30
    assert problems_of(example) == [
        "probe: timeout_seconds (30) must be below interval_seconds (30)",
    ]


@pytest.mark.parametrize(
    ("roles", "problem"),
    [
        ([], "List should have at least 1 item after validation, not 0"),
        (["booking", "booking"], "duplicate app role name 'booking'"),
        (["pg_monitor"], "'pg_monitor' is reserved by PostgreSQL, not an application role"),
        (["PUBLIC"], "'PUBLIC' is reserved by PostgreSQL, not an application role"),
        (["x" * 64], f"{'x' * 64!r} is not a PostgreSQL role name (1 to 63 printable bytes)"),
        ([""], "'' is not a PostgreSQL role name (1 to 63 printable bytes)"),
    ],
)
def test_app_roles_are_role_names(example: dict[str, Any], roles: list[str], problem: str) -> None:
    example["services"][0]["database"]["app_roles"] = roles
    assert problems_of(example) == [f"services.0.database.app_roles: {problem}"]


def test_app_roles_default_to_app(example: dict[str, Any]) -> None:
    del example["services"][0]["database"]["app_roles"]
    database = parse_config(example).service("booking").database
    assert database is not None and database.app_roles == ["app"]


def test_a_site_may_name_its_agent(example: dict[str, Any]) -> None:
    example["services"][0]["sites"]["dr"]["agent"] = {
        "url": "https://198.51.100.20:8443",
        "signing_secret": "quorum-dr/booking/dr-agent-key",
    }
    sites = parse_config(example).service("booking").sites
    assert sites.main.agent is None
    assert sites.dr.agent is not None
    assert (str(sites.dr.agent.url), sites.dr.agent.signing_secret) == (
        "https://198.51.100.20:8443/",
        "quorum-dr/booking/dr-agent-key",
    )


def test_a_site_agent_needs_a_url_and_a_secret_and_nothing_else(example: dict[str, Any]) -> None:
    example["services"][0]["sites"]["main"]["agent"] = {"url": "not a url", "signing_secret": "", "key": "x"}
    problems = problems_of(example)
    assert [p.split(":")[0] for p in problems] == [
        "services.0.sites.main.agent.url",
        "services.0.sites.main.agent.signing_secret",
        "services.0.sites.main.agent.key",
    ]
    assert problems[-1] == "services.0.sites.main.agent.key: unknown field"


def test_unknown_field(example: dict[str, Any]) -> None:
    example["services"][0]["sites"]["main"]["chekcs"] = []
    assert problems_of(example) == ["services.0.sites.main.chekcs: unknown field"]


def test_unknown_field_inside_a_check(example: dict[str, Any]) -> None:
    example["services"][0]["sites"]["dr"]["checks"][0]["expect_stauts"] = [200]
    assert problems_of(example) == ["services.0.sites.dr.checks.0.expect_stauts: unknown field"]


@pytest.mark.parametrize("site", ["main", "dr"])
def test_missing_main_or_dr_site(example: dict[str, Any], site: str) -> None:
    del example["services"][0]["sites"][site]
    assert problems_of(example) == [f"services.0.sites.{site}: Field required"]


def test_every_error_is_reported(example: dict[str, Any]) -> None:
    example["quorum"] = "two"
    example["probe"]["interval_seconds"] = -1
    del example["services"][0]["sites"]["dr"]
    problems = problems_of(example)
    assert len(problems) == 3
    assert {p.split(":")[0] for p in problems} == {"quorum", "probe.interval_seconds", "services.0.sites.dr"}


def test_cli_prints_every_error_and_exits_two(
    example: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example["probe_regions"] = ["eu-west-2", "us-east-1"]
    example["services"][0]["sitez"] = {}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(example))
    assert main(["config", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "probe_regions: at least 3 probe regions are needed for a quorum, got 2" in err
    assert "services.0.sitez: unknown field" in err


def test_unreadable_and_non_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load_config(tmp_path / "nope.yaml")
    assert missing.value.problems[0].startswith("(file): cannot read")
    bad = tmp_path / "bad.yaml"
    bad.write_text("quorum: [unclosed\n")
    with pytest.raises(ConfigError) as broken:
        load_config(bad)
    assert broken.value.problems[0].startswith("(file): not valid YAML")


@pytest.mark.parametrize(
    ("window", "complaint"),
    [
        (0, "greater than 0"),
        (-5, "greater than 0"),
        (301, "less than or equal to 300"),
        (float("inf"), "finite number"),
        (float("nan"), "finite number"),
        ("soon", "valid number"),
    ],
)
def test_the_verify_window_is_finite_and_bounded(
    example: dict[str, Any], window: Any, complaint: str
) -> None:
    example["verify"] = {"window_seconds": window}
    [problem] = problems_of(example)
    assert problem.startswith("verify.window_seconds: ") and complaint in problem


def test_the_verify_window_defaults_to_30_seconds(example: dict[str, Any]) -> None:
    example.pop("verify", None)
    assert parse_config(example).verify.window_seconds == 30


def test_the_sync_check_defaults_and_a_dumped_config_loads_again(example: dict[str, Any]) -> None:
    del example["services"][0]["database"]["sync_check"]
    defaults = parse_config(copy.deepcopy(example)).service("booking").database
    assert defaults is not None
    assert (defaults.sync_check.tables, defaults.sync_check.app_schema) == (None, "public")
    assert (defaults.sync_check.max_table_bytes, defaults.sync_check.timeout_seconds) == (
        64 * 1024 * 1024,
        30,
    )

    example["services"][0]["database"]["sync_check"] = {
        "schema": "shop",
        "tables": ["shop.orders", "audit.log"],
    }
    config = parse_config(example)
    dumped = config.model_dump(mode="json")  # what the stacks bundle for the functions
    assert dumped["services"][0]["database"]["sync_check"]["schema"] == "shop"
    assert parse_config(dumped) == config


def test_an_unknown_key_that_is_blank_or_holds_a_control_character_is_shown_quoted_on_one_line() -> None:
    """Found by the fuzz test: a key "\\n\\n" made the problem two lines."""
    from quorum_dr.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config({"services": [{"cold_site": {"\n\n": 0, " ": 1}}]})
    lines = [p for p in caught.value.problems if "unknown field" in p]
    assert lines == [
        "services.0.cold_site.'\\n\\n': unknown field",
        "services.0.cold_site.' ': unknown field",
    ]


def test_the_rehearsal_defaults_and_a_malformed_value_names_its_field(example: dict[str, Any]) -> None:
    rehearsal = load_config_data(example).service("booking").cold_site.rehearsal  # type: ignore[union-attr]
    assert rehearsal.max_age_seconds == 8 * 86400 and rehearsal.row_tolerance == 0
    assert rehearsal.schedule_enabled
    bad = copy.deepcopy(example)
    bad["services"][0]["cold_site"]["rehearsal"] = {"schedule": "weekly", "row_tolerance": -1}
    problems = problems_of(bad)
    assert len(problems) == 2
    assert problems[0].startswith("services.0.cold_site.rehearsal.schedule: ")
    assert "'weekly' is not a schedule expression" in problems[0]
    assert problems[1].startswith("services.0.cold_site.rehearsal.row_tolerance: ")


def load_config_data(data: dict[str, Any]) -> Any:
    return parse_config(copy.deepcopy(data))
