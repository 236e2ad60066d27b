"""`drctl cost --config FILE [--json] [--service NAME] [--prices FILE] [--usage FILE]`.

Prints the monthly AWS cost of the deployment the config describes, line by line (the quantity,
its unit price, the monthly cost and what drives it), the totals, then beside it the price of the
Route 53 health checks and the Cloudflare Load Balancing it would replace, and what drives the
cost: the same deployment priced with other probe designs. Prices and usage figures come from
`quorum_dr/pricing/` (each price with its source and `as_of` date; each figure measured or
assumed, and says which), or from the files given. Nothing is sent anywhere. Exit codes: 0 done,
2 bad input (config, service name, price or usage file; one line each).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from quorum_dr.cli.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from quorum_dr.config import ConfigError, load_config
from quorum_dr.domain.cost import (
    READINESS_RATE_MINUTES,
    Comparison,
    CostLine,
    CostReport,
    PriceTable,
    cost_report,
    with_services,
)
from quorum_dr.pricing import PricingError, load_prices, load_usage


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    cost = subparsers.add_parser(
        "cost",
        help="the monthly AWS cost of the deployment, line by line, beside Route 53 and Cloudflare",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    cost.add_argument("--config", required=True, help="path to the YAML (or JSON) config")
    cost.add_argument("--json", action="store_true", help="print the report as JSON")
    cost.add_argument("--service", action="append", help="price only this service (repeatable)")
    cost.add_argument(
        "--prices", help="a price table of your own (the shape of quorum_dr/pricing/prices.yaml)"
    )
    cost.add_argument("--usage", help="usage figures of your own (the shape of quorum_dr/pricing/usage.yaml)")
    cost.set_defaults(func=run_cost)


def _fail(message: str) -> int:
    print(f"drctl cost: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run_cost(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        config = with_services(config, args.service or [s.name for s in config.services])
    except KeyError:
        unknown = next(n for n in args.service if n not in [s.name for s in config.services])
        return _fail(
            f"--service: no service named {unknown!r}; configured: {[s.name for s in config.services]}"
        )
    try:
        prices, usage = load_prices(args.prices), load_usage(args.usage)
    except PricingError as exc:
        return _fail(str(exc))
    report = cost_report(config, prices, usage)
    if args.json:
        json.dump(report_as_dict(report, prices), out, indent=1)
        out.write("\n")
    else:
        out.write(render(report, prices))
    return EXIT_OK


# -- the text table ------------------------------------------------------------------------------

ITEM, QTY, PRICE, MONTHLY = 38, 32, 34, 11  # column widths
LINE = 2 + ITEM + 1 + QTY + 2 + PRICE + MONTHLY


def money(value: float | None) -> str:
    if value is None:
        return "not priced"
    if 0 < abs(value) < 0.005:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def quantity(value: float) -> str:
    if value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"


def _row(item: str, qty: str, unit_price: str, monthly: str) -> str:
    return f"  {item[:ITEM]:<{ITEM}} {qty:>{QTY}}  {unit_price:<{PRICE}}{monthly:>{MONTHLY}}\n"


def _sum_row(label: str, monthly: str) -> str:
    return f"  {label:<{LINE - 2 - MONTHLY}}{monthly:>{MONTHLY}}\n"


def _merged(lines: Sequence[CostLine]) -> list[tuple[CostLine, float, float | None, int]]:
    """The probe lines of every region, one row per item: quantity and cost summed."""
    rows: dict[str, list[CostLine]] = {}
    for line in lines:
        rows.setdefault(line.item, []).append(line)
    merged = []
    for same in rows.values():
        costs = [line.monthly for line in same]
        total = None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)
        merged.append((same[-1], sum(line.quantity for line in same), total, len(same)))
    return merged


Row = tuple[CostLine, float, "float | None", str]


def _lines_block(title: str, rows: Sequence[Row], prices: PriceTable) -> str:
    text = f"{title}\n"
    for line, qty, monthly, suffix in rows:
        text += _row(
            line.item, f"{quantity(qty)} {line.unit}", prices[line.price_key].label(), money(monthly)
        )
        text += f"      {line.driver}{suffix}\n"
    return text


def _comparison(comparison: Comparison, prices: PriceTable) -> str:
    text = _sum_row(f"{comparison.name}: {comparison.summary}", money(comparison.total))
    for line in comparison.lines:
        label = prices[line.price_key].label()
        text += f"      {line.item}: {quantity(line.quantity)} x {label} = {money(line.monthly)}"
        text += f" ({line.driver})\n"
    for key in sorted({line.price_key for line in comparison.lines if line.monthly is None}):
        text += f"      {key}: {' '.join(prices[key].note.split())}\n"
    return text


SCOPES = (
    ("secrets", "Secrets, each copy in its region"),
    ("home", "Control plane"),
    ("readiness", f"Readiness function, every service every {READINESS_RATE_MINUTES} minutes"),
    ("cold site", "Cold site"),
)


def render(report: CostReport, prices: PriceTable) -> str:
    regions = sorted({line.region for line in report.lines if line.scope == "probe"})
    text = f"Monthly AWS cost of this deployment ({prices.month_hours:g}-hour month, list prices in USD)\n"
    text += f"{report.config_summary}\n\n"
    text += _row("item", "quantity a month", "unit price", "monthly") + "\n"
    probe = [line for line in report.lines if line.scope == "probe"]
    rows: list[Row] = [
        (line, qty, monthly, "" if n == len(regions) else f" ({n} of the regions)")
        for line, qty, monthly, n in _merged(probe)
    ]
    text += _lines_block(f"Probes, all {len(regions)} regions ({', '.join(regions)})", rows, prices)
    for scope, title in SCOPES:
        scoped = [line for line in report.lines if line.scope == scope]
        if scoped:
            where = "" if scope == "secrets" else f" ({scoped[0].region})"
            suffix = {line.region: f" [{line.region}]" if scope == "secrets" else "" for line in scoped}
            rows = [(line, line.quantity, line.monthly, suffix[line.region]) for line in scoped]
            text += "\n" + _lines_block(f"{title}{where}", rows, prices)
    text += "\n" + _sum_row("Total", money(report.total))
    text += _sum_row(
        "Total with the always-free tier (an account that uses it for nothing else)",
        money(report.total_with_free_tier),
    )
    text += "\nBeside it: what it would replace (they detect; neither checks nor promotes a database)\n"
    text += _sum_row(
        "quorum-dr, less the cold site's Elastic IP (the alternatives would hold it too)",
        money(report.monitoring_total),
    )
    text += _sum_row(
        "quorum-dr's probing alone (probes, their results, metrics, alarms and database secret copies)",
        money(report.probing_total),
    )
    for comparison in report.comparisons:
        text += _comparison(comparison, prices)
    text += "\n" + _drivers(report)
    text += "\nFigures that are not measured (quorum_dr/pricing/usage.yaml)\n"
    for key, figure in report.figures_used.items():
        if figure.basis in ("assumption", "estimate"):
            source = " ".join(figure.source.split())
            text += f"  {key} = {figure.value:g} {figure.unit} ({figure.basis}): {source}\n"
    text += "\nNotes\n" + "".join(f"  - {note}\n" for note in report.notes)
    text += "  - each price's source and as_of date: quorum_dr/pricing/prices.yaml (and drctl cost --json)\n"
    return text


def _drivers(report: CostReport) -> str:
    probe = [
        line
        for line in report.lines
        if line.scope == "probe" and line.price_key.startswith("lambda_duration")
    ]
    share = sum(line.monthly or 0.0 for line in probe)
    text = "What drives the cost\n"
    if report.total and probe:
        text += (
            f"  The probe function's duration: {money(share)} of {money(report.total)} "
            f"({share / report.total:.0%}): {probe[0].driver}.\n"
        )
    readiness = sorted(
        (line for line in report.lines if line.scope == "readiness"), key=lambda x: -(x.monthly or 0.0)
    )
    if readiness:
        biggest = ", ".join(f"{line.item} {money(line.monthly)}" for line in readiness[:3])
        text += (
            f"  The readiness function, every service every {READINESS_RATE_MINUTES} minutes: "
            f"{money(sum(line.monthly or 0.0 for line in readiness))} ({biggest}).\n"
        )
    watch = report.standby_watch
    if watch is not None:
        text += (
            f"  The standby watch (the DR-down alert), every round in every region: {money(watch.total)} "
            f"({money(watch.reads)} of state-table reads and their transfer, {money(watch.duration)} of "
            f"probe duration for its {watch.seconds_per_round:g} s a round).\n"
        )
    standing = [line for line in report.lines if line.standing]
    text += (
        f"  Standing charges, whatever the traffic: {money(sum(line.monthly or 0.0 for line in standing))} "
    )
    text += "(" + ", ".join(dict.fromkeys(line.item for line in standing)) + ").\n"
    text += (
        "  The same deployment priced with other probe designs (a price, not a change to the deployment):\n"
    )
    text += f"    {'design':<46} {'probe duration':>15} {'total':>10} {'with free tier':>15}\n"
    for lever in report.levers:
        text += (
            f"    {lever.name:<46} {money(lever.probe_lambda):>15} {money(lever.total):>10} "
            f"{money(lever.total_with_free_tier):>15}\n"
        )
        text += f"      {lever.change}\n"
    return text


def report_as_dict(report: CostReport, prices: PriceTable) -> dict[str, Any]:
    return {
        "config": report.config_summary,
        "currency": prices.currency,
        "month_hours": prices.month_hours,
        "lines": [line.as_dict(prices) for line in report.lines],
        "total_usd": round(report.total, 4),
        "total_with_free_tier_usd": round(report.total_with_free_tier, 4),
        "monitoring_total_usd": round(report.monitoring_total, 4),
        "probing_total_usd": round(report.probing_total, 4),
        "comparisons": [
            {
                "name": c.name,
                "summary": c.summary,
                "total_usd": None if c.total is None else round(c.total, 4),
                "lines": [line.as_dict(prices) for line in c.lines],
            }
            for c in report.comparisons
        ],
        "designs": [
            {
                "name": lever.name,
                "change": lever.change,
                "probe_duration_usd": round(lever.probe_lambda, 4),
                "total_usd": round(lever.total, 4),
                "total_with_free_tier_usd": round(lever.total_with_free_tier, 4),
            }
            for lever in report.levers
        ],
        "standby_watch": None
        if report.standby_watch is None
        else {
            "reads_usd": round(report.standby_watch.reads, 4),
            "probe_duration_usd": round(report.standby_watch.duration, 4),
            "seconds_per_round": report.standby_watch.seconds_per_round,
        },
        "usage": {k: v.model_dump(mode="json") for k, v in report.figures_used.items()},
        "notes": report.notes,
    }
