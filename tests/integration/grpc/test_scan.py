"""Scan: a server stream of key batches, with deadlines and cancellation honoured."""

from __future__ import annotations

import time

import grpc
import pytest

from tests.integration.grpc.stubs import code_of

MANY = 50_000


def _fill(stub, pb, n: int, prefix: str = "k") -> None:
    KV = pb.BatchSetRequest.KeyValue
    items = [KV(key=f"{prefix}{i}", value=b"v") for i in range(n)]
    assert stub.BatchSet(pb.BatchSetRequest(items=items), timeout=60).success_count == n


def _scan_calls(r) -> int:
    return r.info("commandstats").get("cmdstat_scan", {}).get("calls", 0)


def test_scan_streams_the_whole_keyspace_in_batches_of_count(stub, pb):
    _fill(stub, pb, 1050)
    batches = [list(b.keys) for b in stub.Scan(pb.ScanRequest(count=100))]
    assert [len(b) for b in batches] == [100] * 10 + [50]
    keys = [k for b in batches for k in b]
    assert sorted(keys) == sorted(f"k{i}" for i in range(1050))  # each key once


def test_scan_with_a_pattern(stub, pb, r):
    _fill(stub, pb, 300, "user:")
    r.set("oauth:token:1", "x")
    r.set("oauth:token:2", "x")
    keys = [k for b in stub.Scan(pb.ScanRequest(pattern="oauth:token:*", count=10)) for k in b.keys]
    assert sorted(keys) == ["oauth:token:1", "oauth:token:2"]
    assert list(stub.Scan(pb.ScanRequest(pattern="nothing:*"))) == []


def test_scan_defaults_and_invalid_count(stub, pb):
    _fill(stub, pb, 250)
    assert [len(b.keys) for b in stub.Scan(pb.ScanRequest())] == [100, 100, 50]  # count 0 = 100
    code, details = code_of(lambda req: list(stub.Scan(req)), pb.ScanRequest(count=-1))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "count: must be >= 0, got -1")


def test_a_short_deadline_ends_a_long_scan_and_the_server_stays_healthy(stub, pb, r):
    _fill(stub, pb, MANY)
    start = _scan_calls(r)
    received = 0
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        for batch in stub.Scan(pb.ScanRequest(count=1), timeout=0.3):
            received += len(batch.keys)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 5
    assert 0 < received < MANY
    _assert_walk_stopped(r, start)
    assert stub.HealthCheck(pb.HealthCheckRequest()).status == pb.HealthCheckResponse.HEALTHY
    assert stub.Get(pb.GetRequest(key="k1")).value == b"v"


def test_a_cancelled_scan_stops_on_the_server(stub, pb, r):
    _fill(stub, pb, MANY)
    start = _scan_calls(r)
    call = stub.Scan(pb.ScanRequest(count=1))
    for _ in range(20):
        next(call)
    call.cancel()
    with pytest.raises(grpc.RpcError) as info:
        for _ in call:
            pass
    assert info.value.code() == grpc.StatusCode.CANCELLED
    _assert_walk_stopped(r, start)
    assert r.ping()


def _assert_walk_stopped(r, start: int) -> None:
    """The server-side walk (one SCAN per step) stopped before covering the keyspace."""
    time.sleep(0.2)
    before = _scan_calls(r)
    time.sleep(0.3)
    after = _scan_calls(r)
    assert after == before, f"the Scan kept running: {after - before} more SCAN steps"
    assert before - start < MANY  # it did not just finish the whole walk
