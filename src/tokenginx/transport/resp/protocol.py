"""RESP over TCP: one asyncio protocol object per connection.

Bytes from the socket go to the sans-IO :class:`RequestParser`; each request goes
through the gate; the replies of one read are written back in a single write, which
is what makes pipelining cheap. Backpressure: when the socket's write buffer is
full we stop reading from that client (asyncio ``pause_writing``), so a client that
pipelines without reading cannot make us buffer without bound. Pub/sub subscribers
are the exception (they do not send): their buffer is capped by the
``pubsub_output_*`` limits and the client is closed when over, as Redis does.

Application commands (``Route.register(name, protocol="tcp")``) arrive either as a
RESP/inline command the gate answers with a :class:`Deferred`, or as a JSON/XML line
(:class:`LineRequest`). Their handlers may run in a thread or await, so the
connection blocks like a Redis blocking command: what came before is answered at
once, the rest of the pipeline waits (reading paused) until the application's reply
is written, so replies always keep request order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from tokenginx.client import Client
from tokenginx.errors import ProtocolError
from tokenginx.replies import Push
from tokenginx.transport.resp.linemode import (
    LineRequest,
    encode_error,
)
from tokenginx.transport.resp.parser import ParserLimits, RequestParser, unauthenticated

if TYPE_CHECKING:
    from tokenginx.gate import Gate
    from tokenginx.state import ServerState

log = logging.getLogger("tokenginx.resp")

_MAX_CLIENTS_ERROR = b"-ERR max number of clients reached\r\n"
_MAX_PIPELINE_OUTPUT = 4 * 1024 * 1024
_YIELD_AFTER_BYTES = 256 * 1024  # a partial request this big: one read per loop turn
# The pub/sub channel ``server.push_message`` messages carry on RESP connections.
PUSH_CHANNEL = b"tokenginx:push"


class Deferred:
    """A reply that is not ready yet: the gate's answer for an application command,
    run by the connection's :class:`AppDispatcher` off the synchronous path."""

    __slots__ = ()


class AppDispatcher(Protocol):
    """What the RESP protocol needs from the application layer (``app/tcp.py``)."""

    def line_precheck(self, conn: RespProtocol, req: LineRequest) -> bytes | None:
        """The encoded answer if ``req`` can be answered at once (an error), else None."""

    def start(self, conn: RespProtocol, item: Deferred | LineRequest) -> asyncio.Task[Any]:
        """Run ``item``; the task's result is ``(reply_bytes, after_send)``."""


def parser_limits(state: ServerState) -> ParserLimits:
    lim = state.config.limits
    return ParserLimits(
        max_multibulk_len=lim.multibulk_len,
        max_bulk_bytes=max(lim.bulk_bytes, lim.value_bytes, lim.key_bytes),
        max_inline_bytes=lim.inline_bytes,
        max_query_bytes=lim.query_buffer_bytes,
        max_line_bytes=max(lim.value_bytes, lim.key_bytes),
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
        "app",
        "line_format",
        "_app_task",
        "_limits",
    )

    def __init__(
        self,
        state: ServerState,
        gate: Gate,
        connections: set[RespProtocol],
        app: AppDispatcher | None = None,
    ) -> None:
        self.state = state
        self.gate = gate
        self.connections = connections
        self.app = app
        # "json"/"xml" once the client sent a line-mode request: pushes then go as JSON lines.
        self.line_format: str | None = None
        self._app_task: asyncio.Task[Any] | None = None
        self.transport: asyncio.Transport | None = None
        self.client: Client | None = None
        self._limits = parser_limits(state)
        self.parser = RequestParser(self._limits)
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
        if self.client is not None:
            # Accepted while a script was busy (busy.py) and now handed to the loop:
            # same client, a real transport.
            self.transport = transport  # type: ignore[assignment]
            return
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
        if not self.client.authenticated:
            # Until AUTH, Redis's limits: 10 arguments, 16 KiB per argument.
            self.parser.set_limits(unauthenticated(self._limits))

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None or client.closing:
            return
        client.last_interaction = time.monotonic()
        self.state.stats.net_input_bytes += len(data)
        parser = self.parser
        if parser.limits is not self._limits and client.authenticated:
            parser.set_limits(self._limits)  # authenticated since the last read
        try:
            requests = parser.feed(data)
            error = None
        except ProtocolError as e:
            requests = self.parser.error_prefix
            error = e
        if not requests and error is None and parser.buffered > _YIELD_AFTER_BYTES:
            # A huge request arriving: let the other clients in before reading on, so
            # parsing megabytes for one client never holds the loop for long.
            self._yield_reading()
            return
        if self._app_task is not None or self._backlog is not None:
            self._enqueue(requests, error)
            return
        # The reply is computed before ``client.encode`` is looked up: HELLO changes it.
        if len(requests) == 1 and error is None:
            argv = requests[0]
            if type(argv) is not LineRequest:
                reply = self.gate.execute(client, argv)
                try:
                    out = client.encode(reply)
                except TypeError:  # costs nothing unless raised: only a Deferred gets here
                    if not isinstance(reply, Deferred):
                        raise
                    self._start_app(reply)
                    return
                self._reply(out, 1)
                return
        self._answer(requests, error)

    def _yield_reading(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self._backlog is not None:
            return
        transport.pause_reading()
        asyncio.get_running_loop().call_soon(self._resume_after_yield)

    def _resume_after_yield(self) -> None:
        transport = self.transport
        if (
            transport is None
            or transport.is_closing()
            or self._paused
            or self._backlog is not None
            or self._app_task is not None
        ):
            return
        transport.resume_reading()

    def _enqueue(self, requests: list[Any], error: ProtocolError | None) -> None:
        """Requests that arrived while earlier ones still wait: queue them behind."""
        if not requests and error is None:
            return
        backlog = self._backlog
        if backlog is None:
            self._backlog = (requests, error)
        elif backlog[1] is None:
            self._backlog = (backlog[0] + requests, error)
        # else: the connection closes at the earlier protocol error; these never run.
        if self.transport is not None:
            self.transport.pause_reading()

    def _reply(self, out: bytes, count: int) -> None:
        """Write ``count`` replies — after the write-ahead log has the changes they
        acknowledge. If the log cannot be written, the client gets ``count`` MISCONF
        errors instead: a change that is not in the log is never acknowledged."""
        journal = self.state.keyspace.journal
        if journal is not None and (
            self._held or journal.dirty or (journal.buffer and journal.error is None)
        ):
            if self.state.busy and not self._held:
                # Answered while a script is busy (-BUSY, SCRIPT KILL, MULTI…): these
                # acknowledge no write, and the log commits only after the script.
                self._send(out)
                return
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
        line_request = LineRequest
        try:
            for i, argv in enumerate(requests):
                if type(argv) is not line_request:
                    reply = execute(client, argv)
                    try:
                        encoded = client.encode(reply)
                    except TypeError:  # free unless raised: only a Deferred gets here
                        if not isinstance(reply, Deferred):
                            raise
                        error = self._defer(reply, requests, i, error)
                        break
                else:
                    line_reply = self._line_precheck(argv)
                    if line_reply is None:
                        error = self._defer(argv, requests, i, error)
                        break
                    encoded = line_reply
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
            fmt = getattr(error, "fmt", None)  # a JSON/XML line too long: answer in kind
            parts.append(
                encode_error(fmt, error.message)
                if fmt
                else b"-ERR " + error.message.encode() + b"\r\n"
            )
            client.closing = True
            log.info("protocol error from %s: %s", client.addr, error.message)
        self._reply(b"".join(parts), executed + (error is not None))
        if self._backlog is not None and not self._paused and not client.closing:
            # The kernel took everything at once: go on after pending I/O is served.
            asyncio.get_running_loop().call_soon(self._drain_backlog)

    def _defer(
        self,
        item: Deferred | LineRequest,
        requests: list[Any],
        i: int,
        error: ProtocolError | None,
    ) -> ProtocolError | None:
        """Start the application command ``requests[i]``; what follows it (and a
        protocol error after it) waits in the backlog until its reply is written.
        Returns the error still to be answered now (none: it moved to the backlog)."""
        if i + 1 < len(requests) or error is not None:
            self._backlog = (requests[i + 1 :], error)
            error = None
        self._start_app(item)
        return error

    def _drain_backlog(self) -> None:
        backlog = self._backlog
        if (
            backlog is None
            or self._paused
            or self._closed
            or self.client is None
            or self._app_task is not None
        ):
            return
        self._backlog = None
        self._answer(*backlog)
        if (
            self._backlog is None
            and self._app_task is None
            and self.transport is not None
            and not self.transport.is_closing()
        ):
            self.transport.resume_reading()

    # -- application commands ------------------------------------------------------------
    def _line_precheck(self, req: LineRequest) -> bytes | None:
        self.line_format = req.fmt
        if self.client is not None:
            self.client.line_mode = True
        if self.app is None:
            return encode_error(req.fmt, "ERR this server has no application commands")
        return self.app.line_precheck(self, req)

    def _start_app(self, item: Deferred | LineRequest) -> None:
        assert self.app is not None
        if self.transport is not None:
            self.transport.pause_reading()
        task = self.app.start(self, item)
        self._app_task = task
        task.add_done_callback(self._app_done)

    def _app_done(self, task: asyncio.Task[Any]) -> None:
        self._app_task = None
        if task.cancelled():
            return
        out: bytes
        after: Callable[[], Any] | None
        try:
            out, after = task.result()
        except Exception:  # the dispatcher encodes handler errors; this is a bug
            log.exception("application command failed")
            out, after = b"-ERR internal error\r\n", None
        self._reply(out, 1)
        if after is not None:
            after()  # background tasks start once the reply is on its way
        transport = self.transport
        if self._closed or transport is None or transport.is_closing():
            return
        if self._backlog is not None:
            self._drain_backlog()
        elif not self._paused:
            transport.resume_reading()

    def servable_while_busy(self) -> bool:
        """Whether a busy script's poll may answer this connection now (see busy.py):
        not when earlier replies still wait, which the answers would overtake."""
        return not (
            self._closed
            or self._paused
            or self._held
            or self._backlog is not None
            or self._app_task is not None
            or self.client is None
            or self.client.closing
        )

    @property
    def client_id(self) -> str:
        """The ``"ip:port"`` the application API names this connection by."""
        return self.client.addr if self.client is not None else ""

    def accepts_push(self) -> bool:
        """Whether ``server.push_message`` can reach this client without corrupting its
        reply stream: line-mode and RESP3 clients always, RESP2 ones only while
        subscribed (only then do they read unsolicited arrays as messages)."""
        client = self.client
        if client is None or client.closing or self._closed:
            return False
        return self.line_format is not None or client.protocol == 3 or client.subscriptions() > 0

    def push_app_message(self, line: bytes, payload: bytes) -> bool:
        """Deliver one ``server.push_message`` message, pre-encoded as a JSON ``line``
        (line-mode clients) and as the ``payload`` of a pub/sub message (RESP clients).
        False if this client cannot take it (any more)."""
        transport, client = self.transport, self.client
        if transport is None or client is None or transport.is_closing() or not self.accepts_push():
            return False
        if self.line_format is not None:
            if self._batch is not None:
                self._batch.append(line)
                return True
            self._write(line)
            self._check_output_limit(transport, client)
            return True
        self._push(Push([b"message", PUSH_CHANNEL, payload]))
        if self._batch is None and not transport.is_closing():
            self._check_output_limit(transport, client)
        return True

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
        elif (
            self._app_task is None
            and self.transport is not None
            and not self.transport.is_closing()
        ):
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
