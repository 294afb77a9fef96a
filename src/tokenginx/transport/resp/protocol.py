"""RESP over TCP: one asyncio protocol object per connection.

Bytes from the socket go to the sans-IO :class:`RequestParser`; each request goes
through the gate; the replies of one read are written back in a single write, which
is what makes pipelining cheap. Backpressure: when the socket's write buffer is
full we stop reading from that client (asyncio ``pause_writing``), so a client that
pipelines without reading cannot make us buffer without bound. Pub/sub subscribers
are the exception (they do not send): their buffer is capped by the
``pubsub_output_*`` limits and the client is closed when over, as Redis does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

from tokenginx.client import Client
from tokenginx.errors import ProtocolError
from tokenginx.transport.resp.parser import ParserLimits, RequestParser

if TYPE_CHECKING:
    from tokenginx.gate import Gate
    from tokenginx.state import ServerState

log = logging.getLogger("tokenginx.resp")

_MAX_CLIENTS_ERROR = b"-ERR max number of clients reached\r\n"
_MAX_PIPELINE_OUTPUT = 4 * 1024 * 1024


def parser_limits(state: ServerState) -> ParserLimits:
    lim = state.config.limits
    return ParserLimits(
        max_multibulk_len=lim.multibulk_len,
        max_bulk_bytes=max(lim.value_bytes, lim.key_bytes),
        max_inline_bytes=lim.inline_bytes,
        max_query_bytes=lim.query_buffer_bytes,
    )


class RespProtocol(asyncio.Protocol):
    __slots__ = (
        "state",
        "gate",
        "connections",
        "transport",
        "client",
        "parser",
        "_paused",
        "_closed",
        "_batch",
        "_backlog",
        "_held",
    )

    def __init__(self, state: ServerState, gate: Gate, connections: set[RespProtocol]) -> None:
        self.state = state
        self.gate = gate
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.client: Client | None = None
        self.parser = RequestParser(parser_limits(state))
        self._paused = False
        self._closed = False
        # While a pipeline is being answered, pushes (a message this client published
        # to itself, MONITOR lines) join the batch so frames keep their order.
        self._batch: list[bytes] | None = None
        # Requests of a pipeline not yet answered because the client is not reading.
        self._backlog: tuple[list[list[bytes]], ProtocolError | None] | None = None
        self._held = 0  # replies waiting for the write-ahead log

    # -- asyncio callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        state = self.state
        if len(state.clients) >= state.config.server.max_connections:
            state.stats.rejected_connections += 1
            transport.write(_MAX_CLIENTS_ERROR)
            # Half-close and drain whatever the client already sent, so it reads the
            # error instead of a connection reset; give up after a second.
            with contextlib.suppress(OSError, RuntimeError):
                transport.write_eof()
            asyncio.get_running_loop().call_later(1.0, transport.close)
            self._closed = True
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            _tune_socket(sock, state.config.server.tcp_keepalive)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.client = Client(
            state,
            kind="resp",
            addr=_fmt_addr(peer),
            laddr=_fmt_addr(local),
            push_sink=self._push,
            closer=self._close_from_server,
        )
        state.register(self.client)
        self.connections.add(self)

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None or client.closing:
            return
        client.last_interaction = time.monotonic()
        self.state.stats.net_input_bytes += len(data)
        try:
            requests = self.parser.feed(data)
            error = None
        except ProtocolError as e:
            requests = self.parser.error_prefix
            error = e
        # The reply is computed before ``client.encode`` is looked up: HELLO changes it.
        if len(requests) == 1 and error is None:
            reply = self.gate.execute(client, requests[0])
            self._reply(client.encode(reply), 1)
        else:
            self._answer(requests, error)

    def _reply(self, out: bytes, count: int) -> None:
        """Write ``count`` replies — after the write-ahead log has the changes they
        acknowledge. If the log cannot be written, the client gets ``count`` MISCONF
        errors instead: a change that is not in the log is never acknowledged."""
        journal = self.state.keyspace.journal
        if journal is not None and (
            self._held or journal.dirty or (journal.buffer and journal.error is None)
        ):
            # Held replies keep their order: once one waits, the next ones wait too.
            self._held += 1
            journal.after_commit(lambda error: self._release(out, count, error))
        else:
            self._send(out)

    def _release(self, out: bytes, count: int, error: str | None) -> None:
        self._held -= 1
        if error is not None:
            out = (b"-MISCONF Errors writing to the AOF file: %b\r\n" % error.encode()) * count
        self._send(out)

    def _send(self, out: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if out:
            self._write(out)
        if self.client is not None and self.client.closing:
            self.transport.close()

    def _answer(self, requests: list[list[bytes]], error: ProtocolError | None) -> None:
        """Run a pipeline and write its replies in one go. Once the replies of this
        read pass ``_MAX_PIPELINE_OUTPUT`` bytes, the rest waits (reading paused) until
        the client has taken what it is owed: a client that pipelines thousands of
        large GETs without reading cannot make us hold gigabytes of replies."""
        client = self.client
        assert client is not None
        execute = self.gate.execute
        parts: list[bytes] = []
        size = 0
        executed = 0
        self._batch = parts
        try:
            for i, argv in enumerate(requests):
                reply = execute(client, argv)
                encoded = client.encode(reply)
                parts.append(encoded)
                executed += 1
                if client.closing:
                    break
                size += len(encoded)
                if size > _MAX_PIPELINE_OUTPUT and i + 1 < len(requests):
                    self._backlog = (requests[i + 1 :], error)
                    error = None
                    if self.transport is not None:
                        self.transport.pause_reading()
                    break
        finally:
            self._batch = None
        if error is not None:
            parts.append(b"-ERR " + error.message.encode() + b"\r\n")
            client.closing = True
            log.info("protocol error from %s: %s", client.addr, error.message)
        self._reply(b"".join(parts), executed + (error is not None))
        if self._backlog is not None and not self._paused and not client.closing:
            # The kernel took everything at once: go on after pending I/O is served.
            asyncio.get_running_loop().call_soon(self._drain_backlog)

    def _drain_backlog(self) -> None:
        backlog = self._backlog
        if backlog is None or self._paused or self._closed or self.client is None:
            return
        self._backlog = None
        self._answer(*backlog)
        if self._backlog is None and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _write(self, out: bytes) -> None:
        self.state.stats.net_output_bytes += len(out)
        self.transport.write(out)  # type: ignore[union-attr]

    def pause_writing(self) -> None:
        self._paused = True
        if self.transport is not None and (self.client is None or not self.client.subscriptions()):
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self._backlog is not None:
            self._drain_backlog()  # resumes reading once the backlog is answered
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed = True
        self.connections.discard(self)
        if self.client is not None:
            self.client.closing = True
            self.state.unregister(self.client)

    # -- server-initiated output ---------------------------------------------------------
    def _push(self, message: Any) -> None:
        transport = self.transport
        client = self.client
        if transport is None or client is None or transport.is_closing():
            return
        data = client.encode(message)
        if self._batch is not None:
            self._batch.append(data)
            return
        self._write(data)
        if client.subscriptions() or client.monitor:
            self._check_output_limit(transport, client)

    def _check_output_limit(self, transport: asyncio.Transport, client: Client) -> None:
        cfg = self.state.config.server
        size = transport.get_write_buffer_size()
        now = time.monotonic()
        over_hard = cfg.pubsub_output_hard_bytes and size > cfg.pubsub_output_hard_bytes
        over_soft = False
        if cfg.pubsub_output_soft_bytes and size > cfg.pubsub_output_soft_bytes:
            if not client.output_soft_since:
                client.output_soft_since = now
            elif now - client.output_soft_since >= cfg.pubsub_output_soft_seconds:
                over_soft = True
        else:
            client.output_soft_since = 0.0
        if over_hard or over_soft:
            log.warning(
                "closing client %s (%s): output buffer %d bytes over the pub/sub limit",
                client.id,
                client.addr,
                size,
            )
            self.state.stats.pubsub_clients_killed += 1
            client.closing = True
            transport.abort()

    def _close_from_server(self) -> None:
        """CLIENT KILL, QUIT, idle timeout: flush what is queued, then close."""
        if self.transport is not None:
            self.transport.close()


def _tune_socket(sock: socket.socket, keepalive_s: int) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if keepalive_s > 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if hasattr(socket, "TCP_KEEPIDLE"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, keepalive_s)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(keepalive_s // 3, 1))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    except OSError:
        pass


def _fmt_addr(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"{host}:{port}"
    return str(addr or "")
