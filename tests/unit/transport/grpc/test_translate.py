"""Request → argv and reply → response translation."""

from __future__ import annotations

import grpc
import orjson
import pytest

from tokenginx.transport.grpc import tokenginx_pb2 as pb
from tokenginx.transport.grpc import translate as tr
from tokenginx.transport.grpc.errors import RpcError


def invalid(fn, *args) -> str:
    with pytest.raises(RpcError) as info:
        fn(*args)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return info.value.message


def test_set_argv() -> None:
    assert tr.set_argv("k", b"v", 0) == [b"SET", b"k", b"v"]
    assert tr.set_argv("ключ", b"\x00", 60) == [b"SET", "ключ".encode(), b"\x00", b"EX", b"60"]
    assert invalid(tr.set_argv, "", b"v", 0) == "key: must not be empty"
    assert invalid(tr.set_argv, "k", b"v", -1) == "ttl_seconds: must be >= 0, got -1"
    assert (
        invalid(tr.set_argv, "k", b"v", -1, "items[3].")
        == "items[3].ttl_seconds: must be >= 0, got -1"
    )


def test_batch_helpers() -> None:
    KV = pb.BatchSetRequest.KeyValue
    tr.check_items([KV(key="a"), KV(key="b", ttl_seconds=5)])
    assert (
        invalid(tr.check_items, [KV(key="a"), KV(key="")], 1000)
        == "items[1001].key: must not be empty"
    )
    assert tr.key_list(["a", "b"]) == ["a", "b"]
    assert invalid(tr.key_list, ["a", "b", ""]) == "keys[2]: must not be empty"
    assert tr.keys_argv(b"MGET", ["a", "b"]) == [b"MGET", b"a", b"b"]
    assert list(tr.chunks(list(range(5)), 2)) == [(0, [0, 1]), (2, [2, 3]), (4, [4])]
    assert list(tr.chunks([], 2)) == []


def test_scan() -> None:
    assert tr.scan_count(0) == tr.DEFAULT_SCAN_COUNT
    assert tr.scan_count(7) == 7
    assert tr.scan_count(10**9) == tr.MAX_SCAN_COUNT
    assert invalid(tr.scan_count, -1) == "count: must be >= 0, got -1"
    assert tr.scan_argv(b"0", "", 10) == [b"SCAN", b"0", b"COUNT", b"10"]
    assert tr.scan_argv(b"17", "*", 10) == [b"SCAN", b"17", b"COUNT", b"10"]
    assert tr.scan_argv(b"0", "oauth:*", 5) == [b"SCAN", b"0", b"MATCH", b"oauth:*", b"COUNT", b"5"]


def test_ttl_from_pttl_rounds_like_ttl() -> None:
    assert [tr.ttl_from_pttl(ms) for ms in (-2, -1, 0, 499, 500, 1499, 60_000)] == [
        -2,
        -1,
        0,
        0,
        1,
        1,
        60,
    ]


def test_oauth_argv() -> None:
    req = pb.SetOAuthTokenRequest(
        token_id="t",
        user_id="u",
        scope="a b",
        client_id="c",
        ttl_seconds=60,
        metadata={"ip": "1.2.3.4"},
    )
    assert tr.oauth_token_set_argv(req) == [
        b"OAUTH.TOKEN.SET",
        b"t",
        b"u",
        b"a b",
        b"EXPIRES_IN",
        b"60",
        b"CLIENT_ID",
        b"c",
        b"METADATA",
        b'{"ip":"1.2.3.4"}',
    ]
    # ttl 0 = the protocol default (no EXPIRES_IN); empty user and scope are allowed
    assert tr.oauth_token_set_argv(pb.SetOAuthTokenRequest(token_id="t")) == [
        b"OAUTH.TOKEN.SET",
        b"t",
        b"",
        b"",
    ]
    assert invalid(tr.oauth_token_set_argv, pb.SetOAuthTokenRequest(user_id="u")) == (
        "token_id: must not be empty"
    )
    assert tr.token_argv(b"OAUTH.TOKEN.INTROSPECT", pb.IntrospectTokenRequest(token="x")) == [
        b"OAUTH.TOKEN.INTROSPECT",
        b"x",
    ]
    assert tr.token_argv(
        b"OAUTH.TOKEN.REVOKE", pb.RevokeTokenRequest(token="x", token_type_hint="refresh_token")
    ) == [b"OAUTH.TOKEN.REVOKE", b"x", b"TOKEN_TYPE_HINT", b"refresh_token"]


def test_saml_and_cas_argv() -> None:
    req = pb.SetSAMLSessionRequest(
        session_index="i",
        name_id="n",
        assertion=b"PHM+",
        name_id_format="f",
        ttl_seconds=5,
        attributes={"a": "b"},
    )
    assert tr.saml_session_set_argv(req) == [
        b"SAML.SESSION.SET",
        b"i",
        b"n",
        b"PHM+",
        b"EXPIRES_IN",
        b"5",
        b"NAME_ID_FORMAT",
        b"f",
        b"ATTRIBUTES",
        b'{"a":"b"}',
    ]
    bad = pb.SetSAMLSessionRequest(session_index="i", name_id="n", assertion=b"\xff")
    assert invalid(tr.saml_session_set_argv, bad).startswith("assertion: must be UTF-8")
    assert tr.tgt_set_argv(pb.SetTGTRequest(tgt_id="T", user_id="u")) == [
        b"CAS.TGT.SET",
        b"T",
        b"u",
    ]
    assert tr.st_set_argv(pb.SetSTRequest(st_id="S", tgt_id="T", service="s", ttl_seconds=9)) == [
        b"CAS.ST.SET",
        b"S",
        b"T",
        b"s",
        b"EXPIRES_IN",
        b"9",
    ]
    assert tr.st_validate_argv(pb.ValidateSTRequest(st_id="S", service="s")) == [
        b"CAS.ST.VALIDATE",
        b"S",
        b"s",
    ]
    assert (
        invalid(tr.st_set_argv, pb.SetSTRequest(st_id="S", service="s"))
        == "tgt_id: must not be empty"
    )


def test_json_records_to_responses() -> None:
    token = orjson.dumps(
        {
            "token_id": "t",
            "user_id": "u",
            "client_id": None,
            "scope": "s",
            "metadata": {"k": "v"},
            "created_at": 10,
            "expires_at": 20,
        }
    )
    assert tr.oauth_token_response(token) == pb.GetOAuthTokenResponse(
        found=True, user_id="u", scope="s", created_at=10, expires_at=20, metadata={"k": "v"}
    )
    assert tr.oauth_token_response(None) == pb.GetOAuthTokenResponse(found=False)
    assert tr.introspection_response(b'{"active":false}') == pb.IntrospectTokenResponse()
    active = tr.introspection_response(b'{"active":true,"scope":"s","sub":"u","exp":5,"iat":1}')
    assert (active.active, active.sub, active.exp, active.username) == (True, "u", 5, "")
    saml = tr.saml_session_response(
        orjson.dumps({"name_id": "n", "assertion": "PHM+", "attributes": {"g": ["a", "b"], "n": 1}})
    )
    assert (saml.assertion, dict(saml.attributes)) == (b"PHM+", {"g": '["a","b"]', "n": "1"})
    assert (
        tr.st_validation_response(b'{"valid":false,"code":"INVALID_TICKET"}')
        == pb.ValidateSTResponse()
    )
    ok = tr.st_validation_response(b'{"valid":true,"user_id":"u","attributes":{"m":"x"}}')
    assert (ok.valid, ok.user_id, dict(ok.attributes)) == (True, "u", {"m": "x"})
    with pytest.raises(ValueError):
        tr.record(b"[1]")


def test_text_and_integer_coercion() -> None:
    assert [tr.text(v) for v in (None, "a", 1, True, [1])] == ["", "a", "1", "true", "[1]"]
    assert [tr.integer(v) for v in (None, 5, True, "7", 1.5)] == [0, 5, 0, 0, 0]


def test_stats_are_clamped_to_the_proto_types() -> None:
    snap = {
        "total_keys": 1,
        "memory_used_bytes": 2,
        "total_commands_processed": 3,
        "instantaneous_ops_per_sec": 2**40,
        "connected_clients": 4,
        "uptime_seconds": 5,
    }
    got = tr.stats_response(snap)
    assert got.instantaneous_ops_per_sec == 2**31 - 1 and got.total_keys == 1


def test_peer_addr() -> None:
    assert tr.peer_addr("ipv4:127.0.0.1:5000") == "127.0.0.1:5000"
    assert tr.peer_addr("ipv6:[::1]:5000") == "[::1]:5000"
    assert tr.peer_addr("unix:/tmp/s") == "/tmp/s"
    assert tr.peer_addr("weird") == "weird"
