"""Gate errors become gRPC status codes with readable messages (never UNKNOWN)."""

from __future__ import annotations

import grpc

from tests.integration.grpc.stubs import code_of


def test_out_of_memory_is_resource_exhausted(limits_stub, pb):
    value = b"x" * (200 * 1024)
    for i in range(20):  # maxmemory is 1 MB
        try:
            limits_stub.Set(pb.SetRequest(key=f"fill{i}", value=value))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert e.details() == "OOM command not allowed when used memory > 'maxmemory'."
            break
    else:
        raise AssertionError("maxmemory was never reached")
    # reads still work, and a BatchSet counts the refused items instead of failing
    assert limits_stub.Get(pb.GetRequest(key="fill0")).found
    items = [pb.BatchSetRequest.KeyValue(key="more", value=b"v")]
    got = limits_stub.BatchSet(pb.BatchSetRequest(items=items))
    assert (got.success_count, got.failed_count) == (0, 1)


def test_a_disabled_protocol_is_unimplemented(limits_stub, pb):
    code, details = code_of(limits_stub.SetOAuthToken, pb.SetOAuthTokenRequest(token_id="t"))
    assert code == grpc.StatusCode.UNIMPLEMENTED
    assert "protocols.oauth.enabled" in details


def test_unknown_tgt_is_not_found(stub, pb):
    code, details = code_of(stub.SetST, pb.SetSTRequest(st_id="ST-1", tgt_id="TGT-x", service="s"))
    assert (code, details) == (grpc.StatusCode.NOT_FOUND, "ERR unknown or expired TGT")


def test_required_fields_of_the_sso_rpcs(stub, pb):
    cases = [
        (stub.SetOAuthToken, pb.SetOAuthTokenRequest(user_id="u"), "token_id"),
        (stub.GetOAuthToken, pb.GetOAuthTokenRequest(), "token_id"),
        (stub.IntrospectToken, pb.IntrospectTokenRequest(), "token"),
        (stub.RevokeToken, pb.RevokeTokenRequest(), "token"),
        (stub.SetSAMLSession, pb.SetSAMLSessionRequest(name_id="n"), "session_index"),
        (stub.SetSAMLSession, pb.SetSAMLSessionRequest(session_index="i"), "name_id"),
        (stub.GetSAMLSession, pb.GetSAMLSessionRequest(), "session_index"),
        (stub.SetTGT, pb.SetTGTRequest(user_id="u"), "tgt_id"),
        (stub.SetTGT, pb.SetTGTRequest(tgt_id="t"), "user_id"),
        (stub.SetST, pb.SetSTRequest(tgt_id="t", service="s"), "st_id"),
        (stub.SetST, pb.SetSTRequest(st_id="s", tgt_id="t"), "service"),
        (stub.ValidateST, pb.ValidateSTRequest(service="s"), "st_id"),
        (stub.ValidateST, pb.ValidateSTRequest(st_id="s"), "service"),
    ]
    for call, req, field in cases:
        assert code_of(call, req) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{field}: must not be empty",
        )
    for call, req in (
        (stub.SetOAuthToken, pb.SetOAuthTokenRequest(token_id="t", ttl_seconds=-1)),
        (stub.SetTGT, pb.SetTGTRequest(tgt_id="t", user_id="u", ttl_seconds=-1)),
    ):
        assert code_of(call, req) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "ttl_seconds: must be >= 0, got -1",
        )
    code, details = code_of(
        stub.SetSAMLSession,
        pb.SetSAMLSessionRequest(session_index="i", name_id="n", assertion=b"\xff\xfe"),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("assertion:")
