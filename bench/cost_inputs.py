"""The measured inputs of the cost model (`drctl cost`), from the real code on this machine.

    python bench/cost_inputs.py [--runs 5] [--skip-failover]

1. The probe function's scheduled round: the real probe handler (`lambdas/probe/handler.py`) with
   the example config's checks (main: HTTP, TCP, PostgreSQL; DR: HTTP, PostgreSQL; cold: HTTP; the
   control target: TCP) pointed at local servers: two HTTP origins, a real PostgreSQL 15 primary and
   its streaming standby; AWS through moto in this process (DynamoDB results table, EventBridge,
   Secrets Manager). Two cases: the cold site answers, and the cold site is not launched (its
   address takes the connection attempt and never completes it, as an Elastic IP with no instance
   behind it does: the check waits its whole timeout). Per invocation: wall time, the items the
   round writes and their DynamoDB size (the size rule: attribute names + values), the bytes the
   handler logs (JSON lines and the metrics' EMF blob) for one round and for the schedule's two.
2. A failover execution through the end-to-end rig (`quorum_dr_local.rig`: the real ASL in moto,
   the real handlers and adapters, PostgreSQL checks on, waits scaled to 0), after one scheduled
   round in every region: a false alarm (main up) and a hot failover (main down). Per execution:
   state transitions (each state entered is one), the action functions' invocations and their
   wall time, the on-demand probe invocations, the execution history's size.

What it cannot measure here: the Internet between a probe region and the sites, TLS (the local
sites speak plain HTTP and PostgreSQL without SSL), and DynamoDB's own latency from another region;
`quorum_dr/pricing/usage.yaml` adds those as stated estimates. Prints figures (median, min, max);
asserts nothing. The figures in usage.yaml come from this script.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

HOME, REGION = "eu-west-2", "us-east-1"
TABLE, BUS = "quorum-dr-results", "quorum-dr"
MONITOR_SECRET = "quorum-dr/booking/db-monitor"


# -- local sites --------------------------------------------------------------------------------


class Origin:
    """A site's /health: 200, `{"status": "ok"}`, the site's marker in X-Site."""

    def __init__(self, marker: str) -> None:
        body = b'{"status": "ok", "site": "%s"}' % marker.encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("X-Site", marker)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class Blackhole:
    """An address where a connection attempt never completes: a listening socket with a backlog
    of one that never accepts, its queue already full, so the kernel drops further SYNs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = int(self.sock.getsockname()[1])
        self.fillers: list[socket.socket] = []
        for _ in range(3):  # fill the accept queue (its length is backlog + 1 on Linux)
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self.fillers.append(filler)
        time.sleep(0.2)

    def stop(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.sock.close()


# -- the probe invocation -----------------------------------------------------------------------


def _load_handler() -> Any:
    spec = importlib.util.spec_from_file_location("probe_handler", ROOT / "lambdas" / "probe" / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Context:
    function_name: str = "quorum-dr-probe"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:quorum-dr-probe"
    aws_request_id: str = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 55_000


def probe_config(main: Origin, dr: Origin, cold_port: int, pair: Any) -> dict[str, Any]:
    """The example config, every address pointed at this machine."""
    data = yaml.safe_load((ROOT / "config" / "watchdog.example.yaml").read_text())
    data["probe"]["control_target"] = {
        "checks": [{"name": "control-aws", "type": "tcp", "host": "127.0.0.1", "port": main.port}]
    }
    service = data["services"][0]
    sites = service["sites"]
    for site, port in (("main", main.port), ("dr", dr.port), ("cold", cold_port)):
        for check in sites[site]["checks"]:
            if check["type"] == "http":
                check["url"] = f"http://127.0.0.1:{port}/health"
            elif check["type"] == "tcp":
                check.update(host="127.0.0.1", port=port)
            elif check["type"] == "postgres":
                cluster = pair.primary if site == "main" else pair.standby
                check.update(host="127.0.0.1", port=cluster.port, dbname="postgres", sslmode="disable")
    return data


def dynamodb_item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: each attribute's name in UTF-8 bytes plus its value (a string's UTF-8
    bytes; a number about one byte per two significant digits plus one)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if isinstance(value, str):
            size += len(value.encode())
        elif isinstance(value, int | float | Decimal):
            digits = len(str(abs(value)).replace(".", "").lstrip("0")) or 1
            size += (digits + 1) // 2 + 1
        else:
            size += len(json.dumps(value, default=str).encode())
    return size


@contextlib.contextmanager
def captured_output() -> Iterator[io.StringIO]:
    """Everything the handler writes: the Powertools logger's stream and stdout (EMF)."""
    from quorum_dr.observability import logger

    buffer = io.StringIO()
    handler = logger.registered_handler
    old = handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        with contextlib.redirect_stdout(buffer):
            yield buffer
    finally:
        handler.setStream(old)  # type: ignore[attr-defined]


def measure_probe(runs: int, cold_down: bool, pair: Any, work: Path) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from quorum_dr.adapters.tables import create_table

    main, dr = Origin("main"), Origin("dr")
    cold_site: Origin | Blackhole = Blackhole() if cold_down else Origin("cold")
    try:
        config = probe_config(main, dr, cold_site.port, pair)
        path = work / ("cold-down.json" if cold_down else "cold-up.json")
        path.write_text(json.dumps(config))
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "QUORUM_DR_CONFIG_PATH": str(path),
            "RESULTS_TABLE_NAME": TABLE,
            "EVENT_BUS_NAME": BUS,
            "POWERTOOLS_SERVICE_NAME": "quorum-dr",
            "POWERTOOLS_METRICS_NAMESPACE": "QuorumDR",
        }
        os.environ.update(env)
        with mock_aws():
            dynamodb = boto3.client("dynamodb", region_name=HOME)
            create_table(dynamodb, TABLE)
            boto3.client("events", region_name=REGION).create_event_bus(Name=BUS)
            boto3.client("secretsmanager", region_name=REGION).create_secret(
                Name=MONITOR_SECRET, SecretString=json.dumps(pair.primary.roles.monitor.as_secret())
            )
            handler = _load_handler()
            handler.handler({}, Context())  # warm: imports, clients, the secret's cache
            walls, log_bytes, items_per_round = [], [], []
            for _ in range(runs):
                before = {i["sk"]["S"] for i in dynamodb.scan(TableName=TABLE)["Items"]}
                with captured_output() as out:
                    started = time.perf_counter()
                    answer = handler.handler({}, Context())
                    walls.append(time.perf_counter() - started)
                log_bytes.append(len(out.getvalue().encode()))
                items = [i for i in dynamodb.scan(TableName=TABLE)["Items"] if i["sk"]["S"] not in before]
                items_per_round.append(items)
                assert answer["abstaining"] is False, answer["reason"]
            with captured_output() as out:  # the scheduled input's two rounds in one invocation
                handler.handler({"source": "schedule", "rounds": 2, "round_spacing_seconds": 0}, Context())
            two_round_log_bytes = len(out.getvalue().encode())
            table = boto3.resource("dynamodb", region_name=HOME).Table(TABLE)
            stored = table.scan()["Items"]
            sizes: dict[str, list[int]] = {}
            for item in stored:
                sizes.setdefault(str(item["check"]), []).append(dynamodb_item_size(item))
            verdicts = {v["site"]: v["vote"] for v in answer["verdicts"]}
    finally:
        for server in (main, dr, cold_site):
            server.stop()
    per_round = [len(items) for items in items_per_round]
    all_sizes = [s for values in sizes.values() for s in values]
    return {
        "cold_site": "not launched (connection attempts time out)" if cold_down else "answering",
        "verdicts": verdicts,
        "round_seconds": {
            "median": statistics.median(walls),
            "min": min(walls),
            "max": max(walls),
            "runs": len(walls),
        },
        "items_per_round": max(per_round),
        "item_bytes": {
            "mean": statistics.mean(all_sizes),
            "max": max(all_sizes),
            "by_check": {k: max(v) for k, v in sorted(sizes.items())},
        },
        "log_bytes_per_invocation": {"median": statistics.median(log_bytes), "max": max(log_bytes)},
        "log_bytes_two_round_invocation": two_round_log_bytes,
    }


# -- failover executions ------------------------------------------------------------------------


def measure_execution(base: Path, main_down: bool, name: str) -> dict[str, Any]:
    import boto3

    from quorum_dr_local.rig import FailoverRig
    from quorum_dr_local.system_config import PROBE_REGIONS

    with FailoverRig(base, postgres_checks=True) as rig:
        handlers = rig.harness.handlers
        calls: dict[str, list[float]] = {}

        def timed(key: str, function: Any) -> Any:
            def call(event: Any, context: Any) -> Any:
                started = time.perf_counter()
                try:
                    return function(event, context)
                finally:
                    calls.setdefault(key, []).append(time.perf_counter() - started)

            return call

        for key in list(handlers):
            handlers[key] = timed(key, handlers[key])
        for region in PROBE_REGIONS:  # a scheduled round first, as in production (the loss bound)
            boto3.client("lambda", region_name=region).invoke(
                FunctionName=f"arn:aws:lambda:{region}:123456789012:function:quorum-dr-probe",
                Payload=json.dumps({"round_id": f"quiet-{region}", "service": "booking"}).encode(),
            )
        calls.clear()
        if main_down:
            rig.site_down("main")
        described = rig.run(name=name, timeout=180)
        sfn = boto3.client("stepfunctions", region_name=HOME)
        history: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": described["executionArn"], "maxResults": 1000}
        for _ in range(50):  # bounded paging
            page = sfn.get_execution_history(**kwargs)
            history += page["events"]
            if "nextToken" not in page:
                break
            kwargs["nextToken"] = page["nextToken"]
        entered = [e for e in history if e["type"].endswith("StateEntered")]
        history_bytes = len(json.dumps(history, default=str).encode())
    probe_calls = {k: v for k, v in calls.items() if "probe" in k}
    action_calls = {k: v for k, v in calls.items() if "probe" not in k}
    return {
        "status": described["status"],
        "state_transitions": len(entered),
        "history_bytes": history_bytes,
        "action_invocations": sum(len(v) for v in action_calls.values()),
        "action_seconds": round(sum(sum(v) for v in action_calls.values()), 3),
        "probe_invocations": sum(len(v) for v in probe_calls.values()),
        "probe_seconds": round(sum(sum(v) for v in probe_calls.values()), 3),
        "by_function": {k: len(v) for k, v in sorted(calls.items())},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-failover", action="store_true", help="only the probe invocation")
    args = parser.parse_args()
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    from quorum_dr_local.standins.postgres import make_primary, make_standby, prepare_base_dir

    base = prepare_base_dir(Path(tempfile.mkdtemp(prefix="quorum-dr-cost-", dir="/tmp")))
    report: dict[str, Any] = {"measured_on": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores"}
    try:
        with make_primary(base, name="cost-main") as primary:
            standby = make_standby(primary, base, name="cost-dr")
            try:
                pair = type("Pair", (), {"primary": primary, "standby": standby})()
                report["probe_cold_up"] = measure_probe(args.runs, False, pair, base)
                print(json.dumps({"probe_cold_up": report["probe_cold_up"]}, indent=1), flush=True)
                report["probe_cold_down"] = measure_probe(args.runs, True, pair, base)
                print(json.dumps({"probe_cold_down": report["probe_cold_down"]}, indent=1), flush=True)
            finally:
                standby.destroy()
        if not args.skip_failover:
            os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
            for key, down in (("false_alarm", False), ("hot_failover", True)):
                report[key] = measure_execution(base / key, down, f"cost-{key.replace('_', '-')}")
                print(json.dumps({key: report[key]}, indent=1), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
