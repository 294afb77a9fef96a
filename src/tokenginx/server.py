"""The composition root: builds everything from a :class:`Config` and runs it.

``Server(config).run()`` blocks until SIGINT/SIGTERM (or ``stop()``); shutdown is
stepwise: stop accepting, let queued replies flush, close connections, stop the
periodic tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

from tokenginx.app.background import BackgroundPool, HandlerPool
from tokenginx.app.logger import ensure_logging
from tokenginx.app.middleware import MiddlewareManager
from tokenginx.app.routes import DEFAULT_REGISTRY, RouteRegistry
from tokenginx.app.tcp import TCPApplication, TCPConnection
from tokenginx.clock import MsClock, system_ms
from tokenginx.commands import ALL_GROUPS
from tokenginx.commands.table import CommandGroup, CommandTable
from tokenginx.config import Config, parse_addr
from tokenginx.gate import Gate
from tokenginx.idp import IdP, idp_enabled
from tokenginx.state import ServerState
from tokenginx.transport.resp.busy import BusyPoller
from tokenginx.transport.resp.protocol import RespProtocol

log = logging.getLogger("tokenginx.server")


class Door(Protocol):
    """A non-RESP interface (HTTP, gRPC) started and stopped with the server.

    ``start`` binds its listener and returns the bound port; every request it serves
    goes through ``server.gate`` like a RESP command does.
    """

    name: str

    async def start(self) -> int: ...

    async def stop(self) -> None: ...


class Server:
    def __init__(
        self,
        config: Config | None = None,
        *,
        clock: MsClock = system_ms,
        groups: Iterable[CommandGroup] | None = None,
        routes: RouteRegistry | None = None,
    ) -> None:
        # Without a config: the defaults and TOKENGINX_* environment, as tokenginx-server.
        self.config = config or Config.load()
        self.table = CommandTable(ALL_GROUPS if groups is None else groups)
        self.state = ServerState(self.config, self.table, clock)
        self.gate = Gate(self.state)
        self.state.gate = self.gate  # type: ignore[attr-defined]
        self.state.shutdown_requested = self.stop
        self._connections: set[RespProtocol] = set()
        # A Lua script past the busy threshold serves these connections from its hook.
        self.state.busy_poller = BusyPoller(
            self._connections,
            lambda: [sock for listener in self._listeners for sock in listener.sockets],
            lambda: RespProtocol(self.state, self.gate, self._connections, self.tcp_app),
        )
        self._listeners: list[asyncio.base_events.Server] = []
        self._tasks: list[asyncio.Task] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._stop_requested = False
        self.ready = threading.Event()
        self._expire_handle: asyncio.TimerHandle | None = None
        self.doors: list[Door] = []
        # The built-in identity provider (OAuth/OIDC and CAS servers, accounts), if on.
        self.idp = IdP(self) if idp_enabled(self.config) else None
        # The application API: routes, middleware, background tasks (tokenginx.app).
        self.routes = DEFAULT_REGISTRY if routes is None else routes
        self.middleware_manager = MiddlewareManager()
        self.background = BackgroundPool()
        self.handler_pool = HandlerPool()
        # TCP commands on the RESP port, server.connections and server.push_message.
        self.tcp_app = TCPApplication(self)

    # -- lifecycle -----------------------------------------------------------------------
    def run(self) -> None:
        """Start every listener and block until stopped."""
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
            runner = asyncio.run
        ensure_logging(self.config)
        runner(self.serve())

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self.middleware_manager.loop = self.background.loop = self._loop
        if self._stop_requested:
            return
        await self.start()
        # Signal handlers exist only on the main thread of a POSIX process; a server
        # run from another thread (or on Windows) is stopped with stop() instead.
        if threading.current_thread() is threading.main_thread() and os.name == "posix":
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(sig, self.stop)
        try:
            await self._stopping.wait()
        finally:
            await self.shutdown()

    def _open_persistence(self) -> Any:
        """The persistence manager for the data directory, not yet loaded (None if off)."""
        pcfg = self.config.persistence
        if not pcfg.enabled:
            return None
        from tokenginx.config import data_dir
        from tokenginx.storage.persistence.manager import Persistence

        return Persistence(
            self.state.keyspace,
            data_dir(self.config),
            fsync=pcfg.fsync,
            repair=pcfg.repair,
            snapshot_min_log_bytes=pcfg.snapshot_min_log_mb * 1024 * 1024,
            snapshot_growth_ratio=pcfg.snapshot_growth_ratio,
        )

    async def _load(self, persistence: Any) -> None:
        """Recover the data directory in a worker thread while the doors already answer:
        meanwhile commands get ``-LOADING`` and health checks 503, as with Redis."""
        self.gate.set_loading(True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, persistence.recover)
        finally:
            self.gate.set_loading(False)
        journal = persistence.start(asyncio.get_running_loop().call_soon)
        journal.on_error_change = self.gate.update_guard
        self.state.persistence = persistence
        self.state.last_save = persistence.status.last_save

    async def start(self) -> None:
        persistence = self._open_persistence()
        if persistence is not None:
            self.gate.set_loading(True)  # from the first accepted connection on
        try:
            self.tcp_app.install_commands()
            await self._listen()
            if persistence is not None:
                await self._load(persistence)
        except BaseException:
            await self._close_listeners()
            raise
        # Everything alive now (imports, the recovered dataset) is long-lived: keep it
        # out of the cyclic GC's full passes, which would otherwise walk every loaded
        # hash and set (and touch their pages while a snapshot child runs).
        gc.freeze()
        self._schedule_expire_cycle()
        self._tasks.append(asyncio.create_task(self._cron(), name="tokenginx-cron"))
        log.info(
            "server started",
            extra={"event": "started", "ports": dict(self.state.listening_ports), "pid": self.state.pid},
        )
        self.ready.set()

    async def _listen(self) -> None:
        cfg = self.config.server
        host, port = parse_addr(cfg.tcp_addr, "server.tcp_addr")
        loop = asyncio.get_running_loop()
        binds = [(host, False)] + [
            (b[1:], True) if b.startswith("-") else (b, False) for b in cfg.extra_tcp_binds
        ]
        for bind_host, optional in binds:
            try:
                listener = await loop.create_server(
                    lambda: RespProtocol(self.state, self.gate, self._connections, self.tcp_app),
                    host=bind_host,
                    port=port,
                    reuse_address=True,
                    backlog=511,
                )
            except OSError as e:
                if optional:
                    log.debug("optional bind %s:%s skipped: %s", bind_host, port, e)
                    continue
                raise
            self._listeners.append(listener)
            if port == 0:  # ephemeral: every extra bind must use the same port
                port = listener.sockets[0].getsockname()[1]
        self.state.listening_ports["resp"] = port
        for door in self._build_doors():
            self.state.listening_ports[door.name] = await door.start()
            self.doors.append(door)

    async def _close_listeners(self) -> None:
        for listener in self._listeners:
            listener.close()
        for door in reversed(self.doors):
            try:
                await door.stop()
            except Exception:
                log.exception("stopping the %s door failed", door.name)
        self.doors.clear()

    def _build_doors(self) -> list[Door]:
        doors: list[Door] = []
        if self.config.http.enabled:
            from tokenginx.transport.http.door import HTTPDoor

            doors.append(HTTPDoor(self))
        elif self.routes.http_routes():
            log.warning("http.enabled is false: the application's HTTP routes are not served")
        if self.config.grpc.enabled:
            from tokenginx.transport.grpc.door import GrpcDoor

            doors.append(GrpcDoor(self))
        return doors

    def stop(self) -> None:
        """Ask the server to shut down; safe from signal handlers and other threads."""
        self._stop_requested = True
        loop, ev = self._loop, self._stopping
        if loop is None or ev is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            ev.set()
        else:
            loop.call_soon_threadsafe(ev.set)

    async def shutdown(self) -> None:
        log.info("shutting down", extra={"event": "stopping", "clients": len(self._connections)})
        # 1. stop accepting (and finish the HTTP and gRPC doors' requests)
        await self._close_listeners()
        # application background tasks (they may still push to the connections below)
        await self.background.drain(self.config.server.shutdown_timeout)
        self.handler_pool.shutdown()
        # 2. let each connection flush its queued replies, then close it
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.close()
        deadline = time.monotonic() + self.config.server.shutdown_timeout
        while self._connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.abort()
        # 3. persistence: final snapshot, flush and close the log
        persistence = self.state.persistence
        if persistence is not None:
            persistence.close(final_snapshot=self.config.persistence.save_on_shutdown)
            self.state.persistence = None
        # 4. periodic work
        if self._expire_handle is not None:
            self._expire_handle.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.wait_closed(), 1.0)
        self._listeners.clear()
        log.info("server stopped", extra={"event": "stopped"})

    @property
    def stopping(self) -> bool:
        """True once a shutdown was asked for (health checks answer 503 from then on)."""
        return self._stop_requested

    # -- TCP clients (the application API) -------------------------------------------------
    def push_message(self, message: Any, client_id: str | None = None) -> int:
        """Push ``message`` to the TCP client ``client_id`` (``"ip:port"``) or, without
        one, to every client that can take a push; returns how many it was queued to
        (0 for an unknown id). Safe from any thread and from async code."""
        return self.tcp_app.push(message, client_id)

    @property
    def connections(self) -> dict[str, TCPConnection]:
        """The open RESP-port connections by ``"ip:port"`` (a snapshot)."""
        return self.tcp_app.connections()

    # The seed's examples read ``server._active_connections.keys()``.
    _active_connections = connections

    @property
    def port(self) -> int:
        return self.state.listening_ports.get("resp", 0)

    @property
    def http_port(self) -> int:
        return self.state.listening_ports.get("http", 0)

    @property
    def grpc_port(self) -> int:
        return self.state.listening_ports.get("grpc", 0)

    # -- periodic work -------------------------------------------------------------------
    def _schedule_expire_cycle(self, soon: bool = False) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.0 if soon else 1.0 / self.config.ttl.hz
        self._expire_handle = loop.call_later(delay, self._run_expire_cycle)

    def _run_expire_cycle(self) -> None:
        backlog = self.state.keyspace.active_expire_cycle(self.config.ttl.cycle_budget_ms)
        # With a backlog, run again as soon as pending I/O has been served: each
        # slice is bounded by the budget, so clients never wait more than that.
        self._schedule_expire_cycle(soon=backlog)

    async def _cron(self) -> None:
        """Ten times a second: persistence housekeeping; once a second: idle timeouts
        and ops/sec sampling (Redis's serverCron)."""
        tick = 0
        while True:
            await asyncio.sleep(0.1)
            self._persistence_cron()
            tick += 1
            if tick % 10:
                continue
            self.state.stats.sample_ops(self.state.commands_processed())
            timeout = self.config.server.idle_timeout
            if timeout > 0:
                now = time.monotonic()
                for client in list(self.state.clients.values()):
                    # Redis exempts subscribers and MONITOR clients from the timeout; so
                    # are line-mode clients, which wait for server pushes the same way.
                    if (client.kind != "resp" or client.subscriptions() or client.monitor
                            or client.line_mode):
                        continue
                    if now - client.last_interaction > timeout:
                        log.info("closing idle client", extra={"event": "idle_timeout", "client": client.id})
                        client.close()


    def _persistence_cron(self) -> None:
        persistence = self.state.persistence
        if persistence is None:
            return
        try:
            persistence.poll_child()
            journal = persistence.journal
            if journal is not None and journal.error is not None:
                journal.retry()
            elif persistence.should_snapshot():
                persistence.bgsave()
        except OSError as e:
            log.error("persistence housekeeping failed: %s", e, extra={"event": "persistence_error"})


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
