"""The site agent against a real PostgreSQL 15 primary and streaming standby, served on loopback
and driven through its real client (`SiteAgentClient`) and the real hook caller.

Each test builds its own pair (operations stop, promote and rewind clusters) and its agents from
an `AgentConfig`, the way `drctl agent` does. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import psycopg2
import pytest
import requests

from quorum_dr.adapters.hooks import HttpHookCaller
from quorum_dr.adapters.secrets import StaticSecrets
from quorum_dr.adapters.site_agent import (
    AgentRefused,
    AgentUnreachable,
    OperationRefused,
    SiteAgentClient,
)
from quorum_dr.agent.config import AgentConfig
from quorum_dr.agent.contract import DatabaseRole, Operation, OperationAnswer, OperationRequest, SiteStatus
from quorum_dr.agent.server import AgentHttpServer, build_server
from quorum_dr.config import Hook
from quorum_dr.signing import SignatureVerifier, signed_headers
from quorum_dr_local.standins.postgres import PgCluster, PgPair, free_port
from quorum_dr_local.standins.site_agents import sandbox_agent_settings
from tests.conftest import ROOT

KEY = "site-agent-key-5c0ffee-never-log-me"
WAIT = 20.0  # every bounded wait on the database
REWIND_GRANTS = (
    "GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO {role}",
    "GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO {role}",
    "GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO {role}",
    "GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO {role}",
    "GRANT pg_checkpoint TO {role}",
)


def lsn(text: str | None) -> int:
    assert text is not None
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass
class Agent:
    cluster: PgCluster
    server: AgentHttpServer
    thread: threading.Thread
    config: AgentConfig
    client: SiteAgentClient

    @property
    def url(self) -> str:
        return self.server.url

    def upstream(self) -> dict[str, object]:
        return {"host": self.cluster.host, "port": self.cluster.port}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def agent_config(cluster: PgCluster, files: Path, state_dir: Path, **extra: object) -> dict[str, object]:
    return sandbox_agent_settings(
        cluster, files, state_dir, key=KEY, port=free_port(), follow_seconds=WAIT, **extra
    )


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    """`start(cluster, state_dir=None, **config)`: an agent for the cluster, serving on loopback."""
    started: list[Agent] = []

    def start(cluster: PgCluster, state_dir: Path | None = None, **extra: object) -> Agent:
        state = state_dir or tmp_path / f"{cluster.name}-state"
        config = AgentConfig.model_validate(agent_config(cluster, tmp_path / cluster.name, state, **extra))
        server = build_server(config)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        verify: bool | str = str(config.tls.cert_file) if config.tls else True
        agent = Agent(cluster, server, thread, config, SiteAgentClient(server.url, KEY, verify=verify))
        started.append(agent)
        return agent

    try:
        yield start
    finally:
        for agent in started:
            agent.stop()


def app_can_log_in(cluster: PgCluster) -> bool:
    try:
        with cluster.connect("app"):
            return True
    except psycopg2.OperationalError as exc:
        assert 'role "app" is not permitted to log in' in str(exc)
        return False


def create_orders(cluster: PgCluster) -> None:
    cluster.sql("CREATE TABLE orders (id serial PRIMARY KEY, note text NOT NULL)", who="app")


def order(cluster: PgCluster, note: str) -> None:
    cluster.sql("INSERT INTO orders (note) VALUES (%s)", (note,), who="app")


def notes(cluster: PgCluster) -> list[str]:
    return [row[0] for row in cluster.sql("SELECT note FROM orders ORDER BY id", dbname="app")]


# -- status, freeze, signatures, idempotency ------------------------------------------------------


def _sigint_as_a_terminal_sends_it() -> None:
    """In the child, before exec: SIGINT back to its default. A shell that starts the test run in
    the background without job control makes it ignored, and Python then never raises
    KeyboardInterrupt: Ctrl-C could not be tested at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_status_of_a_primary_and_its_streaming_standby(
    pg_pair_factory: Callable[..., PgPair], agents: Callable[..., Agent]
) -> None:
    pair = pg_pair_factory()
    main, dr = agents(pair.primary), agents(pair.standby)

    primary, standby = main.client.status(), dr.client.status()

    assert (primary.role, primary.running, primary.timeline, primary.frozen) == (
        DatabaseRole.PRIMARY,
        True,
        1,
        False,
    )
    now = pair.primary.value("SELECT pg_current_wal_lsn()::text")
    assert lsn(primary.current_lsn) <= lsn(now)
    assert primary.reason.startswith(f"primary on timeline 1 at WAL {primary.current_lsn}, accepts writes")
    upstream = f"{pair.primary.host}:{pair.primary.port}"
    assert (standby.role, standby.streaming, standby.following, standby.timeline) == (
        DatabaseRole.STANDBY,
        True,
        upstream,
        1,
    )
    assert standby.lag_bytes is not None and standby.lag_bytes >= 0
    assert standby.reason.startswith(f"standby on timeline 1, streaming from {upstream}, replayed up to ")
    assert standby.current_lsn is None and primary.receive_lsn is None


def test_freeze_ends_the_application_sessions_and_logins_and_unfreeze_gives_them_back(
    pg_pair_factory: Callable[..., PgPair], agents: Callable[..., Agent]
) -> None:
    pair = pg_pair_factory()
    main = agents(pair.primary)
    with pair.primary.connect("app") as session:
        answer = main.client.run("freeze", "t-freeze")
        with pytest.raises(psycopg2.Error):  # the open session was ended
            with session.cursor() as cur:
                cur.execute("SELECT 1")

    assert answer.ok and answer.status.frozen and answer.status.role == DatabaseRole.PRIMARY
    assert answer.reason.startswith(
        "frozen: application role(s) app may not log in (LOGIN taken from app), 1 session(s) ended and "
        "none remain (checked); primary on timeline 1"
    )
    assert not app_can_log_in(pair.primary)
    assert pair.primary.value("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app'") is False

    back = main.client.run("unfreeze", "t-unfreeze")

    assert back.ok and not back.status.frozen
    assert back.reason.startswith("unfrozen: application role(s) app may log in (LOGIN given back to app)")
    assert app_can_log_in(pair.primary)


def test_a_bad_or_replayed_signature_gets_401_and_changes_nothing(
    pg_pair_factory: Callable[..., PgPair], agents: Callable[..., Agent]
) -> None:
    pair = pg_pair_factory()
    main = agents(pair.primary)
    stranger = SiteAgentClient(main.url, "not-the-agent-key", attempts=1)

    with pytest.raises(AgentRefused) as bad:
        stranger.run("freeze", "t-forged")
    assert bad.value.status_code == 401
    assert "signature does not match" in bad.value.reason
    assert app_can_log_in(pair.primary)

    unsigned = requests.get(main.url + "/v1/status", timeout=10)
    assert unsigned.status_code == 401
    assert "missing X-QuorumDR-Timestamp" in unsigned.json()["reason"]

    # A request captured on the wire: it acted once; sent again, it is refused and acts no more.
    body = OperationRequest(operation=Operation.FREEZE, operation_id="t-captured").model_dump_json()
    headers = {
        "Content-Type": "application/json",
        **signed_headers(KEY, "POST", "/v1/operations", body, idempotency_key="t-captured"),
    }
    first = requests.post(main.url + "/v1/operations", data=body, headers=headers, timeout=60)
    assert first.status_code == 200 and first.json()["ok"] is True
    main.client.run("unfreeze", "t-undo")
    assert app_can_log_in(pair.primary)

    replay = requests.post(main.url + "/v1/operations", data=body, headers=headers, timeout=60)

    assert replay.status_code == 401
    assert replay.json() == {"ok": False, "reason": replay.json()["reason"]}
    assert "this request was already received: a replay" in replay.json()["reason"]
    assert app_can_log_in(pair.primary)
    kept = json.loads((main.config.state_dir / "operations.json").read_text())
    assert "t-forged" not in kept and KEY not in json.dumps(kept)


def test_a_repeated_operation_id_acts_once_even_after_a_restart(
    pg_pair_factory: Callable[..., PgPair], agents: Callable[..., Agent]
) -> None:
    pair = pg_pair_factory()
    main = agents(pair.primary)
    first = main.client.run("freeze", "t-once")
    pair.primary.sql("ALTER ROLE app LOGIN")  # undone by hand: a second freeze would show

    again = main.client.run("freeze", "t-once")

    assert (again.replayed, first.replayed) == (True, False)
    assert (again.reason, again.status) == (first.reason, first.status)
    assert app_can_log_in(pair.primary)

    main.stop()
    restarted = agents(pair.primary, state_dir=main.config.state_dir)
    assert restarted.client.run("freeze", "t-once").replayed is True
    assert app_can_log_in(pair.primary)

    with pytest.raises(OperationRefused) as reused:
        restarted.client.run("stop", "t-once")
    assert reused.value.status_code == 409
    assert (
        "operation id t-once was already used for freeze with other params: nothing done"
        in reused.value.reason
    )
    assert pair.primary.is_running()


# -- stop, switchover without rewind, rewind after a divergence ----------------------------------


def test_a_fast_stop_gives_the_final_position_and_the_standby_received_it(
    pg_pair_factory: Callable[..., PgPair], agents: Callable[..., Agent]
) -> None:
    pair = pg_pair_factory()
    main, dr = agents(pair.primary), agents(pair.standby)
    create_orders(pair.primary)
    order(pair.primary, "last before the stop")
    written = main.client.status().current_lsn

    answer = main.client.run("stop", "t-stop")

    stopped = answer.status
    assert answer.ok and (stopped.role, stopped.running, stopped.shutdown_clean) == (
        DatabaseRole.STOPPED,
        False,
        True,
    )
    assert lsn(stopped.checkpoint_lsn) >= lsn(written)
    assert answer.reason == (
        "stopped with pg_ctl stop -m fast: stopped cleanly (cluster state 'shut down'): its final position "
        f"is the shutdown checkpoint {stopped.checkpoint_lsn} on timeline 1; it starts as a primary"
    )
    assert not pair.primary.is_running()
    # The WAL senders shipped everything up to the shutdown checkpoint before the server went.
    pair.standby.wait_until(f"SELECT pg_last_wal_receive_lsn() > '{stopped.checkpoint_lsn}'::pg_lsn", WAIT)
    assert lsn(dr.client.status().receive_lsn) > lsn(stopped.checkpoint_lsn)
    assert main.client.run("stop", "t-stop-again").reason.startswith("already stopped: stopped cleanly")


def test_planned_switchover_the_old_primary_follows_the_promoted_standby_without_rewind(
    pg_pair_factory: Callable[..., PgPair], agents: Callable[..., Agent]
) -> None:
    pair = pg_pair_factory()
    main, dr = agents(pair.primary), agents(pair.standby)
    create_orders(pair.primary)
    order(pair.primary, "before the switch")

    assert main.client.run("freeze", "sw:freeze").ok
    final = main.client.run("stop", "sw:stop").status.checkpoint_lsn
    pair.standby.wait_until(f"SELECT pg_last_wal_receive_lsn() > '{final}'::pg_lsn", WAIT)
    promoted = dr.client.run("promote", "sw:promote")
    order(pair.standby, "after the switch")
    followed = main.client.run("follow", "sw:follow", primary=dr.upstream())

    assert (promoted.status.role, promoted.status.timeline, promoted.status.frozen) == (
        DatabaseRole.PRIMARY,
        2,
        False,
    )
    assert promoted.reason.startswith("promoted with pg_promote: primary on timeline 2")
    assert promoted.reason.endswith(
        "application role(s) app may log in again (the old primary's freeze had replicated to it)"
    )
    new_primary = f"{pair.standby.host}:{pair.standby.port}"
    status = followed.status
    assert followed.ok and (status.role, status.streaming, status.following, status.timeline) == (
        DatabaseRole.STANDBY,
        True,
        new_primary,
        2,
    )
    assert followed.reason.startswith(
        f"follows {new_primary}: standby on timeline 2, streaming from {new_primary}"
    )
    assert "rewound" not in followed.reason
    pair.primary.wait_until(
        "SELECT count(*) = 1 FROM orders WHERE note = 'after the switch'", WAIT, dbname="app"
    )
    assert notes(pair.primary) == ["before the switch", "after the switch"]
    assert dr.client.run("promote", "sw:promote-again").reason.startswith(
        "already a primary, nothing to promote: primary on timeline 2"
    )


def test_rewind_after_a_real_divergence_keeps_the_new_primarys_rows_and_drops_the_old_ones(
    pg_pair_factory: Callable[..., PgPair], agents: Callable[..., Agent]
) -> None:
    pair = pg_pair_factory()
    for grant in REWIND_GRANTS:  # the replication role also rewinds (least privilege, no superuser)
        pair.primary.sql(grant.format(role=pair.primary.roles.replication.username))
    create_orders(pair.primary)
    order(pair.primary, "shared")
    pair.standby.wait_replayed(pair.primary.value("SELECT pg_current_wal_lsn()::text"), WAIT)
    main, dr = agents(pair.primary), agents(pair.standby)
    assert dr.client.run("promote", "dv:promote").ok
    order(pair.primary, "written on the old timeline")  # split brain: both take writes
    order(pair.standby, "written on the new timeline")

    # 409: a running primary that serves writes is not rewound, and nothing changes
    with pytest.raises(OperationRefused) as refused:
        main.client.run("rewind", "dv:rewind", primary=dr.upstream())
    assert refused.value.status_code == 409 and refused.value.answer is not None
    assert refused.value.reason.endswith(
        f"refused to rewind, nothing changed: this is a running primary that serves writes "
        f"({refused.value.answer.status.reason}); freeze it (or stop it) first"
    )
    assert pair.primary.is_running() and not pair.primary.in_recovery()
    assert notes(pair.primary) == ["shared", "written on the old timeline"]

    assert main.client.run("freeze", "dv:freeze").ok
    rewound = main.client.run(
        "rewind", "dv:rewind", primary=dr.upstream()
    )  # the same id: refusals are not kept

    new_primary = f"{pair.standby.host}:{pair.standby.port}"
    status = rewound.status
    assert rewound.ok and (status.role, status.streaming, status.following, status.timeline) == (
        DatabaseRole.STANDBY,
        True,
        new_primary,
        2,
    )
    assert rewound.reason.startswith(f"rewound against {new_primary} (servers diverged at WAL location ")
    assert f"; follows {new_primary}: standby on timeline 2, streaming" in rewound.reason
    assert notes(pair.primary) == ["shared", "written on the new timeline"]
    order(pair.standby, "after the rewind")
    pair.primary.wait_until(
        "SELECT count(*) = 1 FROM orders WHERE note = 'after the rewind'", WAIT, dbname="app"
    )
    # pg_rewind copied the source's configuration files; the agent put the cluster's own back
    assert f"port = {pair.primary.port}" in (pair.primary.data_dir / "postgresql.conf").read_text()
    assert f"port = {pair.standby.port}" not in (pair.primary.data_dir / "postgresql.auto.conf").read_text()


def diverge(pair: PgPair, main: Agent, dr: Agent, prefix: str) -> None:
    """A real split brain: DR promoted while main still takes writes, a row on each timeline."""
    create_orders(pair.primary)
    order(pair.primary, "shared")
    pair.standby.wait_replayed(pair.primary.value("SELECT pg_current_wal_lsn()::text"), WAIT)
    assert dr.client.run("promote", f"{prefix}:promote").ok
    order(pair.primary, "written on the old timeline")
    order(pair.standby, "written on the new timeline")


def test_rebuild_of_a_diverged_old_primary_streams_from_the_new_one_and_keeps_the_old_data_directory(
    pg_pair_factory: Callable[..., PgPair], agents: Callable[..., Agent]
) -> None:
    pair = pg_pair_factory()
    main, dr = agents(pair.primary), agents(pair.standby)
    diverge(pair, main, dr, "rb")
    old_files = sorted(p.name for p in pair.primary.data_dir.iterdir())

    # 409: a running primary that serves writes is not rebuilt, and nothing changes
    with pytest.raises(OperationRefused) as refused:
        main.client.run("rebuild", "rb:rebuild", primary=dr.upstream())
    assert refused.value.status_code == 409 and refused.value.answer is not None
    assert "refused to rebuild, nothing changed: this is a running primary that serves writes" in (
        refused.value.reason
    )
    assert pair.primary.is_running() and not pair.primary.in_recovery()
    assert notes(pair.primary) == ["shared", "written on the old timeline"]
    assert not list(pair.primary.base_dir.glob(f"{pair.primary.name}.before-rebuild-*"))

    assert main.client.run("freeze", "rb:freeze").ok
    rebuilt = main.client.run("rebuild", "rb:rebuild", primary=dr.upstream())

    new_primary = f"{pair.standby.host}:{pair.standby.port}"
    status = rebuilt.status
    assert rebuilt.ok and (status.role, status.streaming, status.following, status.timeline) == (
        DatabaseRole.STANDBY,
        True,
        new_primary,
        2,
    )
    (kept,) = pair.primary.base_dir.glob(f"{pair.primary.name}.before-rebuild-*")
    assert rebuilt.reason.startswith(
        f"rebuilt from a fresh base backup of {new_primary} (pg_basebackup -R -X stream); the old data "
        f"directory is kept at {kept}; follows {new_primary}: standby on timeline 2, streaming"
    )
    # the old cluster is all there, as it was stopped: its files, its diverged timeline 1
    assert sorted(p.name for p in kept.iterdir()) == sorted(set(old_files) - {"postmaster.pid"})
    assert (kept / "global" / "pg_control").is_file() and (kept / "PG_VERSION").read_text() == "15\n"
    assert notes(pair.primary) == ["shared", "written on the new timeline"]
    order(pair.standby, "after the rebuild")
    pair.primary.wait_until(
        "SELECT count(*) = 1 FROM orders WHERE note = 'after the rebuild'", WAIT, dbname="app"
    )
    # the base backup brought the primary's configuration files; the cluster's own are back
    assert f"port = {pair.primary.port}" in (pair.primary.data_dir / "postgresql.conf").read_text()
    assert f"port = {pair.standby.port}" not in (pair.primary.data_dir / "postgresql.auto.conf").read_text()
    assert (pair.primary.data_dir / "standby.signal").exists()
    again = main.client.run("rebuild", "rb:rebuild", primary=dr.upstream())
    assert again.replayed and len(list(pair.primary.base_dir.glob(f"{pair.primary.name}.before-*"))) == 1


def test_a_cluster_without_wal_log_hints_is_not_rewound_and_says_a_rebuild_is_needed(
    pg_pair_factory: Callable[..., PgPair], agents: Callable[..., Agent]
) -> None:
    pair = pg_pair_factory()
    pair.primary.alter_system("wal_log_hints", "off")  # pg_rewind needs it (no data checksums here)
    pair.primary.restart()
    pair.standby.wait_streaming(WAIT)
    main, dr = agents(pair.primary), agents(pair.standby)
    diverge(pair, main, dr, "nr")
    assert main.client.run("freeze", "nr:freeze").ok

    with pytest.raises(OperationRefused) as refused:
        main.client.run("rewind", "nr:rewind", primary=dr.upstream())

    answer = refused.value.answer
    assert refused.value.status_code == 409 and answer is not None and answer.rebuild_needed
    assert answer.reason == (
        "not rewound, nothing changed: this cluster runs with neither wal_log_hints nor data checksums "
        "(pg_controldata), and pg_rewind needs one of them: it cannot be rewound, only rebuilt from a base "
        "backup"
    )
    assert pair.primary.is_running() and not pair.primary.in_recovery()  # checked before the stop
    rebuilt = main.client.run("rebuild", "nr:rebuild", primary=dr.upstream())
    assert rebuilt.ok and rebuilt.status.streaming and rebuilt.status.timeline == 2
    assert notes(pair.primary) == ["shared", "written on the new timeline"]


def test_follow_of_a_primary_that_does_not_answer_is_refused_with_nothing_changed(
    pg_pair_factory: Callable[..., PgPair], agents: Callable[..., Agent]
) -> None:
    pair = pg_pair_factory()
    dr = agents(pair.standby)
    nowhere = {"host": "127.0.0.1", "port": free_port()}

    with pytest.raises(OperationRefused) as refused:
        dr.client.run("follow", "nf:follow", primary=nowhere)

    assert refused.value.status_code == 409
    address = f"127.0.0.1:{nowhere['port']}"
    said = f"not following, nothing changed: cannot open a replication connection to {address}: "
    assert said in refused.value.reason
    assert "Connection refused" in refused.value.reason
    status = dr.client.status()
    assert (status.streaming, status.following) == (True, f"{pair.primary.host}:{pair.primary.port}")


def test_promote_and_unfreeze_of_a_stopped_cluster_are_refused_with_nothing_changed(
    pg_pair_factory: Callable[..., PgPair], agents: Callable[..., Agent]
) -> None:
    pair = pg_pair_factory()
    dr = agents(pair.standby)
    assert dr.client.run("stop", "st:stop").ok

    with pytest.raises(OperationRefused) as promote:
        dr.client.run("promote", "st:promote")
    with pytest.raises(OperationRefused) as freeze:
        dr.client.run("freeze", "st:freeze")

    assert promote.value.reason.endswith(
        "not promoted, nothing changed: the cluster is stopped; start it (as a standby) first; "
        + promote.value.answer.status.reason  # type: ignore[union-attr]
    )
    assert "not frozen, nothing changed: the cluster is stopped" in freeze.value.reason
    assert not pair.standby.is_running()
    started = dr.client.run("start", "st:start")
    assert started.ok and started.status.role == DatabaseRole.STANDBY
    pair.standby.wait_streaming(WAIT)


# -- the hooks -----------------------------------------------------------------------------------


def test_the_fence_main_hook_through_the_real_hook_caller_freezes_and_stops_main_once_per_incident(
    pg_pair_factory: Callable[..., PgPair], agents: Callable[..., Agent]
) -> None:
    pair = pg_pair_factory()
    main, dr = agents(pair.primary), agents(pair.standby)
    caller = HttpHookCaller(StaticSecrets({"quorum-dr/main-agent-key": KEY}), backoff_seconds=0.01)
    fence = Hook(
        url=main.url + "/hooks/fence_main",
        signing_secret="quorum-dr/main-agent-key",
        timeout_seconds=120,
        required=True,
    )

    result = caller.call(
        "fence_main", fence, incident_id="inc-fence-1", service="booking", payload={"service": "booking"}
    )

    assert result.ok and not result.blocking, result.reason
    answer = result.response or {}
    assert answer["ok"] is True and answer["replayed"] is False
    assert answer["reason"].startswith(
        "fenced: frozen: application role(s) app may not log in (LOGIN taken from app)"
    )
    assert (
        "; stopped with pg_ctl stop -m fast: stopped cleanly (cluster state 'shut down')" in answer["reason"]
    )
    status = SiteStatus.model_validate(answer["status"])
    assert (status.role, status.shutdown_clean) == (DatabaseRole.STOPPED, True)
    assert not pair.primary.is_running()

    # the state machine retries: the same incident gets the stored answer, no second fence
    assert main.client.run("start", "after-fence:start").ok
    assert not app_can_log_in(pair.primary)  # the fence holds across a restart
    again = caller.call("fence_main", fence, incident_id="inc-fence-1", service="booking")
    assert again.ok and (again.response or {})["replayed"] is True
    assert pair.primary.is_running()

    before = Hook(
        url=dr.url + "/hooks/before_promote", signing_secret="quorum-dr/main-agent-key", required=True
    )
    ready = caller.call("before_promote", before, incident_id="inc-fence-1", service="booking")
    assert ready.ok and (ready.response or {})["reason"].startswith(
        "before_promote: nothing to do on this site; standby on timeline 1"
    )


# -- the client: retries, redirects, TLS -----------------------------------------------------------


def test_the_client_retries_a_503_with_a_fresh_signature_and_never_a_409(
    post_receiver: Callable[[Callable[[BaseHTTPRequestHandler], None]], str],
) -> None:
    verifier = SignatureVerifier(KEY)
    statuses = [503, 200, 409]
    seen: list[int] = []
    stopped = SiteStatus(role=DatabaseRole.STOPPED, running=False, reason="stopped cleanly")

    def handle(handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        verifier.verify(handler.command, handler.path, dict(handler.headers.items()), body)  # a replay raises
        code = statuses[len(seen)]
        seen.append(code)
        request = OperationRequest.model_validate_json(body)
        answer = OperationAnswer(
            ok=code == 200,
            operation=request.operation,
            operation_id=request.operation_id,
            reason=f"HTTP {code}",
            status=stopped,
        )
        data = answer.model_dump_json().encode()
        handler.send_response(code)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    client = SiteAgentClient(post_receiver(handle), KEY, backoff_seconds=0.01)

    assert client.run("stop", "c-1").reason == "HTTP 200"
    with pytest.raises(OperationRefused) as refused:
        client.run("stop", "c-2")
    assert seen == [503, 200, 409]
    assert refused.value.answer is not None and refused.value.answer.reason == "HTTP 409"


def test_the_client_never_follows_a_redirect_and_names_an_unreachable_agent(
    post_receiver: Callable[[Callable[[BaseHTTPRequestHandler], None]], str],
) -> None:
    def redirect(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(307)
        handler.send_header("Location", "http://127.0.0.1:9/elsewhere")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with pytest.raises(
        AgentRefused, match="a redirect to http://127.0.0.1:9/elsewhere: signed requests never"
    ):
        SiteAgentClient(post_receiver(redirect), KEY).run("stop", "r-1")
    nobody = SiteAgentClient(f"http://127.0.0.1:{free_port()}", KEY, attempts=2, backoff_seconds=0.01)
    with pytest.raises(AgentUnreachable, match="cannot connect to the agent at .*; gave up after 2 attempt"):
        nobody.status()


def test_the_agent_serves_https_with_its_certificate(
    pg_primary: PgCluster, agents: Callable[..., Agent], tmp_path: Path
) -> None:
    cert, key = tmp_path / "agent.crt", tmp_path / "agent.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    agent = agents(pg_primary, tls={"cert_file": str(cert), "key_file": str(key)})

    assert agent.url.startswith("https://127.0.0.1:")
    assert agent.client.status().role == DatabaseRole.PRIMARY
    with pytest.raises(AgentUnreachable, match="cannot connect"):  # a client that does not trust it
        SiteAgentClient(agent.url, KEY, attempts=1).status()


# -- drctl agent --------------------------------------------------------------------------------


def test_drctl_agent_serves_until_ctrl_c_exits_130_and_logs_one_line_per_request(
    pg_primary: PgCluster, tmp_path: Path
) -> None:
    config = agent_config(pg_primary, tmp_path / "files", tmp_path / "state")
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(config))
    url = f"http://127.0.0.1:{config['listen']['port']}"  # type: ignore[index]
    process = subprocess.Popen(
        [sys.executable, "-m", "quorum_dr.cli", "agent", "--config", str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_as_a_terminal_sends_it,
    )
    try:
        client = SiteAgentClient(url, KEY, attempts=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                status = client.status()
                break
            except AgentUnreachable:
                assert process.poll() is None and time.monotonic() < deadline, "the agent did not come up"
                time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)

    assert status.role == DatabaseRole.PRIMARY
    assert process.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert "127.0.0.1 GET /v1/status -> 200: primary on timeline 1 at WAL" in stderr
    assert KEY not in stderr and pg_primary.roles.superuser.password not in stderr
