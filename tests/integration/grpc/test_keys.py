"""Set, Get, Delete, Exists, GetTTL — and the same keys seen through RESP."""

from __future__ import annotations

import time

import grpc
import redis

from tests.integration.grpc.stubs import code_of

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def test_set_then_get_with_and_without_ttl(stub, pb):
    assert stub.Set(pb.SetRequest(key="session:a", value=b"\x00\xffbin", ttl_seconds=100)).success
    got = stub.Get(pb.GetRequest(key="session:a"))
    assert (got.found, got.value, got.ttl_seconds) == (True, b"\x00\xffbin", 100)
    stub.Set(pb.SetRequest(key="session:b", value=b"forever"))  # ttl_seconds 0 = no expiry
    got = stub.Get(pb.GetRequest(key="session:b"))
    assert (got.found, got.value, got.ttl_seconds) == (True, b"forever", -1)


def test_get_of_a_missing_key_is_found_false_not_an_error(stub, pb):
    got = stub.Get(pb.GetRequest(key="missing"))
    assert (got.found, got.value) == (False, b"")


def test_set_overwrites_and_drops_an_old_ttl(stub, pb):
    stub.Set(pb.SetRequest(key="k", value=b"1", ttl_seconds=50))
    stub.Set(pb.SetRequest(key="k", value=b"2"))
    assert stub.GetTTL(pb.GetTTLRequest(key="k")).ttl_seconds == -1
    assert stub.Get(pb.GetRequest(key="k")).value == b"2"


def test_delete_and_exists(stub, pb):
    stub.Set(pb.SetRequest(key="k", value=b"v"))
    assert stub.Exists(pb.ExistsRequest(key="k")).exists is True
    assert stub.Delete(pb.DeleteRequest(key="k")).deleted is True
    assert stub.Delete(pb.DeleteRequest(key="k")).deleted is False
    assert stub.Exists(pb.ExistsRequest(key="k")).exists is False


def test_get_ttl_follows_redis(stub, pb, r):
    stub.Set(pb.SetRequest(key="exp", value=b"v", ttl_seconds=30))
    stub.Set(pb.SetRequest(key="keep", value=b"v"))
    assert stub.GetTTL(pb.GetTTLRequest(key="exp")).ttl_seconds == 30
    assert stub.GetTTL(pb.GetTTLRequest(key="keep")).ttl_seconds == -1
    assert stub.GetTTL(pb.GetTTLRequest(key="nope")).ttl_seconds == -2
    assert r.ttl("exp") == 30


def test_a_key_expires(stub, pb):
    stub.Set(pb.SetRequest(key="short", value=b"v", ttl_seconds=1))
    assert stub.Get(pb.GetRequest(key="short")).found
    time.sleep(1.1)
    assert not stub.Get(pb.GetRequest(key="short")).found
    assert stub.GetTTL(pb.GetTTLRequest(key="short")).ttl_seconds == -2


def test_keys_are_shared_with_resp(stub, pb, r: redis.Redis):
    """Cross-door: written over gRPC, read with redis-py, and the other way round."""
    stub.Set(pb.SetRequest(key="oauth:token:x", value=b'{"user_id":"u1"}', ttl_seconds=60))
    assert r.get("oauth:token:x") == b'{"user_id":"u1"}'
    assert 55 <= r.ttl("oauth:token:x") <= 60
    r.set("django:session:abc", b"pickled\x00data", ex=120)
    got = stub.Get(pb.GetRequest(key="django:session:abc"))
    assert (got.found, got.value, got.ttl_seconds) == (True, b"pickled\x00data", 120)
    r.set("unicode:ключ", "значение")
    assert stub.Get(pb.GetRequest(key="unicode:ключ")).value == "значение".encode()
    assert stub.Delete(pb.DeleteRequest(key="django:session:abc")).deleted
    assert r.exists("django:session:abc") == 0


def test_invalid_arguments(stub, pb, r):
    for call, req in (
        (stub.Get, pb.GetRequest(key="")),
        (stub.Set, pb.SetRequest(key="", value=b"v")),
        (stub.Delete, pb.DeleteRequest()),
        (stub.Exists, pb.ExistsRequest()),
        (stub.GetTTL, pb.GetTTLRequest()),
    ):
        code, details = code_of(call, req)
        assert (code, details) == (INVALID, "key: must not be empty")
    code, details = code_of(stub.Set, pb.SetRequest(key="k", value=b"v", ttl_seconds=-5))
    assert (code, details) == (INVALID, "ttl_seconds: must be >= 0, got -5")
    assert r.exists("k") == 0


def test_wrong_type_is_invalid_argument_with_the_redis_text(stub, pb, r):
    r.hset("h", "f", "v")
    code, details = code_of(stub.Get, pb.GetRequest(key="h"))
    assert code == INVALID
    assert details == "WRONGTYPE Operation against a key holding the wrong kind of value"


def test_ttl_beyond_what_redis_accepts_is_invalid_argument(stub, pb):
    code, details = code_of(stub.Set, pb.SetRequest(key="k", value=b"v", ttl_seconds=2**62))
    assert code == INVALID and "invalid expire time" in details
