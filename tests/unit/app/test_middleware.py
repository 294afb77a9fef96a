from __future__ import annotations

import asyncio
import threading

import pytest

from tokenginx.app.middleware import Middleware, MiddlewareManager


class Req:
    pass


class Recorder(Middleware):
    def __init__(self, name, log, short=None):
        self.name, self.log, self.short = name, log, short

    def process_request(self, request):
        self.log.append(("req", self.name))
        return self.short

    def process_response(self, request, response):
        self.log.append(("resp", self.name))
        return {**response, self.name: True} if isinstance(response, dict) else response


def test_order_and_protocols():
    log: list = []
    mm = MiddlewareManager()
    mm.add_middleware(Recorder("a", log))
    mm.add_middleware(Recorder("t", log), protocol="tcp")
    mm.add_middleware(Recorder("b", log), protocol="both")
    req = Req()
    assert mm.run_request(req, "http") is None
    assert mm.run_response(req, {}, "http") == {"a": True, "b": True}
    assert log == [("req", "a"), ("req", "b"), ("resp", "b"), ("resp", "a")]
    log.clear()
    req = Req()
    mm.run_request(req, "tcp")
    mm.run_response(req, {}, "tcp")
    assert log == [("req", "t"), ("req", "b"), ("resp", "b"), ("resp", "t")]


def test_short_circuit_skips_later_middleware():
    log: list = []
    mm = MiddlewareManager()
    mm.add_middleware(Recorder("a", log, short={"error": "Unauthorized"}))
    mm.add_middleware(Recorder("b", log))
    req = Req()
    result = mm.run_request(req, "http")
    assert result == {"error": "Unauthorized"}
    assert mm.run_response(req, result, "http") == {"error": "Unauthorized", "a": True}
    assert log == [("req", "a"), ("resp", "a")]


def test_response_replacement():
    class Replace(Middleware):
        def process_response(self, request, response):
            return "replaced"

    mm = MiddlewareManager()
    mm.add_middleware(Replace())
    assert mm.run_response(Req(), {"x": 1}, "http") == "replaced"


def test_bad_arguments():
    mm = MiddlewareManager()
    with pytest.raises(ValueError):
        mm.add_middleware(Middleware(), protocol="udp")
    with pytest.raises(TypeError):
        mm.add_middleware(object())


def test_remove_middleware():
    log: list = []
    mm = MiddlewareManager()
    mw = mm.add_middleware(Recorder("a", log))
    mm.remove_middleware(mw)
    assert len(mm) == 0 and mm.run_request(Req(), "http") is None and log == []


class AsyncMw(Middleware):
    async def process_request(self, request):
        await asyncio.sleep(0)
        request.seen = threading.current_thread().name
        return None

    async def process_response(self, request, response):
        await asyncio.sleep(0)
        return {**response, "async": True}


def test_async_middleware_awaited_on_the_loop():
    mm = MiddlewareManager()
    mm.add_middleware(AsyncMw())

    async def main():
        req = Req()
        assert await mm.arun_request(req, "http") is None
        return await mm.arun_response(req, {}, "http")

    assert asyncio.run(main()) == {"async": True}


def test_async_middleware_from_a_worker_thread_runs_on_the_server_loop():
    mm = MiddlewareManager()
    mm.add_middleware(AsyncMw())

    async def main():
        mm.loop = asyncio.get_running_loop()
        req = Req()

        def in_thread():
            mm.run_request(req, "http")
            return mm.run_response(req, {}, "http")

        out = await asyncio.to_thread(in_thread)
        return req.seen, out

    seen, out = asyncio.run(main())
    assert seen == "MainThread" and out == {"async": True}


def test_async_middleware_in_sync_call_on_the_loop_is_an_error():
    mm = MiddlewareManager()
    mm.add_middleware(AsyncMw())

    async def main():
        mm.loop = asyncio.get_running_loop()
        mm.run_request(Req(), "http")

    with pytest.raises(TypeError, match="arun_request"):
        asyncio.run(main())
