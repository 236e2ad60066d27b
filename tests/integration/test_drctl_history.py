"""`drctl history` against the state table in moto: the incidents newest first by when they
started (ids do not sort by time), each with its figures; one incident with its whole timeline."""

from __future__ import annotations

import json

import pytest

from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.cli import main as drctl
from tests.integration.conftest import STATE_TABLE as TABLE

T = 1_796_270_000  # 2026-12-03 03:53:20Z


@pytest.fixture
def store(moto_state_store: DynamoStateStore) -> DynamoStateStore:
    return moto_state_store


def recorded(store: DynamoStateStore) -> None:
    """A month of one service: a switchover to DR and back, a rejoin, tonight's automatic failover."""
    store.update_incident(
        "booking",
        "switchover-booking-20261101T100000Z-aaaaaa",
        {
            "kind": "switchover",
            "service": "booking",
            "trigger": "manual",
            "target": "dr",
            "requested_by": "arn:aws:iam::123456789012:user/alice",
            "reason": "maintenance on London",
            "started_at": T - 2_700_000,
            "finished_at": T - 2_699_970,
            "status": "CLOSED",
            "outcome": "switched_over",
            "switchover": {"write_outage_seconds": 3.2, "replayed_position": "0/5000028"},
        },
        timeline={"at": T - 2_699_990, "step": "switch", "reason": "app.example.com now points at dr"},
    )
    store.update_incident(
        "booking",
        "rejoin-booking-main-2026-11-20",
        {
            "service": "booking",
            "started_at": T - 1_100_000,
            "outcome": "rejoined",
            "rejoin": {"site": "main"},
        },
        timeline=None,
    )
    incident = "auto-1796270496-a7f31b85"
    store.update_incident(
        "booking",
        incident,
        {
            "service": "booking",
            "trigger": "auto",
            "target": "dr",
            "started_at": T + 496,
            "detected_at": T + 490,
            "status": "CLOSED",
            "outcome": "failed_over",
            "detection_seconds": 6.1,
            "rto_seconds": 10.5,
            "data_loss": {
                "loss_bytes": 0,
                "bound_bytes": 0,
                "bound_seconds": 0.0,
                "evidence": "final_position",
            },
        },
        timeline={"at": T + 497, "step": "gates", "reason": "automatic failover of booking may proceed"},
    )
    store.update_incident(
        "booking",
        incident,
        {},
        # a reason quoting a database's error: its escape sequence must not reach the terminal
        timeline={"at": T + 503, "step": "fence", "reason": "main unreachable: \x1b[31mconnection refused"},
    )


def test_history_lists_incidents_newest_first_with_their_figures(
    store: DynamoStateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded(store)

    assert drctl(["history", "--service", "booking", "--table", TABLE]) == 0

    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "booking: 3 incident(s), newest first"
    assert lines[1].split()[:3] == ["started", "(UTC)", "incident"]
    assert [line.split()[2] for line in lines[2:]] == [
        "auto-1796270496-a7f31b85",
        "rejoin-booking-main-2026-11-20",
        "switchover-booking-20261101T100000Z-aaaaaa",
    ]
    tonight = lines[2]
    assert tonight.startswith("2026-12-03 04:01:36Z")
    for words in ("failover", "auto", "dr", "failed_over", "6.1 s", "10.5 s", "0 B"):
        assert words in tonight, words
    assert "rejoin" in lines[3] and "rejoined" in lines[3]
    assert "switchover" in lines[4] and "3.2 s" in lines[4] and "0 (final position replayed)" in lines[4]


def test_history_limit_and_json(store: DynamoStateStore, capsys: pytest.CaptureFixture[str]) -> None:
    recorded(store)

    assert drctl(["history", "--service", "booking", "--table", TABLE, "--limit", "1", "--json"]) == 0

    (only,) = json.loads(capsys.readouterr().out)
    assert only["incident_id"] == "auto-1796270496-a7f31b85" and only["kind"] == "failover"
    assert (only["rto_seconds"], only["detection_seconds"], only["data_loss"]) == (10.5, 6.1, "0 B")
    assert only["last_step"] == "main unreachable: [31mconnection refused", "the escape character is gone"


def test_one_incident_in_full_with_its_timeline_cleaned(
    store: DynamoStateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded(store)

    code = drctl(
        ["history", "--service", "booking", "--table", TABLE, "--incident", "auto-1796270496-a7f31b85"]
    )

    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("incident auto-1796270496-a7f31b85 of booking: failover, auto, to dr\n")
    assert "  figures   detection 6.1 s, RTO 10.5 s, data loss 0 B\n" in out
    timeline = out.split("  timeline\n", 1)[1].splitlines()
    assert timeline == [
        "    2026-12-03 04:01:37Z  gates: automatic failover of booking may proceed",
        "    2026-12-03 04:01:43Z  fence: main unreachable: [31mconnection refused",
    ]
    assert "\x1b" not in out


@pytest.mark.parametrize(
    ("argv", "code", "said"),
    [
        (["--incident", "no-such-incident"], 2, "booking has no incident 'no-such-incident'"),
        (["--incident", "bad id!"], 2, "is not an incident id"),
        (["--limit", "0"], 2, "0 is not between 1 and 1000"),
        (["--limit", "lots"], 2, "'lots' is not a whole number"),
    ],
)
def test_history_bad_input_is_one_line_and_exit_2(
    store: DynamoStateStore, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, said: str
) -> None:
    recorded(store)
    try:
        got = drctl(["history", "--service", "booking", "--table", TABLE, *argv])
    except SystemExit as exc:  # argparse's own refusal
        got = int(exc.code or 0)
    err = capsys.readouterr().err
    assert got == code and said in err
    assert "Traceback" not in err


def test_an_empty_history_says_so(store: DynamoStateStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert drctl(["history", "--service", "booking", "--table", TABLE]) == 0
    assert capsys.readouterr().out == "booking: no incidents recorded\n"


def test_an_unknown_service_is_refused_before_any_read(
    store: DynamoStateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert drctl(["history", "--service", "no-such-service", "--table", TABLE]) == 2
    assert "no-such-service" in capsys.readouterr().err
