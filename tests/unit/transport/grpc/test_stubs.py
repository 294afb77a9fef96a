"""The shipped proto is the contract's, and the committed stubs are generated from it."""

from __future__ import annotations

from pathlib import Path

from tokenginx.transport.grpc import PROTO_PATH, SERVICE_NAME
from tokenginx.transport.grpc import tokenginx_pb2 as pb
from tokenginx.transport.grpc.codegen import STUB_FILES, generate

RPCS = [
    "Set",
    "Get",
    "Delete",
    "Exists",
    "GetTTL",
    "BatchGet",
    "BatchSet",
    "BatchDelete",
    "Scan",
    "SetOAuthToken",
    "GetOAuthToken",
    "IntrospectToken",
    "RevokeToken",
    "SetSAMLSession",
    "GetSAMLSession",
    "SetTGT",
    "SetST",
    "ValidateST",
    "GetStats",
    "HealthCheck",
]


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    generated = generate(tmp_path)
    assert [p.name for p in generated] == list(STUB_FILES)
    for path in generated:
        committed = PROTO_PATH.parent / path.name
        assert committed.read_text() == path.read_text(), (
            f"{committed.name} is stale: run python -m tokenginx.transport.grpc.codegen"
        )


def test_the_proto_is_contract_4_1() -> None:
    fd = pb.DESCRIPTOR
    assert (fd.name, fd.package) == ("tokenginx.proto", "tokenginx.v1")
    service = fd.services_by_name["TokenginXService"]
    assert service.full_name == SERVICE_NAME
    assert [m.name for m in service.methods] == RPCS
    streaming = [m.name for m in service.methods if m.server_streaming or m.client_streaming]
    assert streaming == ["Scan"] and service.methods_by_name["Scan"].server_streaming
    assert len(fd.message_types_by_name) == 40
    fields = {f.name: (f.number, f.type) for f in pb.SetRequest.DESCRIPTOR.fields}
    T = pb.SetRequest.DESCRIPTOR.fields[0].__class__
    assert fields == {
        "key": (1, T.TYPE_STRING),
        "value": (2, T.TYPE_BYTES),
        "ttl_seconds": (3, T.TYPE_INT64),
    }
    assert pb.SetSAMLSessionRequest.DESCRIPTOR.fields_by_name["assertion"].type == T.TYPE_BYTES
    assert pb.GetStatsResponse.DESCRIPTOR.fields_by_name["connected_clients"].type == T.TYPE_INT32
    assert PROTO_PATH.read_text().startswith('syntax = "proto3";\n\npackage tokenginx.v1;\n')
