"""Synthesize the example config once per session, offline, with skip_bundling and cdk-nag on."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


@dataclass
class Synth:
    deployment: Any
    outdir: Path
    templates: dict[str, dict[str, Any]]

    def template(self, stack: Any) -> dict[str, Any]:
        return self.templates[stack.stack_name]

    def resources(self, stack: Any, kind: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.template(stack)["Resources"].items() if r["Type"] == kind}


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory, example_config_path: Path) -> Synth:
    from aws_cdk import App

    from stacks.deployment import build

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(
        context={"config": str(example_config_path), "skip_bundling": True, "nag": True},
        outdir=str(outdir),
    )
    deployment = build(app)
    app.synth()  # raises ValidationFailed on any unacknowledged cdk-nag finding
    templates = {
        stack.stack_name: json.loads((outdir / f"{stack.artifact_id}.template.json").read_text())
        for stack in deployment.stacks
    }
    return Synth(deployment=deployment, outdir=outdir, templates=templates)
