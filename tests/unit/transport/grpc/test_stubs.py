"""The shipped proto is the contract's, and the committed stubs are generated from it."""

from __future__ import annotations

from pathlib import Path

from tokenginx.transport.grpc import PROTO_PATH, SERVICE_NAME
from tokenginx.transport.grpc import tokenginx_pb2 as pb
from tokenginx.transport.grpc.codegen import STUB_FILES, generate, stub_drift
from tokenginx.transport.grpc.codegen import main as codegen_main

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


def test_committed_stubs_match_the_shipped_proto() -> None:
    assert stub_drift() == []


def test_a_fresh_generation_writes_every_stub_and_matches(tmp_path: Path) -> None:
    generated = generate(tmp_path)
    assert [p.name for p in generated] == list(STUB_FILES)
    # The freshly generated type stubs agree with the proto as the committed ones do.
    assert stub_drift(stub_dir=tmp_path) == []


def _edited_proto(tmp_path: Path, old: str, new: str) -> Path:
    text = PROTO_PATH.read_text()
    assert old in text
    proto = tmp_path / PROTO_PATH.name
    proto.write_text(text.replace(old, new, 1))
    return proto


def test_a_new_field_in_the_proto_makes_the_stubs_stale(tmp_path: Path) -> None:
    proto = _edited_proto(
        tmp_path, "message SetRequest {", "message SetRequest {\n  string tenant = 9;"
    )
    problems = stub_drift(proto)
    assert "tokenginx_pb2.py: its embedded descriptor differs from the proto" in problems
    assert any("SetRequest declares" in p for p in problems), problems


def test_a_new_rpc_in_the_proto_makes_the_grpc_module_stale(tmp_path: Path) -> None:
    proto = _edited_proto(
        tmp_path,
        "rpc HealthCheck(",
        "rpc Ping(HealthCheckRequest) returns (HealthCheckResponse);\n  rpc HealthCheck(",
    )
    problems = stub_drift(proto)
    assert any("TokenginXServiceStub's methods differ" in p and "/Ping" in p for p in problems)


def test_a_streaming_change_makes_the_grpc_module_stale(tmp_path: Path) -> None:
    proto = _edited_proto(tmp_path, "returns (stream ScanResponse)", "returns (ScanResponse)")
    problems = stub_drift(proto)
    assert any("kinds or message types" in p for p in problems), problems


def test_the_check_command_exits_zero_on_the_committed_stubs() -> None:
    assert codegen_main(["--check"]) == 0


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
