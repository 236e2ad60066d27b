"""The manual start model: one model for drctl and the state machine; malformed input is rejected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quorum_dr.failover.errors import InvalidInput
from quorum_dr.failover.request import parse_manual, start_incident
from tests.fakes import make_config

GOOD = {"service": "booking", "to": "dr", "reason": "London is down", "requested_by": "alice"}
FIELDS = set(GOOD) | {"dry_run", "allow_data_loss", "skip_confirm", "incident_id"}


def test_a_good_request_parses_with_safe_defaults() -> None:
    request = parse_manual(GOOD)
    assert (request.dry_run, request.allow_data_loss, request.skip_confirm) == (False, False, False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"to": "main"}, "to: Input should be 'dr' or 'cold'"),
        ({"reason": "   "}, "reason: must not be blank"),
        ({"force": True}, "force: unknown field"),
        ({"dry_run": "yes"}, "dry_run: Input should be a valid boolean"),
        ({"incident_id": "has spaces"}, "incident_id: String should match pattern"),
    ],
)
def test_invariant_9_bad_manual_input_is_rejected_with_a_clear_message(change: dict, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_manual({**GOOD, **change})
    assert message in str(caught.value)


def test_a_cold_target_needs_a_configured_cold_site() -> None:
    config = make_config()
    incident = start_incident(
        {**GOOD, "to": "cold"}, execution_name="inc-1", started_at=None, config=config, now=1.0
    )
    assert incident.target == "cold" and incident.mode_action == "proceed"


malformed = st.one_of(
    st.dictionaries(
        st.text(max_size=8), st.none() | st.booleans() | st.integers() | st.text(max_size=8), max_size=6
    ).filter(lambda d: not set(d) >= {"service", "to", "reason", "requested_by"}),
    st.builds(
        lambda k, v: {**GOOD, k: v},
        st.text(min_size=1, max_size=8).filter(lambda k: k not in FIELDS),
        st.integers(),
    ),
    st.builds(lambda v: {**GOOD, "to": v}, st.text(max_size=6).filter(lambda v: v not in ("dr", "cold"))),
    st.lists(st.integers(), max_size=3),
    st.text(max_size=10),
)


@settings(max_examples=150, deadline=None)
@given(malformed)
def test_invariant_9_fuzzed_malformed_input_is_always_rejected(data: object) -> None:
    with pytest.raises(InvalidInput):
        start_incident(data, execution_name="inc-fuzz", started_at=None, config=make_config(), now=1.0)
