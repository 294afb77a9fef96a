"""BatchGet, BatchSet, BatchDelete — small, large, and their failure modes."""

from __future__ import annotations

import grpc

from tests.integration.grpc.conftest import LIMIT_KEY_BYTES, LIMIT_MESSAGE_BYTES
from tests.integration.grpc.stubs import code_of

LARGE = 50_000  # 50 chunks of the server's 1000 keys per gate call


def _items(pb, n: int, prefix: str = "k", ttl: int = 0, value: bytes = b"v") -> list:
    KV = pb.BatchSetRequest.KeyValue
    return [KV(key=f"{prefix}{i}", value=value + b"%d" % i, ttl_seconds=ttl) for i in range(n)]


def test_batch_set_get_delete(stub, pb, r):
    items = [
        pb.BatchSetRequest.KeyValue(key="a", value=b"1"),
        pb.BatchSetRequest.KeyValue(key="b", value=b"2", ttl_seconds=60),
        pb.BatchSetRequest.KeyValue(key="c", value=b"\x00"),
    ]
    got = stub.BatchSet(pb.BatchSetRequest(items=items))
    assert (got.success_count, got.failed_count) == (3, 0)
    assert r.ttl("a") == -1 and r.ttl("b") == 60
    values = stub.BatchGet(pb.BatchGetRequest(keys=["a", "b", "c", "missing", "a"])).values
    assert dict(values) == {"a": b"1", "b": b"2", "c": b"\x00"}  # missing keys are absent
    assert stub.BatchDelete(pb.BatchDeleteRequest(keys=["a", "c", "missing"])).deleted_count == 2
    assert r.keys("*") == [b"b"]


def test_empty_batches(stub, pb):
    assert dict(stub.BatchGet(pb.BatchGetRequest()).values) == {}
    got = stub.BatchSet(pb.BatchSetRequest())
    assert (got.success_count, got.failed_count) == (0, 0)
    assert stub.BatchDelete(pb.BatchDeleteRequest()).deleted_count == 0


def test_wrong_type_keys_are_absent_from_batch_get(stub, pb, r):
    r.set("s", "v")
    r.sadd("set", "m")
    assert dict(stub.BatchGet(pb.BatchGetRequest(keys=["s", "set"])).values) == {"s": b"v"}


def test_large_batches(stub, pb, r):
    got = stub.BatchSet(pb.BatchSetRequest(items=_items(pb, LARGE, ttl=600)), timeout=60)
    assert (got.success_count, got.failed_count) == (LARGE, 0)
    assert r.dbsize() == LARGE
    assert r.get(f"k{LARGE - 1}") == b"v%d" % (LARGE - 1) and 590 < r.ttl("k7") <= 600
    keys = [f"k{i}" for i in range(0, LARGE + 100)]
    values = stub.BatchGet(pb.BatchGetRequest(keys=keys), timeout=60).values
    assert len(values) == LARGE and values["k12345"] == b"v12345"
    deleted = stub.BatchDelete(pb.BatchDeleteRequest(keys=keys), timeout=60).deleted_count
    assert deleted == LARGE and r.dbsize() == 0


def test_an_invalid_item_rejects_the_whole_batch(stub, pb, r):
    items = _items(pb, 2500)
    items[2100].key = ""
    code, details = code_of(stub.BatchSet, pb.BatchSetRequest(items=items))
    assert (code, details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "items[2100].key: must not be empty",
    )
    items[2100].key = "fine"
    items[7].ttl_seconds = -1
    code, details = code_of(stub.BatchSet, pb.BatchSetRequest(items=items))
    assert details == "items[7].ttl_seconds: must be >= 0, got -1"
    assert r.dbsize() == 0  # nothing written
    r.set("keep", "1")
    code, details = code_of(stub.BatchDelete, pb.BatchDeleteRequest(keys=["keep", ""]))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "keys[1]: must not be empty")
    assert r.get("keep") == b"1"
    code, details = code_of(stub.BatchGet, pb.BatchGetRequest(keys=["", "keep"]))
    assert details == "keys[0]: must not be empty"


def test_items_the_store_refuses_are_counted_as_failed(limits_stub, pb):
    long_key = "x" * (LIMIT_KEY_BYTES + 1)
    items = [
        pb.BatchSetRequest.KeyValue(key="ok1", value=b"1"),
        pb.BatchSetRequest.KeyValue(key=long_key, value=b"2"),
        pb.BatchSetRequest.KeyValue(key="ok2", value=b"3"),
    ]
    got = limits_stub.BatchSet(pb.BatchSetRequest(items=items))
    assert (got.success_count, got.failed_count) == (2, 1)
    code, details = code_of(limits_stub.Set, pb.SetRequest(key=long_key, value=b"v"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "key is too large" in details


def test_message_size_limits(limits_stub, pb):
    # A request over grpc.max_message_bytes is refused by gRPC itself ...
    big = b"x" * (LIMIT_MESSAGE_BYTES + 1)
    code, _ = code_of(limits_stub.Set, pb.SetRequest(key="big", value=big))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # ... and a BatchGet whose answer would be over it says so, readably.
    value = b"y" * (LIMIT_MESSAGE_BYTES // 4)
    for i in range(5):
        limits_stub.Set(pb.SetRequest(key=f"v{i}", value=value))
    code, details = code_of(
        limits_stub.BatchGet, pb.BatchGetRequest(keys=[f"v{i}" for i in range(5)])
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "grpc.max_message_bytes" in details
    assert len(limits_stub.BatchGet(pb.BatchGetRequest(keys=["v0", "v1"])).values) == 2
