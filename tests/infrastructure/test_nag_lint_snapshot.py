"""cdk-nag (zero unacknowledged findings), cfn-lint (zero errors, ASL included), and a snapshot
of the control stack template."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file

from stacks.nag import ACKNOWLEDGEMENTS

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"


def test_cdk_nag_finds_nothing_unacknowledged(synth) -> None:
    # The synthesis itself fails with ValidationFailed on any finding; the report says so too.
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    violations = [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])]
    assert violations == []
    assert report["pluginReports"] == []


def test_cdk_nag_is_live_an_unacknowledged_finding_fails_synth(tmp_path: Path) -> None:
    from aws_cdk import App, Stack
    from aws_cdk import aws_sns as sns

    from stacks.nag import enable_checks

    app = App(outdir=str(tmp_path))
    sns.Topic(Stack(app, "Unencrypted"), "Topic")
    enable_checks(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert "AwsSolutions-SNS3" in rules  # the topic does not enforce SSL


def test_every_acknowledgement_names_a_finding_and_a_reason(synth) -> None:
    assert ACKNOWLEDGEMENTS, "the app acknowledges its findings through stacks.nag.acknowledge"
    for ack in ACKNOWLEDGEMENTS:
        assert re.fullmatch(r"AwsSolutions-[A-Z]+\d+(\[.+\])?", ack.finding), ack
        assert len(ack.reason) > 40, ack
        # No stack-wide acknowledgement: each sits on the construct it is about.
        assert "/" in ack.path, ack


@pytest.mark.parametrize(
    "stack_name",
    [
        "QuorumDr-Control",
        "QuorumDr-Probe-EuWest2",
        "QuorumDr-Probe-UsEast1",
        "QuorumDr-Probe-UsWest2",
        "QuorumDr-ColdSite-UsWest2",
    ],
)
def test_cfn_lint_reports_no_error(synth, stack_name: str) -> None:
    stack = next(s for s in synth.deployment.stacks if s.stack_name == stack_name)
    path = synth.outdir / f"{stack.artifact_id}.template.json"
    matches = lint_file(path, ManualArgs(ignore_checks=["W3005"], regions=[stack.region]))
    errors = [f"{m.rule.id} {m.message} ({m.path_string})" for m in matches if m.rule.id.startswith("E")]
    assert errors == []


def test_cfn_lint_checks_the_inlined_asl(synth, tmp_path: Path) -> None:
    """The state-machine rule is live: a broken definition in the same template is an error."""
    template = json.loads(json.dumps(synth.template(synth.deployment.control)))
    machine = next(
        r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    )
    definition = json.loads(machine["Properties"]["DefinitionString"])
    definition["StartAt"] = "NoSuchState"
    machine["Properties"]["DefinitionString"] = json.dumps(definition)
    broken = tmp_path / "broken.template.json"
    broken.write_text(json.dumps(template))
    matches = lint_file(broken, ManualArgs(ignore_checks=["W3005"], regions=["eu-west-2"]))
    assert any(m.rule.id.startswith("E36") for m in matches), [m.rule.id for m in matches]


def normalize(template: dict) -> dict:
    """Asset hashes and the ASL text change with code, not with the infrastructure."""
    text = json.dumps(template, indent=1, sort_keys=True)
    text = re.sub(r"[0-9a-f]{64}(\.zip)?", "<asset-hash>", text)
    data = json.loads(text)
    for resource in data["Resources"].values():
        if resource["Type"] == "AWS::StepFunctions::StateMachine":
            source = str(resource["Properties"]["StateMachineName"]).removeprefix("quorum-dr-")
            resource["Properties"]["DefinitionString"] = f"<statemachines/{source}.asl.yaml>"
    return data


def test_control_stack_snapshot(synth) -> None:
    snapshot = SNAPSHOTS / "QuorumDr-Control.template.json"
    current = normalize(synth.template(synth.deployment.control))
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not snapshot.exists():
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
        if os.environ.get("UPDATE_SNAPSHOTS") != "1":
            pytest.fail(f"no snapshot yet: wrote {snapshot}; review and commit it")
    assert current == json.loads(snapshot.read_text()), (
        "the control stack changed; if intended, regenerate with UPDATE_SNAPSHOTS=1 and review the diff"
    )
