"""The servicer against the real gate, with a stand-in for the gRPC call context."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import grpc
import pytest

from tests.conftest import GateHarness
from tokenginx.config import Config
from tokenginx.transport.grpc import tokenginx_pb2 as pb
from tokenginx.transport.grpc.servicer import TokenginXServicer
from tokenginx.transport.grpc.translate import CHUNK

C = grpc.StatusCode


class FakeContext:
    """What the servicer uses of ``grpc.aio.ServicerContext``."""

    def __init__(self, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.metadata = metadata
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:4242"

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        self.code, self.details = code, details
        raise grpc.aio.AbortError()


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [m async for m in stream]


def fails(coro: Coroutine[Any, Any, Any], ctx: FakeContext) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AbortError):
        run(coro)
    assert ctx.code is not None
    return ctx.code, ctx.details


@pytest.fixture
def harness() -> GateHarness:
    return GateHarness()


@pytest.fixture
def servicer(harness: GateHarness) -> TokenginXServicer:
    return TokenginXServicer(harness.server)


def test_get_reports_the_ttl_as_ttl_would(harness, servicer) -> None:
    ctx = FakeContext()
    run(servicer.Set(pb.SetRequest(key="k", value=b"v", ttl_seconds=10), ctx))
    harness.clock.advance(2400)  # ms
    got = run(servicer.Get(pb.GetRequest(key="k"), ctx))
    assert (got.found, got.value, got.ttl_seconds) == (True, b"v", 8)
    assert harness.call("TTL", "k") == 8
    harness.clock.advance(8000)
    assert run(servicer.Get(pb.GetRequest(key="k"), ctx)) == pb.GetResponse(found=False)


def test_calls_run_as_grpc_clients_through_the_gate(harness, servicer) -> None:
    run(servicer.Exists(pb.ExistsRequest(key="k"), FakeContext()))
    assert harness.state.stats.door_calls[("grpc", "exists")] == 1
    assert harness.state.clients == {}  # per-call clients are not registered


def test_an_unexpected_exception_is_internal_and_logged(
    harness, servicer, monkeypatch, caplog
) -> None:
    def boom(client, argv):
        raise RuntimeError("boom")

    monkeypatch.setattr(harness.server.gate, "execute", boom)
    caplog.set_level(logging.ERROR, "tokenginx.grpc")
    for call in (
        servicer.Get(pb.GetRequest(key="k"), ctx := FakeContext()),
        collect(servicer.Scan(pb.ScanRequest(), ctx2 := FakeContext())),
        servicer.BatchGet(pb.BatchGetRequest(keys=["a"]), ctx3 := FakeContext()),
    ):
        with pytest.raises(grpc.aio.AbortError):
            run(call)
    for c, name in ((ctx, "Get"), (ctx2, "Scan"), (ctx3, "BatchGet")):
        assert (c.code, c.details) == (C.INTERNAL, f"internal error while running {name}")
    assert [r.exc_info[0] for r in caplog.records] == [RuntimeError] * 3


def test_authentication_from_metadata() -> None:
    cfg = Config()
    cfg.security.api_keys = ["k1"]
    servicer = TokenginXServicer(GateHarness(cfg).server)
    req = pb.SetRequest(key="k", value=b"v")
    for md in ((), (("authorization", "Bearer nope"),), (("x-api-key", "nope"),)):
        code, details = fails(servicer.Set(req, ctx := FakeContext(md)), ctx)
        assert code == C.UNAUTHENTICATED and "Bearer <api-key>" in details
    for md in ((("authorization", "Bearer k1"),), (("x-api-key", "k1"),)):
        assert run(servicer.Set(req, FakeContext(md))).success
    health = run(servicer.HealthCheck(pb.HealthCheckRequest(), FakeContext()))
    assert health.status == pb.HealthCheckResponse.HEALTHY  # no credentials needed


def test_loading_is_unavailable(harness, servicer) -> None:
    harness.gate.set_loading(True)
    code, details = fails(servicer.Get(pb.GetRequest(key="k"), ctx := FakeContext()), ctx)
    assert code == C.UNAVAILABLE and details.startswith("LOADING")
    health = run(servicer.HealthCheck(pb.HealthCheckRequest(), FakeContext()))
    assert health.status == pb.HealthCheckResponse.UNHEALTHY


async def _loop_steps_during(coro: Coroutine[Any, Any, Any]) -> tuple[Any, int]:
    """Run ``coro`` while a task counts event-loop steps; (result, steps taken meanwhile)."""
    steps = 0
    done = False

    async def ticker() -> None:
        nonlocal steps
        while not done:
            steps += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = steps
    result = await coro
    done = True
    await task
    return result, steps - start


def test_batches_yield_to_the_loop_between_chunks(harness, servicer) -> None:
    n = 5 * CHUNK
    KV = pb.BatchSetRequest.KeyValue
    items = [KV(key=f"k{i}", value=b"v") for i in range(n)]
    got, steps = run(
        _loop_steps_during(servicer.BatchSet(pb.BatchSetRequest(items=items), FakeContext()))
    )
    assert (got.success_count, got.failed_count) == (n, 0)
    assert steps >= 9  # 4 pauses while validating, 5 while writing
    keys = [f"k{i}" for i in range(n)]
    got, steps = run(
        _loop_steps_during(servicer.BatchGet(pb.BatchGetRequest(keys=keys), FakeContext()))
    )
    assert len(got.values) == n and steps >= 4
    got, steps = run(
        _loop_steps_during(servicer.BatchDelete(pb.BatchDeleteRequest(keys=keys), FakeContext()))
    )
    assert got.deleted_count == n and steps >= 4


def test_scan_walks_in_steps_and_skips_keys_that_are_not_utf8(harness, servicer) -> None:
    for i in range(30):
        harness.call("SET", f"k{i}", "v")
    harness.call("SET", b"\xff\xfe", "v")
    batches, steps = run(
        _loop_steps_during(collect(servicer.Scan(pb.ScanRequest(count=10), FakeContext())))
    )
    assert [len(b.keys) for b in batches] == [10, 10, 10]
    assert sorted(k for b in batches for k in b.keys) == sorted(f"k{i}" for i in range(30))
    assert steps >= 3


def test_scan_stops_when_the_server_stops(harness, servicer) -> None:
    harness.call("SET", "k", "v")
    servicer.stopping = True
    code, details = fails(collect(servicer.Scan(pb.ScanRequest(), ctx := FakeContext())), ctx)
    assert (code, details) == (C.UNAVAILABLE, "the server is shutting down")


def test_batch_set_stops_at_a_call_level_error(harness, servicer) -> None:
    harness.gate.set_loading(True)
    items = [pb.BatchSetRequest.KeyValue(key="a", value=b"1")]
    code, details = fails(
        servicer.BatchSet(pb.BatchSetRequest(items=items), ctx := FakeContext()), ctx
    )
    assert code == C.UNAVAILABLE
