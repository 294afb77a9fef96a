"""``g`` under many interleaved concurrent requests: each request sees only its own
values, in middleware, handler, response processing and streamed bodies, whether the
handler is sync (worker threads) or async (the event loop)."""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import pytest

from tests.integration.app._server import serving, url
from tokenginx.app import Middleware, RouteRegistry, StreamResponse, g

N = 200


class StampMiddleware(Middleware):
    def process_request(self, request):
        assert not hasattr(g, "who"), "g carried a value over from another request"
        g.who = request.query_params["who"]
        g.trail = ["mw"]
        return None

    def process_response(self, request, response):
        if isinstance(response, dict):
            response["mw_who"] = g.who
            response["mw_request_id"] = g.request_id
            response["trail"] = [*g.trail, "mw-out"]
        return response


def registry() -> RouteRegistry:
    reg = RouteRegistry()

    @reg.register("/sync")
    def sync_handler(request):
        who = request.query_params["who"]
        assert g.who == who
        time.sleep(random.uniform(0, 0.02))  # let other requests interleave
        g.trail.append("handler")
        assert g.who == who and g.request_id == request.request_id
        return {"who": g.who, "request_id": g.request_id}

    @reg.register("/async")
    async def async_handler(request):
        who = request.query_params["who"]
        assert g.who == who
        await asyncio.sleep(random.uniform(0, 0.02))
        g.trail.append("handler")
        assert g.who == who and g.request_id == request.request_id
        return {"who": g.who, "request_id": g.request_id}

    @reg.register("/stream")
    def stream(request):
        def gen():
            for _ in range(3):
                time.sleep(random.uniform(0, 0.005))
                yield f"{g.who}|{g.request_id}\n"

        return StreamResponse(gen(), content_type="text/plain")

    return reg


@pytest.fixture(scope="module")
def server():
    with serving(registry(), lambda s: s.middleware_manager.add_middleware(StampMiddleware())) as srv:
        yield srv


async def _one(client: httpx.AsyncClient, path: str, i: int) -> None:
    who, rid = f"user-{path}-{i}", f"rid-{path}-{i}"
    r = await client.get(path, params={"who": who}, headers={"X-Request-ID": rid})
    assert r.status_code == 200, r.text
    if path == "/stream":
        assert r.text.splitlines() == [f"{who}|{rid}"] * 3
        return
    body = r.json()
    assert body["who"] == body["mw_who"] == who
    assert body["request_id"] == body["mw_request_id"] == rid
    assert body["trail"] == ["mw", "handler", "mw-out"]


@pytest.mark.parametrize("path", ["/sync", "/async", "/stream"])
def test_g_does_not_leak_between_concurrent_requests(server, path):
    async def main() -> None:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=url(server), timeout=30, limits=limits) as client:
            await asyncio.gather(*(_one(client, path, i) for i in range(N)))

    asyncio.run(main())


def test_mixed_paths_interleaved(server):
    async def main() -> None:
        limits = httpx.Limits(max_connections=60, max_keepalive_connections=60)
        async with httpx.AsyncClient(base_url=url(server), timeout=30, limits=limits) as client:
            paths = ["/sync", "/async", "/stream"]
            await asyncio.gather(*(_one(client, paths[i % 3], i) for i in range(N)))

    asyncio.run(main())


def test_g_is_unavailable_outside_a_request():
    with pytest.raises(RuntimeError, match="only available"):
        _ = g.anything
