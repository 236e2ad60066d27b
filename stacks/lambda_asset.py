"""Lambda code without Docker: local bundling of each function and of one dependency layer.

A function's asset is its handler folder (`lambdas/<name>/`), the `quorum_dr` package without
its operator CLI (the local world, `quorum_dr_local`, is never bundled) and the validated config
as `watchdog.json` (plus, for launch_cold_site and rehearse_cold_site, the cold-site bootstrap
script with every value but the task token filled in). The dependency layer holds requirements.txt
installed for the Lambda platform with `pip install --platform manylinux2014_aarch64
--only-binary=:all: --target`, cached under build/lambda-deps/ by the hash of its inputs.

With `skip_bundling` (context `-c skip_bundling=true`, on in tests) the source folders are used as
they are: synthesis is fast and offline, the template is the same apart from asset hashes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

ROOT = Path(__file__).resolve().parent.parent
# The Python the tests also run on (make test-lambda-runtime, a .venv-lambda of this version), on
# Graviton: cheaper per GB-second, and every wheel of requirements.txt exists for manylinux aarch64.
RUNTIME = lambda_.Runtime.PYTHON_3_13
RUNTIME_VERSION = "3.13"
ARCHITECTURE = lambda_.Architecture.ARM_64
# manylinux_2_28 too: google-re2's aarch64 wheels need glibc 2.28 (Lambda's python3.13 runs on
# Amazon Linux 2023, glibc 2.34).
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
CONFIG_FILE = "watchdog.json"
HANDLER = "handler.handler"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")
# What a function runs: its handler folder at the root, and the quorum_dr package without the
# operator CLI (quorum_dr/cli). The local world (quorum_dr_local: stand-ins, drill, harness, rig)
# is a package of its own and is never copied.
PACKAGE = "quorum_dr"
_NOT_IN_LAMBDA = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")


def _package_ignore(directory: str, names: list[str]) -> set[str]:
    ignored = set(_NOT_IN_LAMBDA(directory, names))
    if Path(directory) == ROOT / PACKAGE:
        ignored.add("cli")
    return ignored


def _hash_tree(digest: Any, path: Path) -> None:
    if path.is_file():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
        return
    for item in sorted(path.rglob("*")):
        if item.is_file() and "__pycache__" not in item.parts and item.suffix != ".pyc":
            digest.update(str(item.relative_to(path)).encode())
            digest.update(item.read_bytes())


@jsii.implements(ILocalBundling)
class _FunctionBundler:
    def __init__(self, name: str, files: Mapping[str, str]) -> None:
        self._name = name
        self._files = files

    def try_bundle(self, output_dir: str, *_args: Any, **_options: Any) -> bool:
        out = Path(output_dir)
        handler_dir = ROOT / "lambdas" / self._name
        if handler_dir.is_dir():
            shutil.copytree(handler_dir, out, dirs_exist_ok=True, ignore=_IGNORED)
        shutil.copytree(ROOT / PACKAGE, out / PACKAGE, dirs_exist_ok=True, ignore=_package_ignore)
        for relative, text in self._files.items():
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        return True


@jsii.implements(ILocalBundling)
class _LayerBundler:
    def __init__(self, requirements: Path, digest: str) -> None:
        self._requirements = requirements
        self._digest = digest

    def try_bundle(self, output_dir: str, *_args: Any, **_options: Any) -> bool:
        cache = ROOT / "build" / "lambda-deps" / self._digest
        if not (cache / ".complete").exists():
            shutil.rmtree(cache, ignore_errors=True)
            cache.mkdir(parents=True)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    *[arg for platform in PLATFORMS for arg in ("--platform", platform)],
                    "--implementation",
                    "cp",
                    "--python-version",
                    RUNTIME_VERSION,
                    "--only-binary=:all:",
                    "--target",
                    str(cache / "python"),
                    "-r",
                    str(self._requirements),
                ],
                check=True,
            )
            (cache / ".complete").write_text(self._digest)
        shutil.copytree(cache / "python", Path(output_dir) / "python", dirs_exist_ok=True, ignore=_IGNORED)
        return True


class LambdaAssets:
    """Builds the Code of every function and of the dependency layer for one synthesis."""

    def __init__(
        self, config_json: str, *, skip_bundling: bool, cold_site_scripts: Mapping[str, str]
    ) -> None:
        self.config_json = config_json
        self.skip_bundling = skip_bundling
        self.cold_site_scripts = dict(cold_site_scripts)

    def files_for(self, name: str) -> dict[str, str]:
        files = {CONFIG_FILE: self.config_json}
        if name in ("launch_cold_site", "rehearse_cold_site"):  # the same user data for both launches
            for service, script in self.cold_site_scripts.items():
                files[f"cold_site/{service}.sh"] = script
        return files

    def function_code(self, name: str) -> lambda_.Code:
        handler_dir = ROOT / "lambdas" / name
        if self.skip_bundling:
            # The source folder as it is; before the handler exists, the package folder stands in.
            return lambda_.Code.from_asset(str(handler_dir if handler_dir.is_dir() else ROOT / "quorum_dr"))
        files = self.files_for(name)
        digest = hashlib.sha256()
        for path in (handler_dir, ROOT / "quorum_dr"):
            if path.exists():
                _hash_tree(digest, path)
        digest.update(json.dumps(files, sort_keys=True).encode())
        return lambda_.Code.from_asset(
            str(ROOT / "lambdas" if (ROOT / "lambdas").is_dir() else ROOT / "quorum_dr"),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=digest.hexdigest(),
            bundling=BundlingOptions(
                image=DockerImage.from_registry("unused-local-bundling-only"),
                local=_FunctionBundler(name, files),
            ),
        )

    def layer_code(self) -> lambda_.Code:
        requirements = ROOT / "requirements.txt"
        if self.skip_bundling:
            placeholder = Path(tempfile.gettempdir()) / "quorum-dr-skip-bundling-layer" / "python"
            placeholder.mkdir(parents=True, exist_ok=True)
            (placeholder / "README").write_text("dependencies are not bundled with skip_bundling\n")
            return lambda_.Code.from_asset(str(placeholder.parent))
        digest = hashlib.sha256()
        _hash_tree(digest, requirements)
        digest.update(f"{' '.join(PLATFORMS)} {RUNTIME_VERSION}".encode())
        return lambda_.Code.from_asset(
            str(ROOT),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=digest.hexdigest(),
            exclude=["**"],
            bundling=BundlingOptions(
                image=DockerImage.from_registry("unused-local-bundling-only"),
                local=_LayerBundler(requirements, digest.hexdigest()),
            ),
        )
