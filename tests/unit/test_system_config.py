"""The local system's config builder: what the drill writes for the functions is what it runs with."""

from __future__ import annotations

import pytest

from quorum_dr.config import parse_config
from quorum_dr_local.drill.config import configures_cold_site, drill_config
from quorum_dr_local.drill.layout import Layout
from quorum_dr_local.drill.scenario import load_scenario, shipped_scenarios
from quorum_dr_local.system_config import config_json


def _layout() -> Layout:
    sites = {"main": "10.213.7.2", "dr": "10.213.7.3", "cold": "10.213.7.4"}
    regions = {"eu-west-2": "10.213.7.11", "us-east-1": "10.213.7.12", "us-west-2": "10.213.7.13"}
    layout = Layout(True, "10.213.7.1", sites, regions)
    layout.app_ports = {"main": 41001, "dr": 41002, "cold": 41003}
    layout.db_ports = {"main": 42001, "dr": 42002, "cold": 42003}
    layout.agent_ports = {"main": 44001, "dr": 44002}
    layout.aws_port, layout.edge_port, layout.emulator_port = 43001, 43002, 43003
    return layout


@pytest.mark.parametrize("name", shipped_scenarios())
def test_the_file_the_functions_load_is_the_config_the_drill_runs_with(name: str) -> None:
    scenario = load_scenario(name)
    config = drill_config(scenario, _layout(), cold_ami="ami-12345678")
    assert parse_config(config_json(config), name) == config
    service = config.service("booking")
    assert (service.sites.cold is not None) == configures_cold_site(scenario)
    assert service.sites.main.origin == "10.213.7.2:41001"
    assert [c.port for c in config.probe.control_target.checks if c.type == "tcp"] == [43001]
