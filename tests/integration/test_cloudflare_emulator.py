"""The official Cloudflare SDK against the emulator: envelope, paging that ends, edits, tokens, faults."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cloudflare
import httpx
import pytest

from quorum_dr_local.standins.cloudflare_emulator import CloudflareEmulator, Fault

TOKEN = "test-token-edit"
READ_TOKEN = "test-token-read"
ZONE = "zone-1"
ACCOUNT = "acct-1"


def seed() -> dict[str, object]:
    records = [
        {"id": f"r{i}", "name": f"h{i}.example.com", "type": "A", "content": f"10.0.0.{i}", "proxied": True}
        for i in range(7)
    ]
    records.append({"id": "txt", "name": "h1.example.com", "type": "TXT", "content": "hello"})
    return {
        "tokens": {TOKEN: "edit", READ_TOKEN: "read"},
        "zones": {ZONE: {"name": "example.com", "records": records}},
        "accounts": {
            ACCOUNT: {
                "pools": [
                    {"id": "pool-main", "enabled": True, "origins": [{"address": "127.0.0.1:8081"}]},
                    {"id": "pool-dr", "enabled": False, "origins": [{"address": "127.0.0.1:8082"}]},
                ]
            }
        },
    }


@pytest.fixture
def emulator() -> Iterator[CloudflareEmulator]:
    with CloudflareEmulator(seed()) as running:
        yield running


@pytest.fixture
def client(emulator: CloudflareEmulator) -> cloudflare.Cloudflare:
    return cloudflare.Cloudflare(api_token=TOKEN, base_url=emulator.base_url, max_retries=0)


def test_the_sdk_pager_lists_every_record_and_stops_at_the_first_empty_page(
    emulator: CloudflareEmulator, client: cloudflare.Cloudflare
) -> None:
    records = list(client.dns.records.list(zone_id=ZONE, per_page=3))
    assert [r.id for r in records] == ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "txt"]
    pages = [e["query"].get("page", "1") for e in emulator.requests("GET")]
    assert pages == ["1", "2", "3", "4"]  # page 4 is empty: that is what ends the pager


def test_a_list_page_carries_the_envelope_and_result_info(emulator: CloudflareEmulator) -> None:
    answer = httpx.get(
        f"{emulator.base_url}/zones/{ZONE}/dns_records",
        params={"per_page": 5, "page": 2},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    body = answer.json()
    assert set(body) == {"success", "errors", "messages", "result", "result_info"}
    assert body["success"] is True and body["errors"] == []
    assert body["result_info"] == {"page": 2, "per_page": 5, "count": 3, "total_count": 8, "total_pages": 2}


def test_list_filters_by_exact_name_and_type(client: cloudflare.Cloudflare) -> None:
    found = list(client.dns.records.list(zone_id=ZONE, name={"exact": "h1.example.com"}, type="A"))
    assert [(r.id, r.type) for r in found] == [("r1", "A")]


def test_edit_changes_the_record_and_is_counted_as_one_write(
    emulator: CloudflareEmulator, client: cloudflare.Cloudflare
) -> None:
    edited = client.dns.records.edit(
        "r2", zone_id=ZONE, name="h2.example.com", type="A", ttl=1, content="10.9.9.9", proxied=True
    )
    assert edited is not None and edited.content == "10.9.9.9"
    fetched = client.dns.records.get("r2", zone_id=ZONE)
    assert fetched is not None and fetched.content == "10.9.9.9" and fetched.proxied is True
    assert emulator.writes_to("r2") == 1 and emulator.total_writes() == 1


def test_edit_without_ttl_is_refused_as_the_real_api_does(emulator: CloudflareEmulator) -> None:
    answer = httpx.patch(
        f"{emulator.base_url}/zones/{ZONE}/dns_records/r2",
        json={"name": "h2.example.com", "type": "A", "content": "10.9.9.9"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["message"] == "DNS Validation Error: ttl required"
    assert emulator.record(ZONE, "r2")["content"] == "10.0.0.2"
    assert emulator.total_writes() == 0


def test_pools_get_and_edit(emulator: CloudflareEmulator, client: cloudflare.Cloudflare) -> None:
    pool = client.load_balancers.pools.get("pool-dr", account_id=ACCOUNT)
    assert pool.enabled is False and pool.origins and pool.origins[0].address == "127.0.0.1:8082"
    edited = client.load_balancers.pools.edit("pool-dr", account_id=ACCOUNT, enabled=True)
    assert edited.enabled is True
    assert emulator.pool(ACCOUNT, "pool-dr")["enabled"] is True
    assert emulator.writes_to("pool-dr") == 1


def test_missing_token_is_401_and_unknown_token_403(emulator: CloudflareEmulator) -> None:
    anonymous = httpx.get(f"{emulator.base_url}/zones/{ZONE}/dns_records/r1")
    assert anonymous.status_code == 401
    stranger = cloudflare.Cloudflare(api_token="not-a-token", base_url=emulator.base_url, max_retries=0)
    with pytest.raises(cloudflare.PermissionDeniedError) as refused:
        stranger.dns.records.get("r1", zone_id=ZONE)
    assert refused.value.body == {
        "success": False,
        "errors": [{"code": 10000, "message": "Authentication error"}],
        "messages": [],
        "result": None,
    }


def test_a_read_only_token_may_read_but_not_edit(emulator: CloudflareEmulator) -> None:
    reader = cloudflare.Cloudflare(api_token=READ_TOKEN, base_url=emulator.base_url, max_retries=0)
    assert reader.load_balancers.pools.get("pool-main", account_id=ACCOUNT).enabled is True
    with pytest.raises(cloudflare.PermissionDeniedError):
        reader.load_balancers.pools.edit("pool-main", account_id=ACCOUNT, enabled=False)
    assert emulator.pool(ACCOUNT, "pool-main")["enabled"] is True


def test_fact_the_sdk_returns_none_for_http_200_with_success_false(
    emulator: CloudflareEmulator, client: cloudflare.Cloudflare
) -> None:
    emulator.add_fault(Fault(kind="success_false"))
    assert client.dns.records.get("r1", zone_id=ZONE) is None
    assert client.dns.records.get("r1", zone_id=ZONE) is not None  # the fault was for one request


def test_faults_programmed_over_the_admin_endpoint(
    emulator: CloudflareEmulator, client: cloudflare.Cloudflare
) -> None:
    added = httpx.post(
        f"{emulator.url}/__admin/faults",
        json=[{"kind": "rate_limit", "count": 2, "retry_after": 7, "method": "PATCH"}],
    )
    assert added.status_code == 200
    assert client.dns.records.get("r1", zone_id=ZONE) is not None  # a GET does not match the fault
    for _ in range(2):
        with pytest.raises(cloudflare.RateLimitError) as limited:
            client.dns.records.edit(
                "r1", zone_id=ZONE, name="h1.example.com", type="A", ttl=1, content="1.1.1.1"
            )
        assert limited.value.response.headers["retry-after"] == "7"
    client.dns.records.edit("r1", zone_id=ZONE, name="h1.example.com", type="A", ttl=1, content="1.1.1.1")
    log = httpx.get(f"{emulator.url}/__admin/log").json()
    assert [(e["method"], e["status"], e["fault"]) for e in log] == [
        ("GET", 200, None),
        ("PATCH", 429, "rate_limit"),
        ("PATCH", 429, "rate_limit"),
        ("PATCH", 200, None),
    ]
    assert httpx.get(f"{emulator.url}/__admin/writes").json() == {"total": 1, "by_id": {"r1": 1}}


def test_server_errors_forbidden_and_latency_faults(
    emulator: CloudflareEmulator, client: cloudflare.Cloudflare
) -> None:
    emulator.add_fault(Fault(kind="server_error", status=503))
    with pytest.raises(cloudflare.InternalServerError):
        client.dns.records.get("r1", zone_id=ZONE)
    emulator.add_fault(Fault(kind="forbidden"))
    with pytest.raises(cloudflare.PermissionDeniedError):
        client.dns.records.get("r1", zone_id=ZONE)
    emulator.add_fault(Fault(kind="latency", latency_seconds=0.05))
    assert client.dns.records.get("r1", zone_id=ZONE) is not None
    assert [e["status"] for e in emulator.requests()] == [503, 403, 200]


def test_a_bad_fault_is_refused_over_the_admin_endpoint(emulator: CloudflareEmulator) -> None:
    answer = httpx.post(f"{emulator.url}/__admin/faults", json={"kind": "meteor"})
    assert answer.status_code == 400
    assert "unknown fault kind 'meteor'" in answer.json()["error"]
    assert emulator.fault_list() == []


def test_the_emulator_runs_as_a_process_and_saves_its_state(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps(seed()))
    ready = tmp_path / "port"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "quorum_dr_local.standins.cloudflare_emulator",
            "--state",
            str(state),
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):  # bounded wait for the port file
            if ready.exists() and ready.read_text():
                break
            time.sleep(0.05)
        base_url = f"http://127.0.0.1:{ready.read_text()}/client/v4"
        client = cloudflare.Cloudflare(api_token=TOKEN, base_url=base_url, max_retries=0)
        client.dns.records.edit(
            "r3", zone_id=ZONE, name="h3.example.com", type="A", ttl=1, content="10.3.3.3"
        )
        saved = json.loads(state.read_text())
        assert [r["content"] for r in saved["zones"][ZONE]["records"] if r["id"] == "r3"] == ["10.3.3.3"]
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
