"""Local bundling (no Docker): what goes into a function's asset."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from quorum_dr.config import load_config, parse_config
from stacks.cold_site import BOOTSTRAP, render_bootstrap
from stacks.lambda_asset import CONFIG_FILE, LambdaAssets, _FunctionBundler


def _assets(config) -> LambdaAssets:
    return LambdaAssets(
        json.dumps(config.model_dump(mode="json")),
        skip_bundling=False,
        cold_site_scripts={"booking": render_bootstrap(config, config.service("booking"))},
    )


def test_function_asset_holds_handler_package_and_validated_config(
    tmp_path: Path, example_config_path
) -> None:
    config = load_config(example_config_path)
    assets = _assets(config)
    out = tmp_path / "notify"
    out.mkdir()
    assert _FunctionBundler("notify", assets.files_for("notify")).try_bundle(str(out)) is True
    assert (out / "quorum_dr" / "config.py").is_file()
    assert not list(out.rglob("__pycache__"))
    bundled = parse_config(json.loads((out / CONFIG_FILE).read_text()), CONFIG_FILE)
    assert bundled == config
    assert not (out / "cold_site").exists()


def test_function_asset_holds_only_what_runs_in_lambda(tmp_path: Path, example_config_path) -> None:
    """The handler, the quorum_dr package without its CLI, the config: no local world, no moto."""
    config = load_config(example_config_path)
    out = tmp_path / "probe"
    out.mkdir()
    _FunctionBundler("probe", _assets(config).files_for("probe")).try_bundle(str(out))
    expected = ["__init__.py", "handler.py", "quorum_dr", CONFIG_FILE]
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    assert not (out / "quorum_dr" / "cli").exists()
    sources = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*.py")}
    assert "quorum_dr/functions.py" in sources
    for path, text in sources.items():
        imports = re.findall(r"^\s*(?:from|import) ([\w.]+)", text, flags=re.M)
        local = [name for name in imports if name.split(".")[0] in ("quorum_dr_local", "moto")]
        assert not local, f"{path} imports {local}, which is not in the bundle"


def test_launch_cold_site_gets_the_bootstrap_with_only_the_token_to_fill(
    tmp_path: Path, example_config_path
) -> None:
    config = load_config(example_config_path)
    out = tmp_path / "launch"
    out.mkdir()
    _FunctionBundler("launch_cold_site", _assets(config).files_for("launch_cold_site")).try_bundle(str(out))
    script = (out / "cold_site" / "booking.sh").read_text()
    assert set(re.findall(r"@@[A-Z_]+@@", script)) == {"@@TASK_TOKEN@@"}
    assert "QDR_BACKUP_BUCKET=${QDR_BACKUP_BUCKET:-$(placeholder 'booking-backups-example')}" in script


def test_bootstrap_script_is_valid_bash() -> None:
    run = subprocess.run(["bash", "-n", str(BOOTSTRAP)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
