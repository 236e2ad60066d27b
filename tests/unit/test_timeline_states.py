"""The timeline's state panel: one row per runbook phase, labels that do not overlap."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import matplotlib
import pytest

from quorum_dr.state_machines import PHASES, phase_of
from quorum_dr_local.drill.timeline import Event, _label_states, _plot_states, _state_spans, render_timeline

T0 = 1_700_000_000.0
# A hot failover as the drill sees it: bursts of states a few milliseconds apart, then long tasks.
HOT_PATH = [
    (15.20, "ValidateInput"), (15.21, "IsDryRun"), (15.22, "AcquireIncidentLock"), (15.23, "CheckGates"),
    (15.25, "GatesOpen"), (15.25, "SkipConfirmation"), (15.25, "StartConfirmation"),
    (15.26, "ConfirmOutageRound"), (16.9, "CountConfirmRound"), (16.9, "ConfirmVerdict"),
    (16.91, "DecideScenario"), (17.0, "ScenarioChosen"), (17.0, "ModeGate"), (17.01, "MarkFailingOver"),
    (17.1, "HotOrCold"), (17.1, "CheckDrReplica"), (18.5, "ReplicaReady"), (18.5, "WaitForReplay"),
    (19.0, "ReplayCaughtUp"), (19.0, "FenceMain"), (20.0, "PromoteDrDatabase"), (23.2, "DatabaseWritable"),
    (23.2, "SwitchEdgeToDr"), (26.0, "VerifyThroughPublicHostname"), (27.0, "Verified"),
    (27.0, "RecordIncident"), (28.0, "NotifyOutcome"), (29.0, "SetActiveSite"), (29.5, "ReleaseLock"),
    (29.8, "FailedOver"),
]  # fmt: skip
SECOND = [(31.3, "ValidateInput"), (31.4, "IsDryRun"), (31.5, "AcquireIncidentLock"), (31.8, "CheckGates"),
          (32.3, "GatesOpen"), (32.3, "StopGatesClosed"), (32.4, "GatesClosed")]  # fmt: skip


def events() -> list[Event]:
    out = [Event(T0, "run_started", {"scenario": "main-outage", "regions": ["eu-west-2"], "quorum": 1})]
    for execution, path in (("auto-1", HOT_PATH), ("auto-2", SECOND)):
        out += [Event(T0 + t, "state", {"state": name, "execution": execution}) for t, name in path]
    out.append(Event(T0 + 45, "run_finished", {}))
    return sorted(out, key=lambda e: e.t)


def test_each_state_is_a_span_in_its_phase_row_until_the_next_state_of_its_execution() -> None:
    rows, spans = _state_spans(events(), T0)
    assert rows == list(PHASES)
    assert len(spans) == len(HOT_PATH) + len(SECOND)
    for span in spans:
        assert rows[span.row] == phase_of(span.name)
    promote = next(s for s in spans if s.name == "PromoteDrDatabase")
    assert (promote.begin, promote.end, promote.last) == (pytest.approx(20.0), pytest.approx(23.2), False)
    # The second execution's ValidateInput ends at its own next state, not at the first one's.
    second = [s for s in spans if s.execution == "auto-2"]
    assert (second[0].name, second[0].end) == ("ValidateInput", pytest.approx(31.4))
    assert [s.name for s in spans if s.last] == ["FailedOver", "GatesClosed"]


def test_names_the_phase_table_does_not_know_get_their_own_row() -> None:
    rows, spans = _state_spans([Event(T0, "state", {"state": "ConfirmOutage"})], T0)
    assert rows == [*PHASES, "other"] and spans[0].row == len(PHASES)


def test_the_labels_do_not_overlap_and_name_most_states() -> None:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True, height_ratios=[2, 1.2, 3.4, 1.4])
    try:
        axes[0].plot([-1, 45], [0, 0])  # the other panels set the shared x range
        spans = _plot_states(axes[2], events(), T0)
        figure.tight_layout()
        _label_states(axes[2], spans)
        renderer = figure.canvas.get_renderer()
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in axes[2].texts]
        overlapping = [(a, b) for (a, box_a), (b, box_b) in combinations(boxes, 2) if box_a.overlaps(box_b)]
        assert not overlapping
        shown = {name for name, _ in boxes}
        # Where each execution ended is always named.
        assert {"ValidateInput", "PromoteDrDatabase", "FailedOver", "GatesClosed"} <= shown
        assert len(shown) >= 0.6 * len({s.name for s in spans})
        # Every label sits in the band of its own phase's row.
        for text in axes[2].texts:
            row = PHASES.index(phase_of(text.get_text()) or "")
            assert row - 0.5 < text.get_position()[1] < row + 0.5
    finally:
        plt.close(figure)


def test_the_timeline_renders_with_the_phase_panel(tmp_path: Path) -> None:
    png = render_timeline(events(), tmp_path / "timeline.png", title="drill main-outage").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
