"""GetStats, HealthCheck, the standard health service and server reflection."""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.integration.grpc.stubs import connect

SERVICE = "tokenginx.v1.TokenginXService"
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


def test_get_stats(stub, pb, r):
    for i in range(3):
        stub.Set(pb.SetRequest(key=f"k{i}", value=b"v"))
    stats = stub.GetStats(pb.GetStatsRequest())
    assert stats.total_keys == 3 == r.dbsize()
    assert stats.memory_used_bytes > 0
    assert stats.total_commands_processed >= 3
    assert stats.connected_clients >= 1  # redis-py's connection
    assert stats.uptime_seconds >= 0
    before = stats.total_commands_processed
    stub.Get(pb.GetRequest(key="k0"))  # GET + PTTL
    assert stub.GetStats(pb.GetStatsRequest()).total_commands_processed >= before + 2


def test_health_check_rpc(stub, pb):
    from tokenginx.version import __version__

    got = stub.HealthCheck(pb.HealthCheckRequest())
    assert got.status == pb.HealthCheckResponse.HEALTHY
    assert got.version == __version__
    assert got.uptime_seconds >= 0


def test_standard_health_service(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE):
        got = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert got.status == health_pb2.HealthCheckResponse.SERVING
    try:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        raise AssertionError("unknown service answered")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
    watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()


def _reflect(channel: grpc.Channel, **request: object) -> reflection_pb2.ServerReflectionResponse:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=5
    )
    return next(iter(replies))


def test_reflection_lists_and_describes_the_services(channel):
    listed = _reflect(channel, list_services="")
    names = {s.name for s in listed.list_services_response.service}
    assert names == {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    files = _reflect(channel, file_containing_symbol=SERVICE).file_descriptor_response
    protos = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in files.file_descriptor_proto]
    ours = next(p for p in protos if p.package == "tokenginx.v1")
    (service,) = ours.service
    assert [m.name for m in service.method] == RPCS
    scan = next(m for m in service.method if m.name == "Scan")
    assert scan.server_streaming and not scan.client_streaming
    assert ours.name == "tokenginx.proto" and len(ours.message_type) == 40  # contract §4.1


def test_reflection_can_be_turned_off(limits_server):
    with connect(limits_server.grpc_port) as channel:
        try:
            _reflect(channel, list_services="")
            raise AssertionError("reflection answered although grpc.reflection=false")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNIMPLEMENTED
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
