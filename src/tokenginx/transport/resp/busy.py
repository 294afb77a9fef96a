"""Serving RESP clients while a Lua script runs past the busy threshold.

The server is single threaded: while a script runs, the event loop does not. Redis
then calls ``processEventsWhileBlocked`` from the script's hook so that other
clients get ``-BUSY`` (and SCRIPT KILL / SHUTDOWN NOSAVE can reach the server).
:class:`BusyPoller` is that for us: the scripting engine calls :meth:`poll` from its
instruction hook once the threshold has passed. It reads what connected RESP
clients sent (non-blocking, straight from their sockets) and hands the bytes to the
connection's own ``data_received``, so parsing, the gate (in its busy mode: every
command but the ``allow_busy`` ones answers ``-BUSY``) and reply writing are the
usual ones. Connections whose replies must keep an order the poll cannot keep (the
script's own caller, one waiting on the write-ahead log, an application command or
a backlog) are left alone until the loop runs again. New RESP connections are
accepted too (``redis-cli SCRIPT KILL`` is a new connection): they are served
through a small blocking-write transport and handed to the event loop, client state
intact, once the script is over. HTTP and gRPC wait for the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import selectors
import socket
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenginx.client import Client
    from tokenginx.transport.resp.protocol import RespProtocol

log = logging.getLogger("tokenginx.resp")

_READ_BYTES = 64 * 1024
_WRITE_GIVE_UP_S = 1.0


class BusyPoller:
    def __init__(
        self,
        connections: Iterable[RespProtocol],
        listeners: Callable[[], list[Any]] = list,
        new_protocol: Callable[[], RespProtocol] | None = None,
    ) -> None:
        self.connections = connections
        self._listeners = listeners  # the RESP listening sockets, asked at busy start
        self._new_protocol = new_protocol
        self._selector: selectors.BaseSelector | None = None
        self._listening: list[socket.socket] = []
        self._adopted: list[tuple[socket.socket, RespProtocol]] = []

    def start(self) -> None:
        """Watch the connections open now (called when the script turns busy)."""
        self.stop()
        sel = selectors.DefaultSelector()
        for conn in list(self.connections):
            fd = _fileno(conn)
            if fd is not None:
                with contextlib.suppress(ValueError, OSError, KeyError):
                    sel.register(fd, selectors.EVENT_READ, conn)
        if self._new_protocol is not None:
            for listener in self._listeners():
                try:
                    lsock = socket.socket(fileno=os.dup(listener.fileno()))
                    lsock.setblocking(False)
                    sel.register(lsock, selectors.EVENT_READ, None)
                except (OSError, ValueError):
                    continue
                self._listening.append(lsock)
        self._selector = sel

    def _accept(self, sel: selectors.BaseSelector, lsock: socket.socket) -> None:
        assert self._new_protocol is not None
        try:
            sock, _ = lsock.accept()
        except (BlockingIOError, InterruptedError, OSError):
            return
        sock.setblocking(False)
        conn = self._new_protocol()
        conn.connection_made(_BusyTransport(sock))  # type: ignore[arg-type]
        self._adopted.append((sock, conn))
        with contextlib.suppress(ValueError, OSError, KeyError):
            sel.register(sock, selectors.EVENT_READ, conn)

    def poll(self, caller: Client | None) -> None:
        """Serve whatever the watched clients sent since the last poll, without waiting."""
        sel = self._selector
        if sel is None:
            return
        try:
            ready = sel.select(0)
        except (OSError, ValueError):
            return
        for key, _ in ready:
            if key.data is None:
                self._accept(sel, key.fileobj)  # type: ignore[arg-type]
                continue
            conn: RespProtocol = key.data
            if not conn.servable_while_busy() or conn.client is caller:
                continue
            try:
                data = os.read(key.fd, _READ_BYTES)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                # EOF or a reset: stop watching; the loop sees it and closes later.
                with contextlib.suppress(KeyError, ValueError):
                    sel.unregister(key.fd)
                continue
            try:
                conn.data_received(data)
            except Exception:  # never let a client's bytes break the running script
                log.exception("serving a client while a script is busy failed")

    def stop(self) -> None:
        """The script is over: stop watching, give accepted connections to the loop."""
        sel, self._selector = self._selector, None
        if sel is not None:
            sel.close()
        for lsock in self._listening:
            lsock.close()
        self._listening = []
        adopted, self._adopted = self._adopted, []
        if not adopted:
            return
        loop = asyncio.get_event_loop()
        for sock, conn in adopted:
            if conn.transport is None or conn.transport.is_closing():
                sock.close()
                conn.connection_lost(None)
                continue
            loop.create_task(_hand_over(loop, sock, conn))


async def _hand_over(loop: asyncio.AbstractEventLoop, sock: socket.socket, conn: RespProtocol) -> None:
    try:
        await loop.connect_accepted_socket(lambda: conn, sock=sock)
    except OSError:
        sock.close()
        conn.connection_lost(None)


class _BusyTransport:
    """The transport of a connection accepted while a script is busy, until the loop
    takes it: writes go straight to the socket (the replies then are short errors)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._closing = False

    def write(self, data: bytes) -> None:
        if self._closing:
            return
        view = memoryview(data)
        deadline = time.monotonic() + _WRITE_GIVE_UP_S
        while view:
            try:
                sent = self._sock.send(view)
            except BlockingIOError:
                if time.monotonic() > deadline:  # a client that does not read
                    self.close()
                    return
                time.sleep(0.001)
                continue
            except OSError:
                self._closing = True
                return
            view = view[sent:]

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    abort = close

    def write_eof(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self._sock
        if name == "peername":
            return self._sock.getpeername()
        if name == "sockname":
            return self._sock.getsockname()
        return default

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _fileno(conn: RespProtocol) -> int | None:
    transport = conn.transport
    if transport is None or transport.is_closing():
        return None
    sock: Any = transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        fd = sock.fileno()
    except (OSError, ValueError):
        return None
    return fd if fd >= 0 else None
