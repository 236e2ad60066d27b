#!/usr/bin/env python3
"""The quorum-dr CDK app: `python app.py` (or `cdk synth`) builds every stack from the config.

Context: `config` (path of the watchdog YAML; cdk.json names the example), `skip_bundling`
(true: use the source folders as Lambda code, fast and offline), `nag` (cdk-nag on, default true).
`cdk` passes `-c key=value` itself; run directly, `python app.py -c config=PATH` does the same,
and the defaults come from cdk.json either way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aws_cdk import App

from stacks.deployment import SynthError, build

ROOT = Path(__file__).resolve().parent


def cli_context(argv: list[str]) -> dict[str, str]:
    context = {}
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag in ("-c", "--context") and "=" in value:
            key, _, val = value.partition("=")
            context[key] = val
    return context


def main(argv: list[str]) -> None:
    defaults = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8")).get("context", {})
    app = App(context=defaults, post_cli_context=cli_context(argv), outdir=str(ROOT / "cdk.out"))
    try:
        build(app)
    except SynthError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    app.synth()


if __name__ == "__main__":
    main(sys.argv[1:])
