"""Application TCP commands on the RESP port, and ``server.push_message``.

A command registered with ``Route.register("clients", protocol="tcp")`` is reachable
three ways on the RESP port (the first byte of each request picks the format):

* as a RESP or inline command (``redis-cli -p 6380 clients``) — when its name is not a
  built-in command, it is installed in the server's command table at start, so the gate
  applies arity, authentication (``auth=True`` routes), statistics and MONITOR to it;
  the handler's value comes back as RESP (dict → map / flat array, list → array, str →
  bulk, int → integer, None → nil, an error → ``-ERR``);
* as a JSON line ``{"command": "clients", "data": …}`` answered with one JSON line;
* as an XML line ``<request command="clients"><data>…</data></request>`` answered with
  one ``<response>…</response>`` line.

A name that is also a built-in command (the seed's ``subscribe``) stays the built-in
for RESP and inline requests; JSON and XML lines always reach the application.

Handlers get a :class:`TCPRequest`, may be sync (run with their middleware on the
handler pool, off the event loop) or ``async def`` (run on the loop), and each request
has its own ``g``. The connection waits for the reply before it reads on, so replies
keep the order of the requests (see ``transport/resp/protocol.py``).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokenginx.app.background import BackgroundTasks, is_async_callable
from tokenginx.app.context import begin
from tokenginx.app.responses import HTTPJSONResponse
from tokenginx.app.routes import AppRoute
from tokenginx.commands.table import CommandGroup
from tokenginx.errors import CommandError
from tokenginx.transport.resp.linemode import (
    JSON,
    XML,
    LineRequest,
    encode_error,
    encode_json,
    encode_json_push,
    encode_reply,
)
from tokenginx.transport.resp.parser import InlineArgv
from tokenginx.transport.resp.protocol import Deferred, RespProtocol

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

    from tokenginx.client import Client
    from tokenginx.server import Server

log = logging.getLogger("tokenginx.app")

_NOAUTH = "NOAUTH Authentication required."


class TCPRequest:
    """What a TCP command handler receives.

    ``data`` is the JSON value of ``"data"`` (JSON lines), the ``<data>`` element as
    text / dict / list (XML lines; the whole ``<request>`` is in ``element``), or the
    arguments after the command name as ``str`` (RESP and inline; raw bytes in ``args``).
    """

    protocol = "tcp"

    def __init__(
        self,
        *,
        command: str,
        data: Any,
        data_type: str,
        client_address: tuple[str, int],
        bg: BackgroundTasks,
        request_id: str,
        server: Server,
        args: list[bytes] | None = None,
        element: Element | None = None,
        user: str | None = None,
    ) -> None:
        self.command = command
        self.data = data
        self.data_type = data_type  # "json" | "xml" | "resp" | "inline"
        self.client_address = client_address
        self.bg = bg
        self.request_id = request_id
        self.server = server
        self.args = args or []
        self.element = element
        self.user = user  # the authenticated user of the connection, if any

    @property
    def client_id(self) -> str:
        """``"ip:port"``, the id ``server.push_message`` and ``server.connections`` use."""
        return f"{self.client_address[0]}:{self.client_address[1]}"

    def __repr__(self) -> str:
        return f"<TCPRequest {self.command} ({self.data_type}) from {self.client_id}>"


class AppCall(Deferred):
    """The gate's reply for an application command sent as RESP or inline."""

    __slots__ = ("name", "argv", "inline")

    def __init__(self, name: str, argv: list[bytes], inline: bool) -> None:
        self.name = name
        self.argv = argv
        self.inline = inline


@dataclass(frozen=True)
class TCPConnection:
    """One entry of ``server.connections`` (a snapshot, safe to keep)."""

    client_id: str
    client_address: tuple[str, int]
    data_type: str  # "resp" until the client sends a JSON or XML line
    resp_version: int
    name: str
    user: str
    authenticated: bool
    subscriptions: int
    receives_push: bool
    connected_for: float  # seconds


class TCPApplication:
    """The application side of the RESP port for one :class:`Server`."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.installed: set[str] = set()  # command names added to the command table

    # -- the command table -----------------------------------------------------------------
    def install_commands(self) -> None:
        """Add every TCP route whose name is free to the command table (done at start)."""
        table = self.server.table
        group = CommandGroup("application")
        for route in self.server.routes.tcp_routes():
            name = route.path.lower()
            if name in self.installed or table.get(name) is not None:
                continue  # a built-in keeps its name for RESP and inline requests
            flags = "no_multi noscript" + ("" if route.auth else " no_auth")
            group.command(
                name, arity=-1, flags=flags, acl="slow", summary=_summary(route), since="0.1.0",
                complexity="Depends on the application.",
            )(self._command_handler(name))
        for spec in group.commands:
            table.add(spec)
            self.installed.add(spec.name)

    def _command_handler(self, name: str) -> Callable[[Client, list[bytes]], Any]:
        def handler(client: Client, argv: list[bytes]) -> Any:
            if client.kind != "resp":  # Lua, HTTP and gRPC cannot wait for a handler
                raise CommandError(f"ERR '{name}' is an application command of the RESP port")
            # ``command`` is the name as the client spelled it (lookups ignore case).
            return AppCall(argv[0].decode("utf-8", "replace"), argv, type(argv) is InlineArgv)

        return handler

    # -- what the connection asks ----------------------------------------------------------
    def line_precheck(self, conn: RespProtocol, req: LineRequest) -> bytes | None:
        """Answer at once what needs no handler: undecodable lines, unknown commands,
        missing authentication, and ``auth`` (so a line-mode client can authenticate)."""
        if req.error is not None:
            return encode_error(req.fmt, "ERR " + req.error)
        route = self.server.routes.tcp_route(req.command)
        client = conn.client
        assert client is not None
        if route is None:
            if req.command.lower() == "auth":
                return self._line_auth(client, req)
            return encode_error(req.fmt, f"ERR unknown command '{req.command[:128]}'")
        if route.auth and not client.authenticated:
            return encode_error(req.fmt, _NOAUTH)
        return None

    def _line_auth(self, client: Client, req: LineRequest) -> bytes:
        data = req.data
        if isinstance(data, dict):
            creds = [data.get("username"), data.get("password")]
            creds = creds[1:] if creds[0] is None else creds
        else:
            creds = data if isinstance(data, list) else [data]
        if not creds or not all(isinstance(c, str) for c in creds):
            return encode_error(req.fmt, 'ERR auth needs "data": "password" or ["user", "password"]')
        reply = self.server.gate.execute(client, [b"AUTH", *(c.encode() for c in creds)])
        if isinstance(reply, CommandError):
            return encode_error(req.fmt, reply.message)
        return encode_reply(req.fmt, {"status": "OK"})

    def start(self, conn: RespProtocol, item: Deferred | LineRequest) -> asyncio.Task[Any]:
        """Run one application command; the task's result is ``(reply, after_send)``."""
        return asyncio.get_running_loop().create_task(self._run(conn, item))

    async def _run(self, conn: RespProtocol, item: Deferred | LineRequest) -> tuple[bytes, Any]:
        client = conn.client
        assert client is not None
        rid = uuid.uuid4().hex
        begin(request_id=rid)  # this task's own context: a fresh g for this request only
        fmt, request, route = self._request(conn, client, item, rid)
        if route is None:  # removed from the registry since it was installed
            return self._error(client, fmt, f"ERR unknown command '{request.command[:128]}'"), None
        try:
            if is_async_callable(route.handler):
                result = await _run_async(self.server, route, request)
            else:
                result = await self.server.handler_pool.run(
                    contextvars.copy_context(), _run_sync, self.server, route, request
                )
            out = self._encode(client, fmt, result)
        except CommandError as e:
            out = self._error(client, fmt, e.message)
        except Exception:
            log.exception(
                "TCP command %s failed", route.path, extra={"event": "app_error", "request_id": rid}
            )
            out = self._error(client, fmt, f"ERR internal error while running '{route.path}'")
        bg = request.bg
        return out, (bg.schedule if len(bg) else None)

    def _request(
        self, conn: RespProtocol, client: Client, item: Deferred | LineRequest, rid: str
    ) -> tuple[str, TCPRequest, AppRoute | None]:
        common = {
            "client_address": _address(conn),
            "bg": BackgroundTasks(self.server.background, rid),
            "request_id": rid,
            "server": self.server,
            "user": client.user if client.authenticated else None,
        }
        if isinstance(item, LineRequest):
            route = self.server.routes.tcp_route(item.command)
            req = TCPRequest(
                command=item.command, data=item.data, data_type=item.fmt, element=item.element,
                **common,
            )
            return item.fmt, req, route
        assert isinstance(item, AppCall)
        args = item.argv[1:]
        req = TCPRequest(
            command=item.name,
            data=[a.decode("utf-8", "replace") for a in args],
            data_type="inline" if item.inline else "resp",
            args=args,
            **common,
        )
        return "resp", req, self.server.routes.tcp_route(item.name)

    def _encode(self, client: Client, fmt: str, result: Any) -> bytes:
        if isinstance(result, HTTPJSONResponse):
            result = result.data
        if fmt == "resp":
            return client.encode(to_resp(result))
        try:
            return encode_reply(fmt, result)
        except (TypeError, ValueError) as e:
            log.error("TCP command reply could not be encoded as %s: %s", fmt, e)
            return encode_error(fmt, f"ERR the reply cannot be encoded as {fmt.upper()}")

    @staticmethod
    def _error(client: Client, fmt: str, message: str) -> bytes:
        if fmt == "resp":
            return client.encode(CommandError(message))
        return encode_error(fmt, message)

    # -- server.connections and server.push_message -----------------------------------------
    def connections(self) -> dict[str, TCPConnection]:
        """The open RESP-port connections by ``"ip:port"``; callable from any thread."""
        now = time.monotonic()
        out: dict[str, TCPConnection] = {}
        for conn in list(self.server._connections):  # list(set) is atomic under the GIL
            client = conn.client
            if client is None or client.closing:
                continue
            out[client.addr] = TCPConnection(
                client_id=client.addr,
                client_address=_address(conn),
                data_type=conn.line_format or "resp",
                resp_version=client.protocol,
                name=client.name.decode("utf-8", "replace"),
                user=client.user,
                authenticated=client.authenticated,
                subscriptions=client.subscriptions(),
                receives_push=conn.accepts_push(),
                connected_for=now - client.created,
            )
        return out

    def push(self, message: Any, client_id: str | None = None) -> int:
        """Queue ``message`` to one client (``"ip:port"``) or to every client that can
        take a push; returns how many it was queued to (0 for an unknown id).

        Safe from any thread: the targets are chosen here, the writes happen on the
        event loop. Line-mode clients get ``{"push": message}\\n``; RESP3 clients a
        push frame and subscribed RESP2 clients a pub/sub message, both
        ``["message", "tokenginx:push", data]`` where ``data`` is the string, or the JSON
        text of any other value.
        """
        line = encode_json_push(message)  # raises TypeError now, in the caller, if it cannot
        if isinstance(message, str):
            payload = message.encode("utf-8", "surrogateescape")
        elif isinstance(message, (bytes, bytearray, memoryview)):
            payload = bytes(message)
        else:
            payload = encode_json(message)[:-1]
        loop = self.server._loop
        if loop is None or loop.is_closed():
            return 0
        targets = [
            c
            for c in list(self.server._connections)
            if (client_id is None or c.client_id == client_id) and c.accepts_push()
        ]
        if not targets:
            return 0
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return sum(1 for c in targets if c.push_app_message(line, payload))
        try:
            loop.call_soon_threadsafe(_deliver, targets, line, payload)
        except RuntimeError:  # the loop closed in between
            return 0
        return len(targets)


def _deliver(targets: list[RespProtocol], line: bytes, payload: bytes) -> None:
    for conn in targets:
        conn.push_app_message(line, payload)


def _run_sync(server: Server, route: AppRoute, request: TCPRequest) -> Any:
    """Middleware and a sync handler, in a handler-pool thread."""
    manager = server.middleware_manager
    result = manager.run_request(request, "tcp")
    if result is None:
        result = route.handler(request)
        if inspect.isawaitable(result):  # a sync callable that returned a coroutine
            loop = manager.loop
            if loop is None:
                raise RuntimeError("an async handler needs the server's event loop")
            result = asyncio.run_coroutine_threadsafe(_awaited(result), loop).result()
    return manager.run_response(request, result, "tcp")


async def _run_async(server: Server, route: AppRoute, request: TCPRequest) -> Any:
    manager = server.middleware_manager
    result = await manager.arun_request(request, "tcp")
    if result is None:
        result = await route.handler(request)
    return await manager.arun_response(request, result, "tcp")


async def _awaited(value: Any) -> Any:
    return await value


def to_resp(value: Any, depth: int = 0) -> Any:
    """A handler's value as one the RESP encoder takes (unknown types as their text)."""
    if value is None or isinstance(value, (str, bytes, int, float, CommandError)):
        return value
    if depth > 64:
        raise CommandError("ERR reply nested too deeply")
    if isinstance(value, dict):
        return {to_resp(k, depth + 1): to_resp(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_resp(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return {to_resp(v, depth + 1) for v in value}
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return str(value)


def _address(conn: RespProtocol) -> tuple[str, int]:
    peer = conn.transport.get_extra_info("peername") if conn.transport is not None else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return (str(peer[0]), int(peer[1]))
    host, _, port = conn.client_id.rpartition(":")
    return (host, int(port) if port.isdigit() else 0)


def _summary(route: AppRoute) -> str:
    if route.summary:
        return route.summary
    doc = inspect.getdoc(route.handler) or ""
    return doc.strip().splitlines()[0] if doc.strip() else f"Application command {route.path}."


__all__ = ["AppCall", "JSON", "XML", "TCPApplication", "TCPConnection", "TCPRequest", "to_resp"]
