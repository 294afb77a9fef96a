"""``authorization: Bearer <api-key>`` metadata when ``security.api_keys`` is set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.grpc.conftest import API_KEY
from tests.integration.grpc.stubs import bearer, code_of, connect

UNAUTH = grpc.StatusCode.UNAUTHENTICATED


@pytest.fixture
def auth_channel(auth_server) -> Iterator[grpc.Channel]:
    with connect(auth_server.grpc_port) as ch:
        yield ch


@pytest.fixture
def auth_stub(stubs, auth_channel) -> Any:
    return stubs.pb_grpc.TokenginXServiceStub(auth_channel)


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        bearer("wrong"),
        [("authorization", "Bearer")],
        [("authorization", "k1")],
        [("authorization", "Basic Zm9vOmJhcg==")],
    ],
    ids=["missing", "wrong-key", "empty-bearer", "no-scheme", "wrong-basic"],
)
def test_missing_or_invalid_credentials_are_unauthenticated(auth_stub, pb, metadata):
    for call, req in (
        (auth_stub.Get, pb.GetRequest(key="k")),
        (auth_stub.Get, pb.GetRequest(key="")),  # credentials are checked before the fields
        (auth_stub.Set, pb.SetRequest(key="k", value=b"v")),
        (auth_stub.BatchGet, pb.BatchGetRequest(keys=["k"])),
        (auth_stub.SetOAuthToken, pb.SetOAuthTokenRequest(token_id="t")),
        (auth_stub.GetStats, pb.GetStatsRequest()),
    ):
        code, details = code_of(call, req, metadata=metadata)
        assert code == UNAUTH and "authorization: Bearer" in details
    code, _ = code_of(lambda: list(auth_stub.Scan(pb.ScanRequest(), metadata=metadata)))
    assert code == UNAUTH


def test_a_valid_api_key_is_accepted(auth_stub, pb, auth_server):
    md = bearer(API_KEY)
    assert auth_stub.Set(pb.SetRequest(key="k", value=b"v"), metadata=md).success
    assert auth_stub.Get(pb.GetRequest(key="k"), metadata=md).value == b"v"
    assert auth_stub.GetStats(pb.GetStatsRequest(), metadata=md).total_keys >= 1
    assert [list(b.keys) for b in auth_stub.Scan(pb.ScanRequest(), metadata=md)] == [["k"]]
    # the scheme is case-insensitive, as for HTTP's Authorization header
    assert auth_stub.Exists(
        pb.ExistsRequest(key="k"), metadata=[("authorization", f"bearer {API_KEY}")]
    ).exists


def test_health_needs_no_credentials(auth_stub, pb, auth_channel):
    assert auth_stub.HealthCheck(pb.HealthCheckRequest()).status == pb.HealthCheckResponse.HEALTHY
    health = health_pb2_grpc.HealthStub(auth_channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == (
        health_pb2.HealthCheckResponse.SERVING
    )
