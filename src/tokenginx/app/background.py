"""Worker pools of the application API: background tasks (``request.bg``) and sync
handlers.

Background tasks run after the response has been sent, on a bounded pool owned by the
``Server``: sync functions on a ``ThreadPoolExecutor``, ``async def`` functions as tasks
on the server's event loop. Each task gets a fresh ``g`` holding only ``request_id`` (of
the request that scheduled it). A failure is logged on the ``tokenginx.app`` logger with
its traceback, never lost; ``server.stop()`` waits for queued tasks (up to
``server.shutdown_timeout``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tokenginx.app.context import fresh_context

log = logging.getLogger("tokenginx.app")
T = TypeVar("T")


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def is_async_callable(func: Any) -> bool:
    while hasattr(func, "func") and not inspect.isfunction(func):  # functools.partial
        func = func.func
    if inspect.iscoroutinefunction(func):
        return True
    # an object whose __call__ is ``async def``
    return not inspect.isroutine(func) and inspect.iscoroutinefunction(type(func).__call__)


class BackgroundPool:
    """Runs background tasks; at most ``max_workers`` threads and ``max_pending`` queued."""

    def __init__(self, max_workers: int = 8, max_pending: int = 10000) -> None:
        self.max_workers = max_workers
        self.max_pending = max_pending
        self.loop: asyncio.AbstractEventLoop | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._closed = False
        self.failed = 0  # tasks that raised (for tests and INFO-style stats)

    @property
    def pending(self) -> int:
        return self._pending

    def submit(
        self, func: Callable[..., Any], args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
        *, request_id: str | None = None,
    ) -> bool:
        """Queue ``func(*args, **kwargs)``; False (and an error logged) if it was refused."""
        kwargs = kwargs or {}
        with self._lock:
            if self._closed:
                log.error("background task %s refused: the server is stopping", _name(func),
                          extra={"event": "bg_refused", "request_id": request_id})
                return False
            if self._pending >= self.max_pending:
                log.error("background task %s dropped: %d tasks already queued", _name(func),
                          self._pending, extra={"event": "bg_dropped", "request_id": request_id})
                return False
            self._pending += 1
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    self.max_workers, thread_name_prefix="tokenginx-bg"
                )
            executor = self._executor
        ctx = fresh_context(request_id=request_id)
        loop = self.loop
        if is_async_callable(func) and loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._start_async, ctx, func, args, kwargs, request_id)
                return True
            except RuntimeError:  # the loop closed in between: run it in a thread instead
                pass
        executor.submit(ctx.run, self._run_sync, func, args, kwargs, request_id)
        return True

    def _start_async(self, ctx: contextvars.Context, func: Callable[..., Any], args: tuple[Any, ...],
                     kwargs: dict[str, Any], request_id: str | None) -> None:
        try:
            coro = ctx.run(func, *args, **kwargs)
        except Exception:
            self._failed(func, request_id)
            return
        task = asyncio.get_running_loop().create_task(self._await(coro, func, request_id), context=ctx)
        task.add_done_callback(lambda _t: None)  # keep a reference until done

    async def _await(self, coro: Any, func: Callable[..., Any], request_id: str | None) -> None:
        try:
            await coro
        except Exception:
            self._failed(func, request_id)
        finally:
            self._done()

    def _run_sync(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                  request_id: str | None) -> None:
        try:
            result = func(*args, **kwargs)
            if inspect.isawaitable(result):  # a sync callable returned a coroutine
                loop = self.loop
                if loop is None or loop.is_closed():
                    raise RuntimeError("an async background task needs the server's event loop")
                asyncio.run_coroutine_threadsafe(_awaited(result), loop).result()
        except Exception:
            self._failed(func, request_id)
        finally:
            self._done()

    def _failed(self, func: Callable[..., Any], request_id: str | None) -> None:
        with self._lock:
            self.failed += 1
        log.exception("background task %s failed", _name(func),
                      extra={"event": "bg_failed", "request_id": request_id})

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no task is queued or running (True) or ``timeout`` passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    async def drain(self, timeout: float) -> None:
        """Refuse new tasks, wait for the queued ones (async ones run on this loop)."""
        with self._lock:
            self._closed = True
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._pending:
            log.error("%d background tasks still running at shutdown", self._pending,
                      extra={"event": "bg_abandoned"})
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


async def _awaited(value: Any) -> Any:
    return await value


class BackgroundTasks:
    """``request.bg``: tasks collected during a request, started after its response."""

    __slots__ = ("_pool", "_request_id", "_tasks")

    def __init__(self, pool: BackgroundPool, request_id: str | None = None) -> None:
        self._pool = pool
        self._request_id = request_id
        self._tasks: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def add(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``func(*args, **kwargs)`` once the response has been sent."""
        if not callable(func):
            raise TypeError(f"background task {func!r} is not callable")
        self._tasks.append((func, args, kwargs))

    # The seed's README also shows ``request.bg.add_task`` in places.
    add_task = add

    def __len__(self) -> int:
        return len(self._tasks)

    def schedule(self) -> int:
        """Hand the collected tasks to the pool (called after the response went out)."""
        tasks, self._tasks = self._tasks, []
        for func, args, kwargs in tasks:
            self._pool.submit(func, args, kwargs, request_id=self._request_id)
        return len(tasks)


class HandlerPool:
    """Threads for sync handlers (and their middleware), so they never block the loop."""

    def __init__(self, max_workers: int = 32) -> None:
        self.max_workers = max_workers
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    async def run(self, ctx: contextvars.Context, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in a worker thread, inside ``ctx`` (the request's context)."""
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    self.max_workers, thread_name_prefix="tokenginx-app"
                )
            executor = self._executor
        return await asyncio.wrap_future(executor.submit(ctx.run, func, *args))

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
