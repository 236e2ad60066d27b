"""The DR site dies while main serves: StandbyDown once, within three probe intervals, and
StandbyRecovered once when it is back; one region's failure alone says nothing.

Three ProbeService regions against real local HTTP servers (main and dr), their results in moto's
DynamoDB, the claim in the state table (DynamoStandbyWatch), the events on moto's EventBridge
captured by SQS. The rounds' clock steps by the probe interval (30 s), as the schedule would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from quorum_dr.adapters.dynamodb_results import DynamoDbResultStore
from quorum_dr.adapters.dynamodb_state import DynamoStandbyWatch
from quorum_dr.adapters.eventbridge import EventBridgePublisher
from quorum_dr.adapters.secrets import StaticSecrets
from quorum_dr.adapters.tables import create_table
from quorum_dr.config import parse_config
from quorum_dr.domain.standby_health import STANDBY_DETAIL_TYPES, StandbyAlertDetail, StandbyRecord
from quorum_dr.probes.event import RoundRequest
from quorum_dr.probes.service import ProbeService

ROOT = Path(__file__).resolve().parents[2]
HOME = "eu-west-2"
REGIONS = ["eu-west-2", "us-east-1", "us-west-2"]
RESULTS, STATE, BUS = "quorum-dr-results", "quorum-dr-state", "quorum-dr"
T0 = 1_700_000_000.0


class Site:
    """A site's origin: /health answers 200 with its marker while it runs; `stop` really closes it."""

    def __init__(self, marker: str, port: int = 0) -> None:
        self.marker = marker

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = json.dumps({"status": "ok", "site": marker}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def _free_port() -> int:
    probe = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()
    return port


def _config(main_port: int, dr_port: int) -> Any:
    data = yaml.safe_load((ROOT / "config" / "watchdog.example.yaml").read_text())
    data["home_region"] = HOME
    data["probe_regions"] = REGIONS
    data["probe"]["timeout_seconds"] = 5
    data["probe"]["control_target"] = {
        "checks": [{"name": "control", "type": "tcp", "host": "127.0.0.1", "port": main_port}]
    }
    service = data["services"][0]
    for site, port in (("main", main_port), ("dr", dr_port)):
        service["sites"][site]["checks"] = [
            {
                "name": "health",
                "type": "http",
                "url": f"http://127.0.0.1:{port}/health",
                "body_contains": "ok",
            }
        ]
    del service["sites"]["cold"], service["cold_site"]
    return parse_config(data)


class World:
    def __init__(self, main: Site, dr: Site, sqs: Any, queue_url: str) -> None:
        self.main, self.dr, self.sqs, self.queue_url = main, dr, sqs, queue_url
        self.now = T0
        self.dr_port = dr.port
        self.configs = dict.fromkeys(REGIONS, _config(main.port, dr.port))
        self.round = 0

    def service(self, region: str) -> ProbeService:
        clock = lambda: self.now  # noqa: E731 - the rounds' clock, stepped by the test
        return ProbeService(
            self.configs[region],
            region=region,
            results=DynamoDbResultStore.from_name(RESULTS, ttl_seconds=3600, clock=clock, region=HOME),
            events=EventBridgePublisher.from_name(BUS, region=HOME),
            secrets=StaticSecrets({}),
            clock=clock,
            standby=DynamoStandbyWatch(STATE, region=HOME),
        )

    def rounds(self, regions: list[str] = REGIONS) -> list[tuple[str, str, StandbyAlertDetail]]:
        """One scheduled round in each region, a second apart, then the interval; the standby
        events they published, as (region, detail type, detail)."""
        said = []
        for region in regions:
            self.now += 1
            outcome = self.service(region).run(
                RoundRequest(round_id=f"{region}-{self.round}", kind="scheduled")
            )
            said += [(region, e.detail_type) for e in outcome.events if e.detail_type in STANDBY_DETAIL_TYPES]
        self.now += 30 - len(regions)
        self.round += 1
        events = self.captured()
        assert [(e["detail"]["region"], e["detail-type"]) for e in events] == said
        return [
            (e["detail"]["region"], e["detail-type"], StandbyAlertDetail.model_validate(e["detail"]))
            for e in events
        ]

    def captured(self) -> list[dict[str, Any]]:
        events = []
        for _ in range(20):
            answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            for message in answer.get("Messages", []):
                events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            if not answer.get("Messages"):
                break
        return [e for e in events if e["detail-type"] in STANDBY_DETAIL_TYPES]


@pytest.fixture()
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": HOME,
    }.items():
        monkeypatch.setenv(name, value)
    main, dr = Site("main"), Site("dr")
    try:
        with mock_aws():
            dynamodb = boto3.client("dynamodb", region_name=HOME)
            create_table(dynamodb, RESULTS)
            create_table(dynamodb, STATE)
            events = boto3.client("events", region_name=HOME)
            events.create_event_bus(Name=BUS)
            sqs = boto3.client("sqs", region_name=HOME)
            url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            events.put_rule(
                Name="capture", EventBusName=BUS, EventPattern=json.dumps({"source": ["quorum-dr"]})
            )
            events.put_targets(Rule="capture", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
            world = World(main, dr, sqs, url)
            yield world
    finally:
        main.stop()
        for site in {dr, *([world.dr] if "world" in locals() else [])}:
            if site.thread.is_alive():
                site.stop()


def test_dr_dies_and_returns_said_once_each_within_three_intervals(world: World) -> None:
    assert world.rounds() == [] and world.rounds() == [], "healthy: nothing is said"

    world.dr.stop()  # the DR server really stops: connection refused from every region
    died_at = world.now
    assert world.rounds() == [], "one failing round is no vote yet"
    said = world.rounds()
    assert [(region, kind) for region, kind, _ in said] == [("us-east-1", "StandbyDown")], (
        "the second region to vote DOWN makes the quorum and says it; the third says nothing"
    )
    detail = said[0][2]
    assert detail.site == "dr" and detail.active_site == "main" and detail.change == "down"
    assert detail.regions == ["eu-west-2", "us-east-1"]
    assert detail.reason.startswith(
        "dr (US East), the standby of booking while main serves, is DOWN: 2 of 3 probe regions "
        "(eu-west-2, us-east-1) saw 2 consecutive failing rounds; failing: health: connect_refused"
    )
    alerted_at = world.now - 30 + 2  # us-east-1's round of this set
    assert alerted_at - died_at <= 3 * 30
    assert detail.down_since is not None and died_at < detail.down_since < alerted_at

    assert world.rounds() == [] and world.rounds() == [], "still down: no repeat"

    world.dr = Site("dr", port=world.dr_port)  # back on its address
    said = world.rounds()
    assert [(region, kind) for region, kind, _ in said] == [("us-east-1", "StandbyRecovered")]
    assert said[0][2].reason.startswith(
        "dr (US East), the standby of booking while main serves, is back UP: 2 of 3 probe regions"
    )
    assert "It had been DOWN since" in said[0][2].reason
    assert world.rounds() == [], "back: said once"


def test_one_region_failing_alone_says_nothing(world: World) -> None:
    """us-west-2 cannot reach dr (its check goes to a closed port: connection refused, for real)."""
    world.configs["us-west-2"] = _config(world.main.port, _free_port())
    for _ in range(5):
        assert world.rounds() == []
    record, version = DynamoStandbyWatch(STATE, region=HOME).standby_record("booking")
    assert record is None and version == 0


def test_two_regions_claiming_the_same_change_make_one_claim(world: World) -> None:
    one, two = DynamoStandbyWatch(STATE, region=HOME), DynamoStandbyWatch(STATE, region=HOME)
    record = StandbyRecord(
        site="dr", down=True, since=T0, said_at=T0, reason="dr is DOWN", region="a", round_id="r"
    )
    assert one.claim_standby_change("booking", record, expected_version=0) is True
    assert (
        two.claim_standby_change("booking", record.model_copy(update={"region": "b"}), expected_version=0)
        is False
    )
    stored, version = two.standby_record("booking")
    assert stored == record and version == 1
    assert two.claim_standby_change("booking", record.model_copy(update={"down": False}), expected_version=1)
    assert one.service_state("booking").active_site == "main"
