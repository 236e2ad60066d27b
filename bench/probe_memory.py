"""Peak memory of the probe function's process, each figure from a fresh process.

    python bench/probe_memory.py [--runs 5] [--python .venv-lambda/bin/python]

Two workloads, each measured `--runs` times, every run in a new process of `--python` (the Lambda
runtime's venv when it can import the handler, else this interpreter), which reads its own peak
resident set once its work is done: `VmHWM` in /proc/self/status, the figure used (`ru_maxrss` of
getrusage is printed too: it can keep the forking parent's peak across exec, so it may read higher).

- handler: `lambdas/probe/handler.py` as Lambda calls it, the deployed schedule's input (2 rounds;
  spacing 0 here) five times in the one process, as a warm container runs it: a scheduled round of
  the example service against local servers: main's and dr's HTTP health and TCP checks and the
  PostgreSQL check of a real PostgreSQL 15 primary and its streaming standby (credentials from
  Secrets Manager), the cold site left out (steady state, `domain/cold_probe.py`; with
  `--probe-cold` the state is NEEDS_ATTENTION and the rounds check its silent address); the results
  table, state table, event bus and secrets in a moto server in another process (AWS_ENDPOINT_URL),
  so neither moto nor the servers count in the figure.
- bench: `bench/probe_round.py`'s round of 1,000 HTTP checks (all concurrent) against its local
  server (in another process), three rounds in the one process.

Prints how it measured, then median, min and max per workload (MB = 2^20 bytes). A Lambda's "Max
Memory Used" also counts the runtime interface client; this process does not load it. Asserts
nothing. Needs root or a `postgres` user for the PostgreSQL pair (as the tests do).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOME, REGION = "eu-west-2", "us-east-1"
RESULTS, STATE, BUS, SECRET = (
    "quorum-dr-results",
    "quorum-dr-state",
    "quorum-dr",
    "quorum-dr/booking/db-monitor",
)
LAMBDA_PYTHON = ROOT / ".venv-lambda" / "bin" / "python"


def peak_kb() -> dict[str, int]:
    import resource

    status = Path("/proc/self/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return {"vmhwm_kb": hwm, "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


# -- the measured processes ------------------------------------------------------------------------


def child_handler() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("probe_handler", ROOT / "lambdas" / "probe" / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Context:
        function_name = "quorum-dr-probe"
        memory_limit_in_mb = 256
        invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:quorum-dr-probe"
        aws_request_id = "bench"

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 120_000

    imported = peak_kb()
    started = time.perf_counter()
    answers = [
        module.handler({"source": "schedule", "rounds": 2, "round_spacing_seconds": 0}, Context())
        for _ in range(5)
    ]
    rounds = [r for answer in answers for r in answer["rounds"]]
    print(
        json.dumps(
            {
                **peak_kb(),
                "after_import_kb": imported["vmhwm_kb"],
                "seconds": time.perf_counter() - started,
                "rounds": len(rounds),
                "sites": sorted({r["site"] for r in rounds[0]["results"]}),
                "down": sum(1 for r in rounds for x in r["results"] if x["vote"] == "down"),
            }
        )
    )


def child_bench(port: int) -> None:
    bench_config = _probe_round().bench_config

    from quorum_dr.adapters.secrets import StaticSecrets
    from quorum_dr.probes.round import run_round

    config = bench_config(port, 1000)
    up = []
    started = time.perf_counter()
    for run in range(3):
        report = run_round(config, region=HOME, round_id=f"mem-{run}", secrets=StaticSecrets({}))
        up.append(sum(1 for r in report.results if r.site == "main" and r.vote.value == "up"))
    print(json.dumps({**peak_kb(), "seconds": time.perf_counter() - started, "up": up}))


# -- the world around them -------------------------------------------------------------------------


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    from quorum_dr_local.standins.postgres import free_port  # here: the measured child never loads it

    port = free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return moto, url
        except OSError:
            time.sleep(0.2)
    moto.kill()
    raise RuntimeError("moto_server did not start within 30 s")


def write_config(path: Path, main: Any, dr: Any, web: dict[str, Any], cold_port: int) -> None:
    sys.path.insert(0, str(ROOT))
    from quorum_dr.config_file import read_yaml

    data = read_yaml(ROOT / "config" / "watchdog.example.yaml")
    data["home_region"] = HOME
    data["probe"]["control_target"] = {
        "checks": [{"name": "control", "type": "tcp", "host": "127.0.0.1", "port": web["main"].port}]
    }
    service = data["services"][0]

    def checks(site: str, db: Any) -> list[dict[str, Any]]:
        port = web[site].port
        found: list[dict[str, Any]] = [
            {
                "name": "health",
                "type": "http",
                "url": f"http://127.0.0.1:{port}/health",
                "body_contains": "ok",
            },
            {"name": "tcp", "type": "tcp", "host": "127.0.0.1", "port": port},
        ]
        found.append(
            {
                "name": "postgres",
                "type": "postgres",
                "host": "127.0.0.1",
                "port": db.port,
                "dbname": "postgres",
                "credentials_secret": SECRET,
                "sslmode": "disable",
                "vote": False,
            }
        )
        return found

    service["sites"]["main"]["checks"] = checks("main", main)
    service["sites"]["dr"]["checks"] = checks("dr", dr)
    service["sites"]["cold"]["checks"] = [
        {"name": "health", "type": "http", "url": f"http://127.0.0.1:{cold_port}/health"}
    ]
    path.write_text(json.dumps(data))


def run_child(python: Path, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [str(python), str(Path(__file__).resolve()), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def can_import_handler(python: Path) -> bool:
    if not python.exists():
        return False
    check = "import boto3, psycopg2, aws_lambda_powertools, pydantic, httpx, yaml"
    return subprocess.run([str(python), "-c", check], capture_output=True, check=False).returncode == 0


def mb(kb: float) -> str:
    return f"{kb / 1024:.1f}"


def summary(name: str, runs: list[dict[str, Any]]) -> None:
    peaks = [r["vmhwm_kb"] for r in runs]
    low, high = mb(min(peaks)), mb(max(peaks))
    print(
        f"{name:<8} median {mb(statistics.median(peaks))} MB, min {low} MB, max {high} MB "
        f"(VmHWM, {len(runs)} fresh processes; ru_maxrss max {mb(max(r['ru_maxrss_kb'] for r in runs))} MB); "
        f"{100 * statistics.median(peaks) / 1024 / 256:.0f}% of 256 MB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--python", type=Path, default=LAMBDA_PYTHON)
    parser.add_argument(
        "--probe-cold",
        action="store_true",
        help="state NEEDS_ATTENTION: the rounds check the cold site (silent: each check waits its timeout)",
    )
    parser.add_argument("--child", choices=["handler", "bench"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "handler":
        child_handler()
        return 0
    if args.child == "bench":
        child_bench(args.port)
        return 0
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    python = args.python if can_import_handler(args.python) else Path(sys.executable)

    sys.path.insert(0, str(ROOT))
    import boto3

    from quorum_dr.adapters.tables import create_table
    from quorum_dr_local.standins.health_page import HealthPage
    from quorum_dr_local.standins.postgres import make_primary, make_standby

    base = Path(tempfile.mkdtemp(prefix="qdr-mem-", dir="/tmp"))
    web = {"main": HealthPage("main").start(), "dr": HealthPage("dr").start()}
    silent = socket.socket()  # the cold site's address: accepts, never answers (left out anyway)
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    moto, url = start_moto()
    primary = standby = None
    try:
        primary = make_primary(base, name="mem-main")
        standby = make_standby(primary, base, name="mem-dr")
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": url,
            "PYTHONPATH": str(ROOT),
            "RESULTS_TABLE_NAME": RESULTS,
            "STATE_TABLE_NAME": STATE,
            "EVENT_BUS_NAME": BUS,
            "POWERTOOLS_METRICS_NAMESPACE": "quorum-dr",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        for region in (HOME, REGION):
            boto3.client("events", region_name=region, endpoint_url=url, **_keys()).create_event_bus(Name=BUS)
        dynamodb = boto3.client("dynamodb", region_name=HOME, endpoint_url=url, **_keys())
        create_table(dynamodb, RESULTS)
        create_table(dynamodb, STATE)
        if args.probe_cold:  # not the steady state: the cold rule checks the cold site
            state = {"service": "booking", "status": "NEEDS_ATTENTION", "active_site": "main", "version": 1}
            dynamodb.put_item(
                TableName=STATE,
                Item={
                    "pk": {"S": "booking"},
                    "sk": {"S": "STATE"},
                    **{k: {"N": str(v)} if isinstance(v, int) else {"S": v} for k, v in state.items()},
                },
            )
        secrets = boto3.client("secretsmanager", region_name=REGION, endpoint_url=url, **_keys())
        secrets.create_secret(Name=SECRET, SecretString=json.dumps(primary.roles.monitor.as_secret()))
        config = base / "watchdog.json"
        write_config(config, primary, standby, web, silent.getsockname()[1])
        env["QUORUM_DR_CONFIG_PATH"] = str(config)

        print(f"interpreter: {python} (a fresh process per run; peak = VmHWM of /proc/self/status)")
        print(
            f"moto server {url}, PostgreSQL 15 primary :{primary.port} and streaming standby :{standby.port}"
        )
        handler_runs = [run_child(python, ["--child", "handler"], env) for _ in range(args.runs)]
        first = handler_runs[0]
        print(
            f"handler: 5 invocations x 2 scheduled rounds, sites checked {first['sites']}, "
            f"{first['down']} DOWN results; after the imports {mb(first['after_import_kb'])} MB; "
            f"{statistics.median(r['seconds'] / r['rounds'] for r in handler_runs):.3f} s a round (median)"
        )
        summary("handler", handler_runs)
    finally:
        for cluster in (standby, primary):
            if cluster is not None:
                cluster.destroy()
        moto.terminate()
        moto.wait(10)
        for site in web.values():
            site.stop()
        silent.close()

    import multiprocessing

    _serve = _probe_round()._serve

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    slow = multiprocessing.get_context("fork").Process(target=_serve, args=(sock, 0.05, 600), daemon=True)
    slow.start()
    try:
        port = sock.getsockname()[1]
        bench_runs = [
            run_child(python, ["--child", "bench", "--port", str(port)], env) for _ in range(args.runs)
        ]
        print(f"bench: 3 rounds of 1,000 concurrent HTTP checks each; UP per round {bench_runs[0]['up']}")
        summary("bench", bench_runs)
    finally:
        slow.terminate()
        slow.join(5)
    return 0


def _probe_round() -> Any:
    """bench/probe_round.py (its server and its config of N checks), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("probe_round", ROOT / "bench" / "probe_round.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


if __name__ == "__main__":
    sys.exit(main())
