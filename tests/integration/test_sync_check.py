"""The database sync check against real PostgreSQL 15 clusters (`quorum_dr/adapters/postgres_sync.py`,
`quorum_dr/domain/sync_check.py`, DESIGN invariant 7): a primary and its streaming standby are in sync
once the standby replayed the primary's final position; a row or a table the standby lacks, a
diverged timeline, writes during the check and a table over the size limit are each said, with the
table or the timeline named."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import psycopg2
import pytest
import yaml
from moto import mock_aws

from quorum_dr.adapters.dynamodb_state import DynamoStateStore
from quorum_dr.adapters.postgres_sync import (
    SyncCheckError,
    SyncSite,
    digest_side,
    run_sync_check,
    settle_position,
    wait_replayed,
)
from quorum_dr.adapters.tables import create_table
from quorum_dr.cli import main as drctl
from quorum_dr.cli.exit_codes import EXIT_OK, EXIT_REFUSED
from quorum_dr.config import SyncCheck
from quorum_dr.domain.results import parse_lsn
from quorum_dr.domain.sync_check import SyncEvidence, TimelineSwitch, judge_sync
from quorum_dr.probes.postgres import PgEndpoint
from quorum_dr_local.standins.postgres import PgCluster, PgPair, free_port, make_standby


def site(name: str, cluster: PgCluster, who: str = "superuser") -> SyncSite:
    creds = getattr(cluster.roles, who)
    return SyncSite(
        name, PgEndpoint(cluster.host, cluster.port, cluster.app_db, creds.username, creds.password)
    )


def sites(pair: PgPair) -> tuple[SyncSite, SyncSite]:
    return site("main", pair.primary), site("dr", pair.standby)


def shop(primary: PgCluster, schema: str = "public", orders: int = 300) -> None:
    """Two tables in `schema`: orders (a primary key over two columns, one of them text) and a log
    without a primary key."""
    primary.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}", dbname=primary.app_db)
    primary.sql(
        f"CREATE TABLE {schema}.orders (shop text, id int, note text, at timestamptz DEFAULT "
        "'2024-05-01 12:00+02', price numeric, PRIMARY KEY (shop, id))",
        dbname=primary.app_db,
    )
    primary.sql(
        f"INSERT INTO {schema}.orders (shop, id, note, price) SELECT CASE WHEN n %% 2 = 0 THEN 'Zürich' "
        "ELSE 'athens' END, n, 'order ' || n, n * 1.25 FROM generate_series(1, %s) n",
        (orders,),
        dbname=primary.app_db,
    )
    primary.sql(f"CREATE TABLE {schema}.event_log (kind text, payload jsonb)", dbname=primary.app_db)
    primary.sql(
        f"INSERT INTO {schema}.event_log SELECT 'booked', jsonb_build_object('n', n) "
        "FROM generate_series(1, 20) n",
        dbname=primary.app_db,
    )


def replayed(pair: PgPair) -> str:
    position = str(pair.primary.value("SELECT pg_current_wal_lsn()::text"))
    pair.standby.wait_replayed(position)
    return position


def history_switchpoint(promoted: PgCluster) -> str:
    """Where timeline 1 ended, as the promoted cluster's pg_wal/00000002.history says."""
    text = promoted.value("SELECT convert_from(pg_read_binary_file('pg_wal/00000002.history'), 'UTF8')")
    return str(text).split()[1]


def paused_behind(pair: PgPair, write: str) -> None:
    """Pause the standby's replay, then run `write` on the primary: received, not replayed."""
    replayed(pair)
    pair.standby.pause_replay()
    pair.primary.sql(write, dbname=pair.primary.app_db)
    position = pair.primary.value("SELECT pg_current_wal_lsn()::text")
    pair.standby.wait_until(f"SELECT pg_last_wal_receive_lsn() >= '{position}'::pg_lsn")


def test_a_standby_that_replayed_the_final_position_is_in_sync_with_the_hash_it_claims(
    pg_pair_factory: Callable[..., PgPair],
) -> None:
    pg_pair = pg_pair_factory()
    # A session's own settings must not change the hash: the check fixes them (TimeZone here).
    pg_pair.primary.sql("ALTER DATABASE app SET TimeZone = 'America/New_York'")
    shop(pg_pair.primary, "sync_in_sync")
    final = replayed(pg_pair)
    active, target = sites(pg_pair)

    evidence = run_sync_check("booking", active, target, SyncCheck(schema="sync_in_sync"))

    verdict = evidence.verdict
    assert verdict.in_sync, verdict.reason
    assert verdict.reason == (
        f"in sync: dr replayed main's final position {evidence.final_position} on timeline 1, shares its "
        "timeline history (timeline 1 only), and 2 tables agree in rows and ordered hash"
    )
    assert evidence.active.position == evidence.target.position == evidence.final_position
    assert parse_lsn(evidence.final_position) >= parse_lsn(final)
    assert (evidence.active.role, evidence.target.role) == ("primary", "standby")
    assert [t.name for t in evidence.target.tables] == ["sync_in_sync.event_log", "sync_in_sync.orders"]
    orders = evidence.target.table("sync_in_sync.orders")
    assert orders is not None and orders.rows == 300 and orders.ordered_by == "primary key (shop, id)"
    assert pg_pair.standby.value("SELECT count(*) FROM sync_in_sync.orders", dbname="app") == 300
    # The hash is what the module says: SHA-256 over each row's text hash, in key order ("C" collation),
    # whatever the session's time zone.
    with pg_pair.standby.connect(dbname="app") as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM sync_in_sync.orders WHERE at::text LIKE '%-04'")
        assert cur.fetchone()[0] == 300  # what a session in New York would have hashed
        cur.execute("SET TimeZone = 'UTC'")
        cur.execute(
            'SELECT sha256(textsend(ROW(o.*)::text)) FROM sync_in_sync.orders o ORDER BY shop COLLATE "C", id'
        )
        expected = hashlib.sha256(b"".join(bytes(row[0]) for row in cur.fetchall())).hexdigest()
    assert orders.digest == expected
    assert evidence.active.table("sync_in_sync.orders") == orders
    log = evidence.active.table("sync_in_sync.event_log")
    assert log is not None and log.ordered_by == "row text (no primary key)" and log.rows == 20


def test_a_settled_position_is_the_one_both_digests_find_when_taken_at_the_same_time(
    pg_pair_factory: Callable[..., PgPair],
) -> None:
    """What the switchover does with writes frozen: settle the primary (its reads' hint-bit WAL
    written and flushed first), then digest it and the standby side by side. Fresh rows have no
    hint bits yet, and after a checkpoint their pages are clean: with wal_log_hints, the first read
    of each writes a full-page image, which the settle writes (and flushes) before the digests."""
    pair = pg_pair_factory()
    shop(pair.primary, "sync_settled")
    pair.primary.sql("CHECKPOINT")
    settings = SyncCheck(schema="sync_settled")
    active, target = sites(pair)

    position = settle_position(active, settings)

    assert wait_replayed(target, position, 30).reached
    with ThreadPoolExecutor(max_workers=2) as pool:
        on_active = pool.submit(digest_side, active, settings)
        on_target = pool.submit(digest_side, target, settings)
        primary, standby = on_active.result(), on_target.result()
    assert primary.position == primary.position_after == position, "the primary's digest wrote no WAL"
    assert standby.position == position
    verdict = judge_sync(primary, standby, final_position=position)
    assert verdict.in_sync, verdict.reason


def test_a_row_the_standby_has_not_replayed_is_named_and_the_check_passes_once_it_has(
    pg_pair_factory: Callable[..., PgPair],
) -> None:
    pair = pg_pair_factory()
    shop(pair.primary, orders=3)
    paused_behind(pair, "UPDATE public.orders SET note = 'changed on main' WHERE id = 2")
    active, target = sites(pair)
    settings = SyncCheck(timeout_seconds=1)

    evidence = run_sync_check("booking", active, target, settings)

    verdict = evidence.verdict
    assert (verdict.in_sync, verdict.code) == (False, "not_replayed")
    assert verdict.reason.startswith(
        f"dr is not in sync with main: it replayed up to {evidence.target.position} on timeline 1, short "
        f"of main's final position {evidence.final_position} on timeline 1; the tables differ too: table "
        "public.orders has 3 rows on both sites but its ordered hash differs"
    )
    assert pair.standby.value("SELECT note FROM public.orders WHERE id = 2", dbname="app") == "order 2"

    pair.standby.resume_replay()
    again = run_sync_check("booking", active, target, settings)
    assert again.verdict.in_sync, again.verdict.reason
    assert again.target.table("public.orders") == again.active.table("public.orders")


def test_a_table_only_the_primary_has_is_missing_on_the_target(
    pg_pair_factory: Callable[..., PgPair],
) -> None:
    pair = pg_pair_factory()
    shop(pair.primary)
    paused_behind(
        pair, "CREATE TABLE public.refunds (id int PRIMARY KEY); INSERT INTO public.refunds VALUES (1)"
    )
    active, target = sites(pair)

    for settings in (
        SyncCheck(timeout_seconds=1),
        SyncCheck(tables=["public.orders", "public.refunds"], timeout_seconds=1),
    ):
        evidence = run_sync_check("booking", active, target, settings)
        assert evidence.verdict.code == "not_replayed"
        assert evidence.verdict.reason.endswith(
            "the tables differ too: table public.refunds is on main but not on dr"
        )
        assert evidence.target.absent == (["public.refunds"] if settings.tables else [])


def test_a_promoted_standby_has_diverged_both_ways_and_its_history_is_read_from_the_file(
    pg_pair_factory: Callable[..., PgPair],
) -> None:
    pair = pg_pair_factory()
    shop(pair.primary)
    replayed(pair)
    pair.standby.sql("SELECT pg_promote(true, 60)")
    switchpoint = history_switchpoint(pair.standby)
    pair.standby.sql("INSERT INTO public.orders (shop, id) VALUES ('dr', 1)", dbname="app")
    pair.primary.sql("INSERT INTO public.orders (shop, id) VALUES ('main', 1)", dbname="app")
    main, dr = sites(pair)
    settings = SyncCheck(timeout_seconds=2)

    evidence = run_sync_check("booking", main, dr, settings)

    assert evidence.verdict.code == "timeline_diverged"
    assert evidence.verdict.reason.startswith(
        "dr is not in sync with main: the timelines diverged: dr is on timeline 2, which is not in main's "
        "timeline 1 only; the tables differ too: table public.orders has"
    )
    assert evidence.target.role == "primary"
    assert evidence.target.timeline_history == [TimelineSwitch(timeline=1, switchpoint=switchpoint)]
    assert evidence.target.history_note == "history read from pg_wal/00000002.history"

    back = run_sync_check("booking", dr, main, settings)

    assert back.verdict.code == "timeline_diverged"
    assert back.verdict.reason.startswith(
        f"main is not in sync with dr: the timelines diverged: main is at {back.target.position} on "
        f"timeline 1, past the point where dr's history left timeline 1 ({switchpoint}): main holds WAL "
        "dr does not have"
    )


@pytest.fixture
def promoted_with_standby(
    pg_pair_factory: Callable[..., PgPair],
) -> Iterator[tuple[PgCluster, PgCluster, str]]:
    """dr promoted (timeline 2) with a new standby of its own: (dr, its standby, the switch point)."""
    pair = pg_pair_factory()
    shop(pair.primary)
    replayed(pair)
    pair.standby.sql("SELECT pg_promote(true, 60)")
    switchpoint = history_switchpoint(pair.standby)
    pair.primary.stop()
    follower = make_standby(pair.standby, name=f"{pair.standby.name}-follower")
    try:
        pair.standby.sql("INSERT INTO public.orders (shop, id) VALUES ('dr', 1)", dbname="app")
        yield pair.standby, follower, switchpoint
    finally:
        follower.destroy()


def test_a_standby_of_the_promoted_site_shares_its_timeline_history(
    promoted_with_standby: tuple[PgCluster, PgCluster, str],
) -> None:
    dr, follower, switchpoint = promoted_with_standby
    evidence = run_sync_check("booking", site("dr", dr), site("main", follower), SyncCheck())

    assert evidence.verdict.in_sync, evidence.verdict.reason
    assert (
        f"main replayed dr's final position {evidence.final_position} on timeline 2, shares its timeline "
        f"history (timeline 1 -> 2 at {switchpoint})" in evidence.verdict.reason
    )
    assert evidence.target.timeline_source == "the WAL receiver"
    assert evidence.target.history_note == "history read from pg_wal/00000002.history"


def test_a_role_that_may_not_read_the_history_file_cannot_show_the_history_is_shared(
    promoted_with_standby: tuple[PgCluster, PgCluster, str],
) -> None:
    dr, follower, _ = promoted_with_standby
    dr.sql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO quorum_monitor", dbname="app")

    evidence = run_sync_check(
        "booking", site("dr", dr, "monitor"), site("main", follower, "monitor"), SyncCheck()
    )

    assert (evidence.verdict.in_sync, evidence.verdict.code) == (False, "history_unknown")
    assert evidence.verdict.reason.startswith(
        "main is not in sync with dr: the timeline history of dr could not be read (reading "
        "pg_wal/00000002.history was refused (permission denied for function pg_read_binary_file); the "
        "role needs pg_read_server_files or EXECUTE on pg_read_binary_file)"
    )
    assert evidence.active.timeline == 2 and evidence.active.timeline_history is None


def _write_while_the_check_waits(pair: PgPair, holding: threading.Event, done: threading.Event) -> None:
    """Hold a lock the check's digest of main needs; once it waits for it, commit a write and let go."""
    conn = psycopg2.connect(**pair.primary.conn_params(dbname="app"), connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute("LOCK TABLE public.a_gate IN ACCESS EXCLUSIVE MODE")
            holding.set()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not done.is_set():
                waiting = pair.primary.value(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'quorum-dr-sync-check' "
                    "AND wait_event_type = 'Lock'"
                )
                if waiting:
                    break
                time.sleep(0.02)
            cur.execute("INSERT INTO public.orders (shop, id) VALUES ('during the check', 1)")
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize("attempts", [1, 3])
def test_writes_during_the_check_are_inconclusive_unless_a_second_attempt_sees_none(
    pg_pair_factory: Callable[..., PgPair], attempts: int
) -> None:
    pair = pg_pair_factory()
    shop(pair.primary)
    pair.primary.sql("CREATE TABLE public.a_gate (id int PRIMARY KEY)", dbname="app")
    before = replayed(pair)
    holding, done = threading.Event(), threading.Event()
    writer = threading.Thread(target=_write_while_the_check_waits, args=(pair, holding, done), daemon=True)
    writer.start()
    assert holding.wait(10)
    try:
        evidence = run_sync_check("booking", *sites(pair), SyncCheck(timeout_seconds=20), attempts=attempts)
    finally:
        done.set()
        writer.join(25)
    assert pair.primary.value(
        "SELECT count(*) FROM public.orders WHERE shop = 'during the check'", dbname="app"
    )

    if attempts == 1:
        assert (evidence.verdict.in_sync, evidence.verdict.code) == (False, "active_moved")
        assert evidence.verdict.reason == (
            f"inconclusive: the active site took writes during the check (main's WAL position moved from "
            f"{evidence.final_position} to {evidence.active.position_after}); freeze writes first (drctl "
            "switchover does)"
        )
        assert parse_lsn(evidence.final_position) >= parse_lsn(before)
    else:
        assert evidence.verdict.in_sync, evidence.verdict.reason
        assert evidence.attempts >= 2
        orders = evidence.target.table("public.orders")
        assert orders is not None and orders.rows == 301  # the write during the first attempt is there


def test_a_table_over_the_size_limit_is_counted_not_hashed_and_the_evidence_says_why(pg_pair: PgPair) -> None:
    shop(pg_pair.primary, "sync_size_limit", orders=2000)
    pg_pair.primary.sql("CREATE UNLOGGED TABLE sync_size_limit.scratch (n int)", dbname="app")
    pg_pair.primary.sql(
        'CREATE TABLE sync_size_limit."Odd.Name" (id int PRIMARY KEY); '
        'INSERT INTO sync_size_limit."Odd.Name" VALUES (1)',
        dbname="app",
    )
    replayed(pg_pair)
    # Each side's own size: a standby's free space map is filled by replay while the primary's
    # waits for a vacuum, and autovacuum may add a page of map on either side later; sizes only grow.
    size = pg_pair.standby.value("SELECT pg_table_size('sync_size_limit.orders')", dbname="app")
    settings = SyncCheck(schema="sync_size_limit", max_table_bytes=16384)

    evidence = run_sync_check("booking", *sites(pg_pair), settings)

    orders = evidence.target.table("sync_size_limit.orders")
    assert orders is not None and orders.bytes is not None
    assert (orders.rows, orders.digest) == (2000, None)
    assert orders.bytes >= size > 16384
    assert (
        orders.skipped
        == f"pg_table_size {orders.bytes / 1024:.1f} KiB is over max_table_bytes 16 KiB".replace(".0 ", " ")
    )
    log = evidence.target.table("sync_size_limit.event_log")
    assert log is not None and log.digest is not None  # 8 KiB: under the limit
    assert evidence.verdict.in_sync
    assert evidence.verdict.reason.endswith(
        f"2 tables agree in rows and ordered hash; 1 table compared by row count only "
        f"(sync_size_limit.orders: {orders.skipped})"
    )
    assert evidence.active.table("sync_size_limit.scratch") is None  # unlogged: not in the default list
    odd = evidence.target.table("sync_size_limit.Odd.Name")  # a quoted name with a dot is still one table
    assert odd is not None and odd.rows == 1 and odd.digest is not None

    named = run_sync_check(
        "booking", *sites(pg_pair), SyncCheck(tables=["sync_size_limit.scratch", "sync_size_limit.orders"])
    )
    scratch = named.target.table("sync_size_limit.scratch")
    assert scratch is not None and scratch.rows is None
    assert scratch.skipped == "unlogged: its rows are not replicated and a standby cannot read them"
    assert named.verdict.in_sync, named.verdict.reason


def test_the_wait_for_replay_is_bounded_and_says_how_far_it_got(
    pg_pair_factory: Callable[..., PgPair],
) -> None:
    pair = pg_pair_factory()
    shop(pair.primary)
    paused_behind(pair, "DELETE FROM public.orders WHERE id < 100")
    final = str(pair.primary.value("SELECT pg_current_wal_lsn()::text"))

    wait = wait_replayed(site("dr", pair.standby), final, 0.5)

    assert (wait.reached, wait.role) == (False, "standby")
    assert wait.reason == f"dr replayed only {wait.position} of {final} within 0.5 s"
    pair.standby.resume_replay()
    assert wait_replayed(site("dr", pair.standby), final, 10).reached


def test_an_unreachable_site_is_one_line_without_the_password() -> None:
    endpoint = PgEndpoint("127.0.0.1", free_port(), "app", "admin", "s3cret-not-shown")
    with pytest.raises(SyncCheckError) as raised:
        digest_side(SyncSite("dr", endpoint), SyncCheck(timeout_seconds=2))
    message = str(raised.value)
    assert message.startswith(
        f"dr's database at 127.0.0.1:{endpoint.port}/app: connecting failed (connect_refused"
    )
    assert "s3cret" not in message and "\n" not in message


# ---------------------------------------------------------------------------------------------
# drctl sync-check
# ---------------------------------------------------------------------------------------------

REGION = "eu-west-2"
STATE_TABLE = "quorum-dr-state"
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "watchdog.example.yaml"


def drctl_files(tmp_path: Path, pair: PgPair, sync_check: dict[str, Any]) -> tuple[Path, Path, list[str]]:
    """A config whose booking database is the pair, a secrets file with its credentials, and the
    passwords that must appear in no output."""
    data: Any = yaml.safe_load(EXAMPLE.read_text())
    database = data["services"][0]["database"]
    for name, cluster in (("main", pair.primary), ("dr", pair.standby)):
        database[name] = {
            "host": cluster.host,
            "port": cluster.port,
            "dbname": cluster.app_db,
            "credentials_secret": f"test/{name}/db-admin",
        }
    database["sync_check"] = sync_check
    config = tmp_path / "watchdog.yaml"
    config.write_text(yaml.safe_dump(data))
    secret = pair.primary.roles.superuser.as_secret()
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"test/main/db-admin": secret, "test/dr/db-admin": secret}))
    return config, secrets, [secret["password"]]


@pytest.fixture
def state_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoStateStore]:
    for key, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("STATE_TABLE_NAME", raising=False)
    with mock_aws():
        create_table(boto3.client("dynamodb", region_name=REGION), STATE_TABLE)
        yield DynamoStateStore(STATE_TABLE, resource=boto3.resource("dynamodb", region_name=REGION))


def set_active(store: DynamoStateStore, site: str) -> None:
    state = store.get_state("booking")
    store.put_state(
        {**state, "service": "booking", "active_site": site, "status": "HEALTHY"},
        expected_version=state.get("version", 0),
    )


def test_drctl_sync_check_reads_the_active_site_from_the_state_table_and_records_the_evidence(
    pg_pair: PgPair, tmp_path: Path, state_store: DynamoStateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(pg_pair.primary, "sync_cli")
    replayed(pg_pair)
    config, secrets, passwords = drctl_files(tmp_path, pg_pair, {"schema": "sync_cli"})
    set_active(state_store, "main")
    argv = ["sync-check", "--service", "booking", "--config", str(config), "--secrets-file", str(secrets)]

    assert drctl([*argv, "--table", STATE_TABLE, "--incident", "maint-7"]) == EXIT_OK

    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("sync check of booking: main is active, dr is the target; final position ")
    assert lines[1].startswith(f"  main  primary  {pg_pair.primary.host}:{pg_pair.primary.port}/app  WAL ")
    assert "timeline 1 only (the current WAL file; timeline 1 has no history file)" in lines[1]
    assert lines[2].startswith(f"  dr    standby  {pg_pair.standby.host}:{pg_pair.standby.port}/app  WAL ")
    assert lines[3].split() == ["TABLE", "ROWS", "main", "ROWS", "dr", "HASH", "main", "HASH", "dr"]
    orders = [line.split() for line in lines if line.strip().startswith("sync_cli.orders")]
    assert len(orders) == 1 and orders[0][1:3] == ["300", "300"] and orders[0][3] == orders[0][4]
    assert lines[-1].startswith("in sync: dr replayed main's final position ")
    assert all(p not in out + err for p in passwords) and err == ""
    record = state_store.get_incident("booking", "maint-7")
    assert record is not None and record.sync_check is not None
    evidence = SyncEvidence.model_validate(record.sync_check)
    assert evidence.verdict.in_sync and evidence.verdict.reason == lines[-1]
    assert [(e.step, e.reason) for e in record.timeline] == [("sync_check", lines[-1])]

    # The state says dr is active: dr's database is a standby, so the check refuses to call it in sync.
    set_active(state_store, "dr")
    assert drctl([*argv, "--table", STATE_TABLE, "--json"]) == EXIT_REFUSED
    refused = SyncEvidence.model_validate_json(capsys.readouterr().out)
    assert (refused.active.site, refused.verdict.code) == ("dr", "active_not_primary")


def test_drctl_sync_check_exit_1_names_what_differs_and_a_database_it_cannot_read(
    pg_pair: PgPair, tmp_path: Path, state_store: DynamoStateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(pg_pair.primary, "sync_cli_differs")
    replayed(pg_pair)
    config, secrets, passwords = drctl_files(
        tmp_path, pg_pair, {"tables": ["sync_cli_differs.orders", "sync_cli_differs.refunds"]}
    )
    argv = ["sync-check", "--service", "booking", "--config", str(config), "--secrets-file", str(secrets)]

    assert drctl([*argv, "--active", "main"]) == EXIT_REFUSED
    out, _ = capsys.readouterr()
    assert out.splitlines()[-1] == (
        "dr is not in sync with main: table sync_cli_differs.refunds is on neither main nor dr"
    )
    assert ["sync_cli_differs.refunds", "absent", "absent", "absent", "absent"] in [
        line.split() for line in out.splitlines()
    ]

    data: Any = yaml.safe_load(config.read_text())
    data["services"][0]["database"]["dr"]["port"] = free_port()
    config.write_text(yaml.safe_dump(data))
    code = drctl([*argv, "--active", "main", "--table", STATE_TABLE, "--incident", "maint-8"])
    out, err = capsys.readouterr()
    assert code == EXIT_REFUSED and out == ""
    assert (
        err.startswith("sync check of booking failed: dr's database at 127.0.0.1:")
        and "connect_refused" in err
    )
    assert len(err.splitlines()) == 1 and all(p not in err for p in passwords)
    record = state_store.get_incident("booking", "maint-8")
    assert record is not None and [(e.step, e.reason) for e in record.timeline] == [
        ("sync_check", err.strip())
    ]
