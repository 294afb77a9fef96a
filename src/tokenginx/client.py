"""Per-connection state, the same for every door (RESP, HTTP, gRPC, Lua).

A transport creates one :class:`Client` per connection (or per request for stateless
doors) and passes it with each argument vector to the gate. The client carries who
is calling (``user``/``authenticated``), where (``db``), how replies are encoded
(``protocol``) and the per-connection modes Redis has: MULTI, WATCH, pub/sub,
MONITOR. ``restricted`` is kept True whenever any mode needs the gate's slow path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tokenginx.transport.resp.encoder import Encoder, encode_resp2, encode_resp3

if TYPE_CHECKING:
    from tokenginx.state import ServerState
    from tokenginx.storage.memory import Database


class Client:
    __slots__ = (
        "id",
        "state",
        "kind",
        "addr",
        "laddr",
        "name",
        "lib_name",
        "lib_ver",
        "created",
        "last_interaction",
        "db",
        "db_index",
        "protocol",
        "encode",
        "authenticated",
        "user",
        "restricted",
        "multi",
        "multi_error",
        "watched",
        "dirty_cas",
        "channels",
        "patterns",
        "monitor",
        "closing",
        "no_evict",
        "no_touch",
        "last_command",
        "push_sink",
        "closer",
        "output_soft_since",
        "in_script",
        "line_mode",
    )

    def __init__(
        self,
        state: ServerState,
        kind: str = "resp",
        addr: str = "",
        laddr: str = "",
        push_sink: Callable[[Any], None] | None = None,
        closer: Callable[[], None] | None = None,
    ) -> None:
        self.id = state.next_client_id()
        self.state = state
        self.kind = kind
        self.addr = addr
        self.laddr = laddr
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        now = time.monotonic()
        self.created = now
        self.last_interaction = now
        self.db_index = 0
        self.db: Database = state.keyspace.db(0)
        self.protocol = 2
        self.encode: Encoder = encode_resp2
        self.authenticated = not state.auth_required()
        self.user = "default"
        self.multi: list[tuple[Any, list[bytes]]] | None = None
        self.multi_error = False
        self.watched: list[tuple[Database, bytes]] = []
        self.dirty_cas = False
        self.channels: set[bytes] = set()
        self.patterns: set[bytes] = set()
        self.monitor = False
        self.closing = False
        self.no_evict = False
        self.no_touch = False
        self.last_command: Any = None  # the Command object last run
        self.push_sink = push_sink
        self.closer = closer
        self.output_soft_since = 0.0
        self.in_script = False
        # Spoke a JSON/XML line (the application API's long-lived TCP clients).
        self.line_mode = False
        self.restricted = False
        self.update_restricted()

    # -- modes -----------------------------------------------------------------------
    def update_restricted(self) -> None:
        self.restricted = (
            not self.authenticated
            or self.multi is not None
            or (self.protocol == 2 and self.subscriptions() > 0)
        )

    def subscriptions(self) -> int:
        return len(self.channels) + len(self.patterns)

    def select(self, index: int) -> None:
        self.db_index = index
        self.db = self.state.keyspace.db(index)

    def set_protocol(self, protocol: int) -> None:
        self.protocol = protocol
        self.encode = encode_resp3 if protocol == 3 else encode_resp2
        self.update_restricted()

    def end_multi(self) -> None:
        """Leave MULTI (after EXEC, DISCARD or an aborted EXEC) and forget WATCHed keys."""
        self.multi = None
        self.multi_error = False
        self.unwatch()
        self.update_restricted()

    def unwatch(self) -> None:
        for db, key in self.watched:
            clients = db.watchers.get(key)
            if clients is not None:
                clients.discard(self)
                if not clients:
                    del db.watchers[key]
        self.watched = []
        self.dirty_cas = False

    def push(self, message: Any) -> None:
        """Deliver an out-of-band message (pub/sub, MONITOR) if the door supports it."""
        if self.push_sink is not None:
            self.push_sink(message)

    def close(self) -> None:
        self.closing = True
        if self.closer is not None:
            self.closer()

    # -- CLIENT LIST -----------------------------------------------------------------
    def flags_text(self) -> str:
        f = ""
        if self.multi is not None:
            f += "x"
        if self.subscriptions():
            f += "P"
        if self.monitor:
            f += "O"
        if self.dirty_cas:
            f += "d"
        if self.closing:
            f += "c"
        if self.no_evict:
            f += "e"
        if self.no_touch:
            f += "T"
        return f or "N"

    def describe(self) -> str:
        now = time.monotonic()
        name = self.name.decode("utf-8", "replace")
        return (
            f"id={self.id} addr={self.addr} laddr={self.laddr} fd=-1 name={name} "
            f"age={int(now - self.created)} idle={int(now - self.last_interaction)} "
            f"flags={self.flags_text()} db={self.db_index} sub={len(self.channels)} "
            f"psub={len(self.patterns)} ssub=0 multi={-1 if self.multi is None else len(self.multi)} "
            f"qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 "
            f"tot-mem=0 events=r cmd={self.last_command.full_name if self.last_command else 'NULL'} user={self.user} redir=-1 "
            f"resp={self.protocol} lib-name={self.lib_name.decode('utf-8', 'replace')} "
            f"lib-ver={self.lib_ver.decode('utf-8', 'replace')}"
        )
