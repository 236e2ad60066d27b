"""The price table and the usage figures the cost model reads, shipped with the package.

- `prices.yaml`: every price the model uses, with its unit, the official page it belongs to, where
  the figure was read (when that is not the page itself), its `as_of` date and its always-free
  allowance; a price no source gave is `amount: null` with a note, never a guess.
- `usage.yaml`: what `bench/cost_inputs.py` measured on the real code (round time, result sizes,
  log bytes, state transitions) and the assumptions (false triggers a month, network time), each
  saying which it is.

`load_prices` / `load_usage` read these (or an operator's own file) and validate them into the
models of `quorum_dr/domain/cost.py`; anything else raises `PricingError` with one line.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from quorum_dr.config import describe_errors
from quorum_dr.config_file import FileRefused, parse_yaml, read_yaml
from quorum_dr.domain.cost import PriceTable, UsageTable

PRICES = "prices.yaml"
USAGE = "usage.yaml"


class PricingError(Exception):
    """A price table or usage file that cannot be used; the message is one line."""


def _read(path: str | Path | None, packaged: str) -> tuple[str, Any]:
    if path is None:
        text = resources.files(__name__).joinpath(packaged).read_text(encoding="utf-8")
        return f"quorum_dr/pricing/{packaged}", parse_yaml(text)
    try:
        return str(path), read_yaml(path)
    except FileRefused as exc:
        raise PricingError(f"{path}: {exc}") from None


def _validate(model: Any, source: str, data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = describe_errors(exc)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PricingError(f"{source}: {problems[0]}{more}") from None


def load_prices(path: str | Path | None = None) -> PriceTable:
    source, data = _read(path, PRICES)
    table: PriceTable = _validate(PriceTable, source, data)
    return table


def load_usage(path: str | Path | None = None) -> UsageTable:
    source, data = _read(path, USAGE)
    table: UsageTable = _validate(UsageTable, source, data)
    return table
