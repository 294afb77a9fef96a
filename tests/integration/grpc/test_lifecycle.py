"""Loading and stopping, seen from a gRPC client of an in-process server.

The server runs in a thread of the test process (as in tests/integration/http) so the
test can switch it to "loading" and stop it at chosen moments.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.grpc.stubs import code_of, connect

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def server() -> Iterator[object]:
    from tokenginx.config import Config
    from tokenginx.server import Server, free_port

    cfg = Config.load(
        env={},
        overrides={
            "server.tcp_addr": f"127.0.0.1:{free_port()}",
            "server.grpc_addr": f"127.0.0.1:{free_port()}",
            "http.enabled": False,
            "persistence.enabled": False,
            "server.shutdown_timeout": 5.0,
        },
    )
    server = Server(cfg)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert server.ready.wait(10)
    yield server
    if not server.stopping:  # a test may have stopped it (the loop is gone then)
        server.stop()
    thread.join(10)
    assert not thread.is_alive()


def test_while_loading_calls_are_unavailable_and_health_says_not_serving(server, stubs):
    pb = stubs.pb
    with connect(server.grpc_port) as channel:
        stub = stubs.pb_grpc.TokenginXServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        stub.Set(pb.SetRequest(key="k", value=b"v"))
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=10)
        assert next(watch).status == SERVING
        server._loop.call_soon_threadsafe(server.gate.set_loading, True)
        time.sleep(0.1)
        code, details = code_of(stub.Get, pb.GetRequest(key="k"))
        assert code == grpc.StatusCode.UNAVAILABLE and details.startswith("LOADING")
        assert stub.HealthCheck(pb.HealthCheckRequest()).status == pb.HealthCheckResponse.UNHEALTHY
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == NOT_SERVING
        assert next(watch).status == NOT_SERVING
        server._loop.call_soon_threadsafe(server.gate.set_loading, False)
        assert next(watch).status == SERVING
        watch.cancel()
        assert stub.Get(pb.GetRequest(key="k")).value == b"v"
        assert stub.HealthCheck(pb.HealthCheckRequest()).status == pb.HealthCheckResponse.HEALTHY


def test_stopping_ends_streams_promptly(server, stubs):
    pb = stubs.pb
    with connect(server.grpc_port) as channel:
        stub = stubs.pb_grpc.TokenginXServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        KV = pb.BatchSetRequest.KeyValue
        stub.BatchSet(
            pb.BatchSetRequest(items=[KV(key=f"k{i}", value=b"v") for i in range(20_000)])
        )
        watch = health.Watch(health_pb2.HealthCheckRequest(service="tokenginx.v1.TokenginXService"))
        assert next(watch).status == SERVING
        scan = stub.Scan(pb.ScanRequest(count=1))
        next(scan)
        started = time.monotonic()
        server.stop()
        assert [m.status for m in watch] == [NOT_SERVING]  # then the stream ends, OK
        with pytest.raises(grpc.RpcError) as info:
            for _ in scan:
                time.sleep(0.001)  # a slow reader
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert info.value.details() == "the server is shutting down"
        assert time.monotonic() - started < 3  # well inside server.shutdown_timeout
