"""``request.call(*argv)``: a handler runs a store command through the gate.

The store lives on the event loop thread and is not locked, so a sync handler (in a
worker thread) must not call the gate itself: the call is handed to the loop and the
thread waits for its reply. On the loop (async handlers) it runs directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any


def _arg(value: str | bytes | int | float) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        raise TypeError("a command argument cannot be a bool")
    if isinstance(value, (int, float)):
        return repr(value).encode()
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"a command argument must be str, bytes or a number, not {type(value).__name__}")


class LoopCaller:
    """Runs ``call(argv)`` on ``loop``'s thread, from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, call: Callable[[list[bytes]], Any]) -> None:
        self._loop = loop
        self._call = call

    def __call__(self, *argv: str | bytes | int | float) -> Any:
        args = [_arg(a) for a in argv]
        if not args:
            raise TypeError("call() needs a command name")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            return self._call(args)
        if self._loop.is_closed():
            raise RuntimeError("the server is not running")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self._call(args))
            except BaseException as e:  # delivered to the waiting thread
                future.set_exception(e)

        self._loop.call_soon_threadsafe(run)
        return future.result()
