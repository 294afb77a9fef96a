"""The one gate every call passes: lookup → arity → authentication → mode rules →
memory → handler → metrics.

Every door (RESP connections, Lua's ``redis.call``, and the HTTP and gRPC doors of
later releases) turns what it received into ``(client, argv)`` and calls
:meth:`Gate.execute`, so authentication, limits, statistics and keyspace events behave
the same whichever door was used.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from tokenginx.client import Client
from tokenginx.commands.table import Command
from tokenginx.errors import (
    BusyScriptError,
    CommandError,
    ExecAbortError,
    NoAuthError,
    wrong_arity,
)
from tokenginx.replies import QUEUED, Push, Status
from tokenginx.sso.kinds import kind_of

if TYPE_CHECKING:
    from tokenginx.config import ProtocolsConfig
    from tokenginx.state import ServerState

log = logging.getLogger("tokenginx.gate")

_perf_ns = time.perf_counter_ns


def unknown_command(argv: list[bytes]) -> CommandError:
    # Redis's exact text, trailing space included: each argument is "'arg' ", and
    # arguments stop once 128 characters are used.
    args = ""
    for a in argv[1:]:
        if len(args) >= 128:
            break
        args += "'" + _printable(a)[: 128 - len(args)] + "' "
    return CommandError(
        f"ERR unknown command '{_printable(argv[0])}', with args beginning with: {args}"
    )


LOADING = CommandError("LOADING TokenginX is loading the dataset in memory")


def _allowed_while_loading(cmd: Command, argv: list[bytes]) -> bool:
    if cmd.subcommands is not None and len(argv) >= 2:
        sub = cmd.subcommands.get(argv[1].lower())
        if sub is None:
            return True  # answered "unknown subcommand", as Redis does while loading
        cmd = sub
    return "loading" in cmd.flags or cmd.no_auth


BUSY_SCRIPT = BusyScriptError()


def _allowed_while_busy(cmd: Command, argv: list[bytes]) -> bool:
    if cmd.subcommands is not None and len(argv) >= 2:
        sub = cmd.subcommands.get(argv[1].lower())
        if sub is None:
            return False
        cmd = sub
    return "allow_busy" in cmd.flags


def _printable(b: Any) -> str:
    if not isinstance(b, bytes):
        return str(b)
    return b[:128].decode("utf-8", "replace")


class Gate:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.table = state.table
        self.stats = state.stats
        self.keyspace = state.keyspace
        self.monitors = state.monitors  # the same list object, mutated in place
        self._by_bytes = state.table._by_bytes
        self.slow_ns = state.config.server.slowlog_log_slower_than_us * 1000
        self.guarded = False  # True while maxmemory is set or persistence is failing
        self.update_guard()

    def update_guard(self) -> None:
        """Recompute whether write commands need the memory/persistence checks."""
        journal = self.keyspace.journal
        self.guarded = bool(self.keyspace.max_memory) or (
            journal is not None and journal.error is not None
        )

    def _guard_for(self, writes: bool, grows: bool) -> None:
        """The persistence and memory checks (raises the refusing error): writes are
        refused while the log fails, and what may grow memory while it is full."""
        journal = self.keyspace.journal
        if writes and journal is not None and journal.error is not None:
            raise CommandError(f"MISCONF Errors writing to the AOF file: {journal.error}")
        if grows and self.keyspace.max_memory:
            self.keyspace.ensure_memory()

    def _guard(self, cmd: Command) -> None:
        self._guard_for(cmd.write, cmd.denyoom)

    def set_loading(self, loading: bool) -> None:
        """While loading, only commands flagged ``loading`` (INFO, PING-free handshakes,
        CONFIG …) run; the rest answer ``-LOADING`` as Redis does."""
        self.state.loading = loading
        self._by_bytes = {} if loading or self.state.busy else self.table._by_bytes

    def set_busy(self, busy: bool) -> None:
        """While a script is busy, only ``allow_busy`` commands run (AUTH, MULTI,
        SCRIPT KILL, SHUTDOWN…); the rest answer ``-BUSY`` as Redis does."""
        self.state.busy = busy
        if busy:
            self._by_bytes = {}
        elif not self.state.loading:
            self._by_bytes = self.table._by_bytes

    def set_slowlog_threshold(self, us: int) -> None:
        self.slow_ns = us * 1000 if us >= 0 else -1

    def execute(self, client: Client, argv: list[bytes]) -> Any:
        """Run one command for ``client`` and return its reply value.

        This is the hot path of every door: keep it flat (one dict lookup, integer
        compares, one handler call) and push anything rare into helpers.
        """
        cmd = self._by_bytes.get(argv[0])
        if cmd is None:
            # The slow path: other spellings, unknown commands, and every command while
            # loading (set_loading empties the fast table so the check costs nothing later).
            cmd = self.table.lookup(argv[0])
            if cmd is None:
                return self._reject(client, None, unknown_command(argv))
            if self.state.loading and not _allowed_while_loading(cmd, argv):
                return self._reject(client, cmd, LOADING)
            if self.state.busy and not client.in_script and not _allowed_while_busy(cmd, argv):
                return self._reject(client, cmd, BUSY_SCRIPT)
        n = len(argv)
        if cmd.subcommands is not None and n >= 2:
            cmd = self._subcommand(client, cmd, argv)
            if type(cmd) is not Command:
                return cmd  # an error or HELP reply
        arity = cmd.arity
        if (n != arity) if arity > 0 else (n < -arity):
            return self._reject(client, cmd, wrong_arity(cmd.full_name))
        if client.restricted:
            early = self._restricted(client, cmd, argv)
            if early is not None:
                return early
        return self.call(client, cmd, argv)

    def check_transaction(self, queued: list[Command]) -> None:
        """EXEC's guard over its whole queue (raises the refusing error)."""
        self._guard_for(any(c.write for c in queued), any(c.denyoom for c in queued))

    def call(self, client: Client, cmd: Command, argv: list[bytes], guard: bool = True) -> Any:
        """Run a resolved and checked command and account for it: the second half of
        ``execute``, also used directly by EXEC's queue (``guard`` off: EXEC checked
        its queue as a whole before running it)."""
        if guard and self.guarded and (cmd.write or cmd.denyoom):
            try:
                self._guard(cmd)
            except CommandError as e:
                return self._reject(client, cmd, e)
        client.last_command = cmd  # CLIENT INFO shows the running command (cmd=client|info)
        t0 = _perf_ns()
        try:
            reply = cmd.handler(client, argv)  # type: ignore[misc]
        except CommandError as e:
            reply = e
            cmd.failed_calls += 1
            if not getattr(e, "counted", False):  # a script's error already counted inside
                self.stats.count_error(e.prefix)
        except Exception:
            reply = self._internal_error(client, cmd, argv)
        dt = _perf_ns() - t0
        cmd.calls += 1
        cmd.usec_ns += dt
        if client.kind != "resp":
            key = (client.kind, cmd.full_name)
            door_calls = self.stats.door_calls
            door_calls[key] = door_calls.get(key, 0) + 1
        if dt > self.slow_ns >= 0:
            # Only what the SLOWLOG keeps is redacted: a command of a million arguments
            # must not cost seconds more for being slow.
            self.state.add_slowlog(dt // 1000, self._redact(client, argv[:32]), client, len(argv))
        if self.monitors:
            self._feed_monitors(client, argv)
        return reply

    def _subcommand(self, client: Client, cmd: Command, argv: list[bytes]) -> Any:
        assert cmd.subcommands is not None
        sub = cmd.subcommands.get(argv[1].lower())
        if sub is not None:
            return sub
        if argv[1].lower() == b"help":
            return self._help(cmd)
        return self._reject(
            client,
            cmd,
            CommandError(
                f"ERR unknown subcommand '{_printable(argv[1])}'. Try {cmd.name.upper()} HELP."
            ),
        )

    def _internal_error(self, client: Client, cmd: Command, argv: list[bytes]) -> CommandError:
        if any(type(a) is not bytes for a in argv):
            return CommandError("ERR Protocol error: arguments must be bulk strings")
        log.exception("command %s failed", cmd.full_name, extra={"client": client.id})
        cmd.failed_calls += 1
        self.stats.count_error("ERR")
        return CommandError(f"ERR internal error while running '{cmd.full_name}'")

    # -- the slow path: authentication and connection modes ----------------------------
    def _restricted(self, client: Client, cmd: Command, argv: list[bytes]) -> Any:
        if not client.authenticated and not cmd.no_auth:
            return self._reject(client, cmd, NoAuthError())
        if client.multi is not None and not cmd.tx_control:
            if "no_multi" in cmd.flags:
                return self._reject(
                    client, cmd, CommandError("ERR Command not allowed inside a transaction")
                )
            if self.guarded:
                try:
                    # Queueing itself grows memory: nothing is queued while it is full.
                    self._guard_for(cmd.write, True)
                except CommandError as e:
                    return self._reject(client, cmd, e)
            client.multi.append((cmd, argv))
            return QUEUED
        if client.protocol == 2 and client.subscriptions() and not cmd.pubsub_ok:
            return self._reject(
                client,
                cmd,
                CommandError(
                    f"ERR Can't execute '{cmd.name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                    "PING / QUIT / RESET are allowed in this context"
                ),
            )
        return None

    def _reject(self, client: Client, cmd: Command | None, err: CommandError) -> CommandError:
        """A command refused before running: counts it, and poisons an open MULTI."""
        if cmd is not None:
            cmd.rejected_calls += 1
        self.stats.count_error(err.prefix)
        if client.multi is not None and err.prefix != "NOAUTH":
            if cmd is not None and cmd.name == "exec" and cmd.container is None:
                # EXEC refused (e.g. EXEC with arguments): the transaction is discarded.
                client.end_multi()
                return ExecAbortError(err)
            client.multi_error = True
        return err

    def _help(self, cmd: Command) -> list[Status]:
        lines = [f"{cmd.name.upper()} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"]
        for sub in (cmd.subcommands or {}).values():
            lines.append(sub.name.upper())
            lines.append(f"    {sub.summary}")
        lines.append("HELP")
        lines.append("    Print this help.")
        return [Status(line.encode()) for line in lines]

    def _redact(self, client: Client, argv: list[bytes]) -> list[bytes]:
        return redact(argv, self.state.config.protocols, internal=client.kind == "idp")

    def _feed_monitors(self, client: Client, argv: list[bytes]) -> None:
        now = time.time()
        parts = " ".join('"' + _monitor_escape(a) + '"' for a in self._redact(client, argv))
        origin = "lua" if client.in_script else client.addr
        line = Status(f"{now:.6f} [{client.db_index} {origin}] {parts}".encode())
        for m in list(self.state.monitors):
            if m is not client:
                m.push(line)


_REDACTED = b"(redacted)"


def redact(argv: list[bytes], protocols: ProtocolsConfig | None = None, *, internal: bool = False) -> list[bytes]:
    """Hide secrets before a command is shown to MONITOR or kept in the SLOWLOG.

    Besides passwords, an SSO server's secrets are its artifact ids: an access token,
    refresh token, code or ticket id is a bearer credential. So every argument of an
    extension command (``OAUTH.*``, ``CAS.*``…) is hidden, and so is the id part of any
    SSO key (``oauth:access_token:(redacted)``). ``internal`` calls (the built-in
    identity provider's) carry password hashes and session ids: only the command name
    is shown.
    """
    name = argv[0].lower()
    if internal:
        return [argv[0]] + [_REDACTED] * (len(argv) - 1)
    if name == b"auth" or b"." in name:
        return [argv[0]] + [_REDACTED] * (len(argv) - 1)
    if name == b"hello":
        out = list(argv)
        for i, a in enumerate(argv):
            if a.lower() == b"auth":
                for j in (i + 1, i + 2):
                    if j < len(out):
                        out[j] = _REDACTED
        return out
    if name == b"config" and len(argv) > 3 and argv[1].lower() == b"set":
        out = list(argv)
        for i in range(2, len(argv) - 1, 2):
            if argv[i].lower() in (b"requirepass", b"masterauth"):
                out[i + 1] = _REDACTED
        return out
    if protocols is not None:
        return [argv[0]] + [_redact_sso_key(protocols, a) for a in argv[1:]]
    return argv


def _redact_sso_key(protocols: ProtocolsConfig, arg: bytes) -> bytes:
    found = kind_of(protocols, arg)
    if found is None:
        return arg
    return found[0].prefix(protocols) + _REDACTED


def _monitor_escape(b: bytes) -> str:
    out = []
    for ch in b:
        if ch == 0x5C:
            out.append("\\\\")
        elif ch == 0x22:
            out.append('\\"')
        elif ch == 0x0A:
            out.append("\\n")
        elif ch == 0x0D:
            out.append("\\r")
        elif ch == 0x09:
            out.append("\\t")
        elif 0x20 <= ch < 0x7F:
            out.append(chr(ch))
        else:
            out.append(f"\\x{ch:02x}")
    return "".join(out)


__all__ = ["Gate", "unknown_command", "Push"]
