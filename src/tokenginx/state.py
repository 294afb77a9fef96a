"""Server-wide state shared by every door: keyspace, command table, clients, counters.

One :class:`ServerState` per :class:`~tokenginx.server.Server`; nothing here is a
module global, so two servers in one process (tests do this) never share data.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tokenginx.clock import MsClock, system_ms
from tokenginx.commands.table import CommandTable
from tokenginx.config import Config
from tokenginx.gate.auth import auth_required
from tokenginx.pubsub import KeyspaceNotifier, PubSubHub
from tokenginx.storage.memory import MemoryKeyspace

if TYPE_CHECKING:
    from tokenginx.client import Client


@dataclass(slots=True)
class SlowlogEntry:
    id: int
    timestamp: int
    duration_us: int
    argv: list[bytes]
    addr: str
    name: bytes


@dataclass
class Stats:
    started_at: float = field(default_factory=time.time)
    started_monotonic: float = field(default_factory=time.monotonic)
    connections_received: int = 0
    rejected_connections: int = 0
    net_input_bytes: int = 0
    net_output_bytes: int = 0
    error_replies: int = 0
    errors_by_prefix: dict[str, int] = field(default_factory=dict)
    # instantaneous ops/sec: samples of (monotonic time, commands_processed)
    ops_samples: deque = field(default_factory=lambda: deque(maxlen=16))
    pubsub_clients_killed: int = 0
    # Commands run by doors other than RESP, by (door, command); RESP's share is the
    # command's total minus these (keeps the RESP hot path free of the bookkeeping).
    door_calls: dict[tuple[str, str], int] = field(default_factory=dict)

    def count_error(self, prefix: str) -> None:
        self.error_replies += 1
        self.errors_by_prefix[prefix] = self.errors_by_prefix.get(prefix, 0) + 1

    def sample_ops(self, commands_processed: int) -> None:
        self.ops_samples.append((time.monotonic(), commands_processed))

    def instantaneous_ops(self) -> int:
        if len(self.ops_samples) < 2:
            return 0
        (t0, c0), (t1, c1) = self.ops_samples[0], self.ops_samples[-1]
        return int((c1 - c0) / (t1 - t0)) if t1 > t0 else 0


class ServerState:
    def __init__(self, config: Config, table: CommandTable, clock: MsClock = system_ms) -> None:
        self.config = config
        self.table = table
        self.clock = clock
        self.keyspace = MemoryKeyspace(
            databases=config.server.databases,
            clock=clock,
            max_key_bytes=config.limits.key_bytes,
            max_memory=config.cache.max_memory_mb * 1024 * 1024,
            eviction_policy=config.cache.eviction_policy,
        )
        self.pubsub = PubSubHub()
        self.notifier = KeyspaceNotifier(self.pubsub, self.keyspace.on_change)
        self.notifier.configure(config.server.notify_keyspace_events)
        self.clients: dict[int, Client] = {}
        self.monitors: list[Client] = []
        self.stats = Stats()
        self.slowlog: deque[SlowlogEntry] = deque(maxlen=max(config.server.slowlog_max_len, 0) or None)
        self._slowlog_ids = itertools.count()
        self._client_ids = itertools.count(1)
        self.pid = os.getpid()
        self.run_id = os.urandom(20).hex()
        self.listening_ports: dict[str, int] = {}
        self.scripts: Any = None  # the scripting engine, set by the scripting module
        self.loading = False
        # A Lua script ran past the busy threshold (scripting/engine.py): the gate
        # answers -BUSY, and busy_poller (set by the Server) serves RESP clients.
        self.busy = False
        self.busy_poller: Any = None
        self.persistence: Any = None  # storage.persistence.manager.Persistence when enabled
        self.last_save = int(time.time())
        self.shutdown_requested: Any = None  # callable set by the Server

    def commands_processed(self) -> int:
        """Derived from per-command counters, so the hot path counts only once."""
        return sum(c.calls for c in self.table.all_with_subcommands())

    def uptime_seconds(self) -> int:
        return int(time.monotonic() - self.stats.started_monotonic)

    def stats_snapshot(self) -> dict[str, int]:
        """The statistics every door reports (HTTP ``/api/v1/stats``, gRPC ``GetStats``)."""
        return {
            "total_keys": self.keyspace.total_keys(),
            "memory_used_bytes": self.keyspace.used_memory(),
            "total_commands_processed": self.commands_processed(),
            "instantaneous_ops_per_sec": self.stats.instantaneous_ops(),
            "connected_clients": len(self.clients),
            "uptime_seconds": self.uptime_seconds(),
        }

    def next_client_id(self) -> int:
        return next(self._client_ids)

    def auth_required(self) -> bool:
        return auth_required(self.config)

    def register(self, client: Client) -> None:
        self.clients[client.id] = client
        self.stats.connections_received += 1

    def unregister(self, client: Client) -> None:
        self.clients.pop(client.id, None)
        client.unwatch()
        self.pubsub.drop_client(client)
        if client.monitor and client in self.monitors:
            self.monitors.remove(client)

    def add_slowlog(
        self, duration_us: int, argv: list[bytes], client: Client, argc: int | None = None
    ) -> None:
        """``argv`` may be only the first 32 arguments (already redacted) of ``argc``."""
        if self.slowlog.maxlen == 0:
            return
        argc = len(argv) if argc is None else argc
        # Redis keeps at most 32 arguments and 128 bytes of each.
        shown = [a[:128] + (b"... (%d more bytes)" % (len(a) - 128) if len(a) > 128 else b"") for a in argv[:32]]
        if argc > 32:
            shown[-1] = b"... (%d more arguments)" % (argc - 31)
        self.slowlog.appendleft(
            SlowlogEntry(next(self._slowlog_ids), int(time.time()), duration_us, shown, client.addr, client.name)
        )

    def resize_slowlog(self, maxlen: int) -> None:
        self.slowlog = deque(self.slowlog, maxlen=max(maxlen, 0))
