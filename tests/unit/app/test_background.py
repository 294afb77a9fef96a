from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from tokenginx.app.background import BackgroundPool, BackgroundTasks, HandlerPool
from tokenginx.app.context import begin, end, fresh_context, g


@pytest.fixture
def app_log():
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("tokenginx.app")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old)


def drain_sync(pool: BackgroundPool) -> None:
    asyncio.run(pool.drain(5))


def test_tasks_wait_for_schedule_and_get_a_fresh_g():
    pool = BackgroundPool(max_workers=2)
    seen: dict = {}
    done = threading.Event()

    def job(a, b=None):
        seen.update(args=(a, b), rid=g.request_id, leaked=hasattr(g, "user"))
        done.set()

    token = begin(request_id="r1", user="u")
    try:
        bg = BackgroundTasks(pool, "r1")
        bg.add(job, 1, b=2)
        assert len(bg) == 1
        time.sleep(0.05)
        assert not done.is_set()  # nothing runs before schedule()
        assert bg.schedule() == 1 and len(bg) == 0
    finally:
        end(token)
    assert done.wait(5)
    assert seen == {"args": (1, 2), "rid": "r1", "leaked": False}
    drain_sync(pool)


def test_failure_is_logged_with_traceback(app_log):
    pool = BackgroundPool()

    def broken():
        raise ValueError("nope")

    pool.submit(broken, request_id="rid-9")
    assert pool.wait_idle(5)
    assert pool.failed == 1
    errors = [r for r in app_log if r.levelno == logging.ERROR]
    assert errors and "broken" in errors[0].getMessage()
    assert errors[0].exc_info and isinstance(errors[0].exc_info[1], ValueError)
    assert errors[0].request_id == "rid-9"  # type: ignore[attr-defined]
    drain_sync(pool)


def test_async_task_runs_on_the_loop_with_fresh_g():
    pool = BackgroundPool()
    out: dict = {}

    async def job(x):
        await asyncio.sleep(0)
        out["x"] = x
        out["rid"] = g.request_id
        out["thread"] = threading.current_thread().name

    async def main():
        pool.loop = asyncio.get_running_loop()
        pool.submit(job, (5,), request_id="async-r")
        await pool.drain(5)

    asyncio.run(main())
    assert out == {"x": 5, "rid": "async-r", "thread": "MainThread"}


def test_async_failure_logged(app_log):
    pool = BackgroundPool()

    async def job():
        raise KeyError("k")

    async def main():
        pool.loop = asyncio.get_running_loop()
        pool.submit(job)
        await pool.drain(5)

    asyncio.run(main())
    assert pool.failed == 1 and any(r.levelno == logging.ERROR for r in app_log)


def test_bounded_queue_drops_with_an_error(app_log):
    pool = BackgroundPool(max_workers=1, max_pending=2)
    release = threading.Event()
    assert pool.submit(release.wait, (5,))
    assert pool.submit(release.wait, (5,))
    assert not pool.submit(release.wait, (5,))
    assert any("dropped" in r.getMessage() for r in app_log)
    release.set()
    assert pool.wait_idle(5)
    drain_sync(pool)


def test_drain_waits_then_refuses(app_log):
    pool = BackgroundPool()
    finished = threading.Event()

    def slow():
        time.sleep(0.2)
        finished.set()

    pool.submit(slow)
    drain_sync(pool)
    assert finished.is_set()
    assert not pool.submit(slow)
    assert any("stopping" in r.getMessage() for r in app_log)


def test_non_callable_refused():
    with pytest.raises(TypeError):
        BackgroundTasks(BackgroundPool()).add(42)  # type: ignore[arg-type]


def test_handler_pool_runs_in_a_thread_within_the_context():
    pool = HandlerPool(max_workers=2)

    async def main():
        ctx = fresh_context(request_id="h1")
        return await pool.run(ctx, lambda: (g.request_id, threading.current_thread().name))

    rid, thread = asyncio.run(main())
    pool.shutdown()
    assert rid == "h1" and thread.startswith("tokenginx-app")
