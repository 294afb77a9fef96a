"""The Lua scripting engine behind EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT.

One :class:`ScriptEngine` per :class:`~tokenginx.state.ServerState`, created on first
use by :func:`engine_for` and kept in ``state.scripts``, so two servers in one
process never share scripts or a Lua runtime. The engine owns one Lua 5.1 runtime
(lupa), sandboxed by :data:`~tokenginx.scripting.prelude.PRELUDE`, and a cache of
compiled scripts by SHA1.

Semantics are Redis 7's (https://redis.io/docs/latest/develop/interact/programmability/):

* ``redis.call`` runs the command through the server's gate with a dedicated script
  client (same database, user and authentication as the caller, ``in_script``
  set), so arity, statistics, keyspace events and MONITOR behave as for any door.
  A command error aborts the script; ``redis.pcall`` returns it as ``{err=...}``.
* replies are converted both ways exactly as Redis does (RESP2 by default,
  ``redis.setresp(3)`` switches the conversion and the script client's protocol);
* a script's own error is reported as ``<message> script: <sha>, on
  @user_script:<line>.``;
* a script running longer than ``scripting.busy_reply_threshold_ms`` (CONFIG
  ``busy-reply-threshold``/``lua-time-limit``) makes the server *busy*, as Redis: the
  instruction hook then serves RESP clients itself (``transport/resp/busy.py``), the
  gate answers ``-BUSY`` to all but the ``allow_busy`` commands, ``SCRIPT KILL`` stops
  a script that has not written yet (else ``-UNKILLABLE``), ``SHUTDOWN NOSAVE`` stops
  the server, and so do SIGTERM/SIGINT: a script that has written is then not
  finished, the process exits before the write-ahead log takes any of its writes;
* the Lua runtime's memory is capped (``scripting.max_memory_mb``): past it a script
  gets ``not enough memory``, the server is unharmed;
* ``unpack`` refuses ranges the C stack cannot hold (Redis patches luaB_unpack).

Known differences from Redis, all outside normal use:

* ``redis.call``/``redis.pcall`` are Python callables, so ``type(redis.call)`` is
  ``"userdata"``; the other helpers are Lua functions, and when one of them fails
  in a tail call (``return cjson.decode(bad)``) the error has no ``script: …, on
  @user_script:N.`` suffix, because Lua discarded the caller's frame;
* the global ``debug`` reads as ``false`` instead of raising: lupa looks it up,
  unprotected, before every call into Lua;
* no ``struct`` library and no cjson configuration functions (``cmsgpack`` is
  there: :mod:`~tokenginx.scripting.luamsgpack`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lupa.lua51 import LuaError, LuaMemoryError, LuaRuntime

from tokenginx.client import Client
from tokenginx.errors import CommandError
from tokenginx.replies import NULL_ARRAY, Status, Verbatim
from tokenginx.scripting import bitops, luajson, luamsgpack
from tokenginx.scripting.prelude import PRELUDE
from tokenginx.transport.resp.encoder import encode_resp2
from tokenginx.version import REDIS_COMPAT_VERSION

if TYPE_CHECKING:
    from tokenginx.commands.table import Command
    from tokenginx.state import ServerState

log = logging.getLogger("tokenginx.script")

HOOK_INSTRUCTIONS = 100_000
"""Lua instructions between two busy checks (Redis uses the same count)."""

KILLED_MESSAGE = "ERR Script killed by user with SCRIPT KILL..."
UNKILLABLE = (
    "UNKILLABLE Sorry the script already executed write commands against the dataset. "
    "You can either wait the script termination or kill the server in a hard way using "
    "the SHUTDOWN NOSAVE command."
)
NOTBUSY = "NOTBUSY No scripts in execution right now."

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1

# redis.log levels -> logging levels (LL_DEBUG, LL_VERBOSE, LL_NOTICE, LL_WARNING).
_LOG_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING}

SCRIPT_FLAGS = frozenset(
    {b"no-writes", b"allow-oom", b"allow-stale", b"no-cluster", b"allow-cross-slot-keys"}
)

# Commands Redis always refuses inside a script. The "noscript" flag on a command's
# declaration is the rule; this list covers families that do not declare it yet.
_NOSCRIPT_FALLBACK = frozenset(
    {
        "multi",
        "exec",
        "discard",
        "watch",
        "unwatch",
        "subscribe",
        "unsubscribe",
        "psubscribe",
        "punsubscribe",
        "ssubscribe",
        "sunsubscribe",
        "monitor",
        "eval",
        "evalsha",
        "eval_ro",
        "evalsha_ro",
        "script",
        "fcall",
        "fcall_ro",
        "function",
        "auth",
        "hello",
        "quit",
        "reset",
        "client",
        "config",
        "acl",
        "sync",
        "psync",
        "replconf",
        "slaveof",
        "replicaof",
        "failover",
        "waitaof",
        "shutdown",
        "save",
        "bgsave",
        "bgrewriteaof",
        "debug",
        "module",
        "latency",
    }
)


@dataclass(slots=True)
class Script:
    sha: str
    body: bytes
    function: Any  # the compiled chunk, a lupa function of the current runtime
    flags: frozenset[bytes] | None  # shebang flags; None: no shebang (EVAL compatibility)

    @property
    def no_writes(self) -> bool:
        return self.flags is not None and b"no-writes" in self.flags


def sha1hex(body: bytes) -> str:
    return hashlib.sha1(body).hexdigest()


def parse_shebang(body: bytes) -> tuple[frozenset[bytes] | None, int]:
    """``(flags, offset of the code)``; the code keeps the shebang's line feed so line
    numbers in errors match what the user wrote."""
    if not body.startswith(b"#!"):
        return None, 0
    end = body.find(b"\n")
    if end < 0:
        raise CommandError("ERR Invalid script shebang")
    parts = body[:end].split(b" ")
    if parts[0] != b"#!lua":
        raise CommandError(f"ERR Unexpected engine in script shebang: {_text(parts[0])}")
    flags: set[bytes] = set()
    for part in parts[1:]:
        if not part.startswith(b"flags="):
            raise CommandError(f"ERR Unknown lua shebang option: {_text(part)}")
        value = part[6:]
        for flag in value.split(b",") if value else ():
            if flag not in SCRIPT_FLAGS:
                raise CommandError(f"ERR Unexpected flag in script shebang: {_text(flag)}")
            flags.add(flag)
    return frozenset(flags), end


def engine_for(state: ServerState) -> ScriptEngine:
    """The server's engine, created on first use."""
    engine = state.scripts
    if engine is None:
        engine = state.scripts = ScriptEngine(state)
    return engine


class ScriptEngine:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.scripts: dict[str, Script] = {}
        self._lua: LuaRuntime | None = None
        self._client: Client | None = None
        # per-run state, read by the callbacks
        self._busy_at: float | None = None  # when the running script turns busy
        self._busy = False
        self._killed = False
        self._wrote = False  # the running script has called a write command
        self._stop_signal = False  # SIGTERM/SIGINT arrived while busy
        self._saved_handlers: dict[int, Any] = {}
        self._cap = 0  # the Lua memory ceiling while a script's code runs, else 0
        self._call_errors: set[bytes] = set()  # errors redis.call raised in this run
        self._caller: Client | None = None
        self._running = False
        self._read_only = False
        self._resp = 2
        # Lua entry points, set with the runtime
        self._run: Any = None
        self._compile: Any = None
        self._clear_hook: Any = None
        self._is_null: Any = None
        self._null: Any = None
        self._memory: Any = None

    # -- the script cache ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.scripts)

    def get(self, sha: bytes) -> Script | None:
        return self.scripts.get(sha.decode("latin-1").lower())

    def exists(self, sha: bytes) -> bool:
        return self.get(sha) is not None

    def load(self, body: bytes) -> Script:
        """Compile ``body`` (or find it in the cache); a compile error is raised."""
        sha = sha1hex(body)
        script = self.scripts.get(sha)
        if script is not None:
            return script
        flags, offset = parse_shebang(body)
        self._runtime()
        function, error = self._compile(body[offset:])
        if function is None:
            raise CommandError(f"ERR Error compiling script (new function): {_text(error)}")
        script = self.scripts[sha] = Script(sha, body, function, flags)
        return script

    def flush(self) -> None:
        """SCRIPT FLUSH: forget every script and start a fresh Lua runtime."""
        self.scripts.clear()
        self._lua = None
        self._run = self._compile = self._clear_hook = None
        self._is_null = self._null = self._memory = None

    def memory_used(self) -> int:
        """Bytes used by the Lua runtime (INFO's ``used_memory_lua``)."""
        if self._memory is None:
            return 0
        return int(self._memory())

    # -- running ------------------------------------------------------------------------
    def run(
        self,
        caller: Client,
        script: Script,
        keys: list[bytes],
        args: list[bytes],
        read_only: bool = False,
    ) -> Any:
        """Run a loaded script for ``caller`` and return its reply value."""
        if read_only and script.flags is not None and not script.no_writes:
            raise CommandError("ERR Can not execute a script with write flag using *_ro command.")
        if self._running:  # EVAL is "noscript", so only a bug can get here
            raise CommandError("ERR This Redis command is not allowed from script")
        flags = script.flags
        if flags is not None and not script.no_writes and b"allow-oom" not in flags:
            # A shebang script that may write does not start over maxmemory (Redis 7).
            self.state.keyspace.ensure_memory()
        lua = self._runtime()
        self._prepare_client(caller)
        self._read_only = read_only or script.no_writes
        self._resp = 2
        self._killed = self._wrote = self._stop_signal = False
        self._call_errors.clear()
        self._caller = caller
        keys_table = lua.table_from(keys)
        args_table = lua.table_from(args)
        threshold_ms = self.state.config.scripting.busy_reply_threshold_ms
        self._running = True
        self._busy_at = time.monotonic() + threshold_ms / 1000
        try:
            outcome = self._run(script.function, keys_table, args_table)
        except LuaMemoryError:
            outcome = (False, b"ERR Error running script: not enough memory")
        except LuaError as e:  # the Lua runtime failed outside the script's own pcall
            outcome = (False, _lua_error_message(e).encode())
        finally:
            # The script's code may have failed before lifting the ceiling itself: no
            # call into lupa may run under it (see _set_cap).
            self._cap = 0
            lua.set_max_memory(0)
            self._busy_at = None
            self._running = False
            self._caller = None
            self._clear_hook()
            if lua.get_memory_used(total=True) > self._max_lua_bytes() // 2:
                lua.gccollect()  # leave the next script the room this one used
            if self._busy:
                self._leave_busy(script)
        if self._killed:
            log.warning("Lua script killed by user with SCRIPT KILL.")
            if not outcome[0] and _text(outcome[1]).startswith(KILLED_MESSAGE):
                return self._script_error(script, outcome)
            return CommandError(KILLED_MESSAGE)
        if outcome[0]:
            return self._to_redis(outcome[1])
        return self._script_error(script, outcome)

    def _script_error(self, script: Script, outcome: Any) -> CommandError:
        raw = _text(outcome[1])
        message = raw
        source = outcome[2] if len(outcome) > 2 else None
        line = outcome[3] if len(outcome) > 3 else None
        if source is not None and line is not None:
            message = f"{raw} script: {script.sha}, on {_text(source)}:{line}."
        error = CommandError(message)
        # The error of a redis.call the script let through was counted in the error
        # statistics when that command failed: Redis counts it once.
        error.counted = raw.encode() in self._call_errors  # type: ignore[attr-defined]
        return error

    def _prepare_client(self, caller: Client) -> Client:
        client = self._client
        if client is None:
            client = self._client = Client(self.state, kind="lua", addr="lua")
            client.in_script = True
        client.db_index = caller.db_index
        client.db = caller.db
        client.authenticated = caller.authenticated
        client.user = caller.user
        client.no_touch = caller.no_touch
        client.multi = None
        client.multi_error = False
        client.set_protocol(2)  # also recomputes ``restricted``
        return client

    # -- the Lua runtime ----------------------------------------------------------------
    def _runtime(self) -> LuaRuntime:
        lua = self._lua
        if lua is not None:
            return lua
        lua = LuaRuntime(
            max_memory=self.state.config.scripting.max_memory_mb * 1024 * 1024,
            encoding=None,
            unpack_returned_tuples=True,
            register_eval=False,
            register_builtins=False,
            attribute_filter=_no_attributes,
        )
        major, minor, patch = (int(p) for p in REDIS_COMPAT_VERSION.split("."))
        (
            self._run,
            self._compile,
            self._clear_hook,
            self._is_null,
            self._null,
            self._memory,
        ) = lua.execute(
            PRELUDE,
            _raising(self._redis_call),
            _weak(self._redis_pcall, None),
            _weak(self._error_text, None),
            _weak(self._check_time, True),
            _weak(self._log, None),
            _weak(self._set_resp, None),
            _weak(self._sha1hex, b""),
            _weak(self._json_encode, (False, "cjson: internal error")),
            _weak(self._json_decode, (False, "cjson: internal error")),
            _weak(self._bit, 0),
            _weak(self._command_known, False),
            REDIS_COMPAT_VERSION.encode(),
            (major << 16) | (minor << 8) | patch,
            HOOK_INSTRUCTIONS,
            _weak(self._msgpack_pack, (False, b"cmsgpack: internal error", 2)),
            _weak(self._msgpack_unpack, (False, b"cmsgpack: internal error", 2)),
            _weak(self._set_cap, None),
            name="=tokenginx prelude",
        )
        self._lua = lua
        lua.set_max_memory(0)  # capped only while a script's code runs (see _set_cap)
        return lua

    # -- the memory ceiling -----------------------------------------------------------------
    # lupa raises Lua's "not enough memory" from its allocator. Inside the script's code
    # that is an ordinary, catchable Lua error; inside lupa's own C code (pushing what a
    # Python callback returned, calling into Lua from Python) it is unprotected: the
    # process aborts or the runtime's lock stays taken. So the ceiling is armed only
    # while Lua code runs: every Python callback runs with it lifted, and re-arms it at
    # least as high as what it is about to return needs (never failing that push). A
    # callback refuses up front to build a value it knows would not fit (fits_lua), so
    # the overshoot is bounded by one reply; the next callback re-arms the real ceiling.
    def _max_lua_bytes(self) -> int:
        return self.state.config.scripting.max_memory_mb * 1024 * 1024

    def _set_cap(self, on: Any) -> None:
        lua = self._lua
        if lua is None:
            return
        self._cap = self._max_lua_bytes() if on else 0
        lua.set_max_memory(self._cap, total=True)

    def _uncapped_call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        cap, lua = self._cap, self._lua
        if not cap or lua is None:
            return fn(*args)
        lua.set_max_memory(0)
        result: Any = None
        try:
            result = fn(*args)
            return result
        finally:
            needed = lua.get_memory_used(total=True) + _push_size(result)
            lua.set_max_memory(max(cap, needed), total=True)

    def fits_lua(self, estimate: int) -> bool:
        """Whether ``estimate`` more bytes of Lua values stay under the ceiling (always
        true outside a script's code); collects garbage once before saying no."""
        cap, lua = self._cap, self._lua
        if not cap or lua is None:
            return True
        if lua.get_memory_used(total=True) + estimate <= cap:
            return True
        lua.gccollect()
        return lua.get_memory_used(total=True) + estimate <= cap

    def _error_text(self, error: Any) -> bytes | None:
        return error.message if isinstance(error, ScriptRaise) else None

    def _sha1hex(self, data: bytes) -> bytes:
        return sha1hex(data).encode()

    def _bit(self, name: bytes, *args: float) -> int | bytes:
        try:
            return bitops.call(name, *args)
        except Exception:
            return 0

    # -- busy scripts ---------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._busy

    def kill(self) -> None:
        """SCRIPT KILL: stop the busy script at its next hook, if it has not written."""
        if not self._running or not self._busy:
            raise CommandError(NOTBUSY)
        if self._wrote:
            raise CommandError(UNKILLABLE)
        self._killed = True

    def shutdown_while_busy(self) -> None:
        """SHUTDOWN NOSAVE (or a signal) while busy: a script that has not written is
        stopped and the server shuts down as usual; one that has written cannot be
        undone, so the process exits now, before the write-ahead log takes its writes
        (everything acknowledged is already in the log)."""
        if self._wrote:
            log.warning(
                "shutting down while a script that wrote is running: "
                "exiting without its writes"
            )
            logging.shutdown()
            os._exit(0)
        self._killed = True

    def _enter_busy(self) -> None:
        self._busy = True
        threshold = self.state.config.scripting.busy_reply_threshold_ms
        log.warning(
            "Slow script detected: still in execution after %d milliseconds. You can try "
            "killing the script using the SCRIPT KILL command.",
            threshold,
        )
        self.state.gate.set_busy(True)  # type: ignore[attr-defined]
        poller = self.state.busy_poller
        if poller is not None:
            poller.start()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    self._saved_handlers[sig] = signal.signal(sig, self._on_signal)
                except (ValueError, OSError):
                    pass

    def _leave_busy(self, script: Script) -> None:
        self._busy = False
        for sig, handler in self._saved_handlers.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, OSError, TypeError):
                pass
        self._saved_handlers.clear()
        poller = self.state.busy_poller
        if poller is not None:
            poller.stop()
        self.state.gate.set_busy(False)  # type: ignore[attr-defined]
        if self._stop_signal:
            stop = self.state.shutdown_requested
            if stop is not None:
                stop()

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Python runs this between two of the hook's bytecodes; act on it there.
        self._stop_signal = True

    # -- callbacks from Lua (they never raise: see _weak) --------------------------------
    def _check_time(self) -> bool:
        """The instruction hook: True stops the script (it was killed)."""
        if not self._running:
            return False
        if self._killed:
            return True
        if not self._busy:
            busy_at = self._busy_at
            if busy_at is None or time.monotonic() < busy_at:
                return False
            self._enter_busy()
        poller = self.state.busy_poller
        if poller is not None:
            poller.poll(self._caller)
        if self._stop_signal and not self._killed:
            log.warning("signal received while a script is busy: stopping it")
            self.shutdown_while_busy()
        return self._killed

    def _redis_call(self, *args: Any) -> tuple[bool, Any]:
        """redis.call: ``(False, reply)``, or ``(True, error text)`` to raise."""
        reply = self._command(args)
        if not isinstance(reply, CommandError) and not self.fits_lua(_reply_size(reply)):
            reply = CommandError("ERR " + _NO_MEMORY.decode())
        if isinstance(reply, CommandError):
            text = _error_text(reply.message)
            self._call_errors.add(text)
            return True, text
        return False, self._to_lua(reply)

    def _redis_pcall(self, *args: Any) -> Any:
        """redis.pcall: the reply, an error as an ``{err=...}`` table."""
        reply = self._command(args)
        if not isinstance(reply, CommandError) and not self.fits_lua(_reply_size(reply)):
            reply = CommandError("ERR " + _NO_MEMORY.decode())
        if isinstance(reply, CommandError):
            # Redis marks the table: returning it does not count the error again.
            return self._lua_table(
                {b"err": _error_text(reply.message), b"ignore_error_stats_update": True}
            )
        return self._to_lua(reply)

    def _command(self, args: tuple[Any, ...]) -> Any:
        if not args:
            return CommandError("ERR Please specify at least one argument for this redis lib call")
        argv: list[bytes] = []
        for a in args:
            t = type(a)
            if t is bytes:
                argv.append(a)
            elif t is int or t is float:  # Lua numbers, formatted as Redis does
                argv.append(b"%.17g" % a)
            else:
                return CommandError(
                    "ERR Lua redis lib command arguments must be strings or integers"
                )
        try:
            return self._dispatch(argv)
        except Exception:  # a bug must cost the script one error, never the server
            log.exception("redis.call from a script failed")
            return CommandError("ERR internal error while running a command from script")

    def _dispatch(self, argv: list[bytes]) -> Any:
        state = self.state
        cmd = state.table.lookup(argv[0])
        sub: Command | None = None
        if cmd is not None and cmd.subcommands is not None and len(argv) >= 2:
            sub = cmd.subcommands.get(argv[1].lower())
            if sub is None and argv[1].lower() != b"help":
                cmd = None
        if cmd is None:
            return self._refuse(None, "ERR Unknown Redis command called from script")
        target = sub or cmd
        n, arity = len(argv), target.arity
        if (n != arity) if arity > 0 else (n < -arity):
            return self._refuse(target, "ERR Wrong number of args calling Redis command from script")
        if _refused_in_scripts(cmd) or (sub is not None and _refused_in_scripts(sub)):
            return self._refuse(target, "ERR This Redis command is not allowed from script")
        if self._read_only and (target.write or "may_replicate" in target.flags):
            return self._refuse(target, "ERR Write commands are not allowed from read-only scripts.")
        if target.write:
            self._wrote = True  # from now on SCRIPT KILL cannot undo this script
        assert self._client is not None
        return state.gate.execute(self._client, argv)  # type: ignore[attr-defined]

    def _refuse(self, cmd: Command | None, message: str) -> CommandError:
        """A command the script may not run: counted as a rejected call and an error,
        as the gate counts its own refusals (the script's error is then not counted
        again)."""
        assert self._client is not None
        return self.state.gate._reject(self._client, cmd, CommandError(message))  # type: ignore[attr-defined]

    def _command_known(self, *argv: bytes) -> bool:
        cmd = self.state.table.lookup(argv[0])
        if cmd is not None and cmd.subcommands is not None and len(argv) >= 2:
            return argv[1].lower() in cmd.subcommands
        return cmd is not None

    def _log(self, level: int, message: bytes) -> None:
        log.log(_LOG_LEVELS.get(int(level), logging.INFO), "%s", _text(message))

    def _set_resp(self, resp: int) -> None:
        self._resp = int(resp)
        if self._client is not None:
            self._client.set_protocol(self._resp)

    def _json_encode(
        self,
        value: Any,
        max_depth: int = 1000,
        precision: int = 14,
        invalid: int = 0,
        sparse_convert: int = 0,
        sparse_ratio: int = 2,
        sparse_safe: int = 10,
    ) -> tuple[bool, bytes | str]:
        cfg = luajson.Config(
            encode_max_depth=int(max_depth),
            encode_number_precision=int(precision),
            encode_invalid_numbers=int(invalid),
            encode_sparse_convert=bool(sparse_convert),
            encode_sparse_ratio=int(sparse_ratio),
            encode_sparse_safe=int(sparse_safe),
        )
        ok, out = luajson.encode(value, self._is_null, cfg)
        if ok and not self.fits_lua(len(out) + 64):
            return False, _NO_MEMORY
        return ok, out if isinstance(out, bytes) else out.encode()

    def _json_decode(
        self, data: bytes, max_depth: int = 1000, invalid: int = 1
    ) -> tuple[bool, Any]:
        # A JSON text becomes at most ~64 bytes of Lua values per input byte ("[]," is
        # a table); refuse up front what cannot fit.
        if not self.fits_lua(64 * len(data)):
            return False, _NO_MEMORY
        cfg = luajson.Config(decode_max_depth=int(max_depth), decode_invalid_numbers=bool(invalid))
        ok, out = luajson.decode(data, self._lua_table, self._null, cfg)
        return ok, out if ok else out.encode()

    def _msgpack_pack(self, *values: Any) -> tuple[Any, ...]:
        result = luamsgpack.pack(values, self._check_time)
        if not result[0]:
            return result
        if not self.fits_lua(len(result[1]) + 64):
            return False, _NO_MEMORY, 0
        return True, self._lua_table([result[1]])  # the wrapper returns out[1]

    def _msgpack_unpack(self, data: bytes, limit: float, offset: float, base: int) -> Any:
        # Each input byte becomes at most one small Lua value.
        if not self.fits_lua(64 * len(data)):
            return False, _NO_MEMORY, 0
        return luamsgpack.unpack(
            data, limit, offset, int(base), self._lua_table, self._check_time
        )

    # -- conversions --------------------------------------------------------------------
    def _lua_table(self, items: Any) -> Any:
        assert self._lua is not None
        return self._lua.table_from(items)

    def _to_lua(self, v: Any) -> Any:
        """A command's reply as the script sees it (Redis's redisProtocolToLuaType)."""
        t = type(v)
        if t is bytes:
            return v
        if t is int:
            return v if _I64_MIN <= v <= _I64_MAX else float(v)
        resp3 = self._resp == 3
        table = self._lua_table
        if t is Status:
            return table({b"ok": bytes(v)})
        if v is None or v is NULL_ARRAY:
            return None if resp3 else False
        if isinstance(v, CommandError):
            return table({b"err": _error_text(v.message)})
        if t is bool:
            return v if resp3 else int(v)
        if t is float:
            return table({b"double": v}) if resp3 else _resp2_double(v)
        if t is Verbatim:
            if resp3:
                return table({b"verbatim_string": table({b"format": b"txt", b"string": bytes(v)})})
            return bytes(v)
        if t is dict:
            if resp3:
                assert self._lua is not None
                m = self._lua.table()
                for k, x in v.items():
                    m[self._to_lua(k)] = self._to_lua(x)
                return table({b"map": m})
            flat: list[Any] = []
            for k, x in v.items():
                flat.append(self._to_lua(k))
                flat.append(self._to_lua(x))
            return table(flat)
        if t is set or t is frozenset:
            if resp3:
                return table({b"set": table({self._to_lua(k): True for k in v})})
            return table([self._to_lua(x) for x in v])
        if isinstance(v, (list, tuple)):
            return table([self._to_lua(x) for x in v])
        if t is str:
            return v.encode("utf-8", "surrogateescape")
        if isinstance(v, bytes):
            return bytes(v)
        if isinstance(v, int):
            return self._to_lua(int(v))
        return None if resp3 else False

    def _to_redis(self, v: Any) -> Any:
        """A script's (normalised) return value as a reply (Redis's luaReplyToRedisReply)."""
        if v is None:
            return None
        if v is True:
            return 1 if self._resp == 2 else True
        if v is False:
            return None if self._resp == 2 else False
        if isinstance(v, bytes):
            return v
        if isinstance(v, (int, float)):
            return _lua_number_to_int(v)
        tag = v[1]
        if tag == b"array":
            return [self._to_redis(v[i + 2]) for i in range(1, int(v[2]) + 1)]
        if tag == b"err":
            error = CommandError(_text(v[2]))
            # A redis.pcall error the script returns was counted when the command failed.
            error.counted = v[3] is True  # type: ignore[attr-defined]
            return error
        if tag == b"ok":
            return Status(v[2])
        if tag == b"double":
            return float(v[2])
        if tag == b"big_number":
            return bytes(v[2])
        if tag == b"verbatim":
            return Verbatim(v[2])
        if tag == b"map":
            out: dict[Any, Any] = {}
            for i in range(int(v[2]) // 2):
                key = _hashable(self._to_redis(v[3 + 2 * i]))
                out[key] = self._to_redis(v[4 + 2 * i])
            return out
        if tag == b"set":
            return {_hashable(self._to_redis(v[i + 2])) for i in range(1, int(v[2]) + 1)}
        return None


# -- helpers -----------------------------------------------------------------------------
def _weak(method: Callable[..., Any], fallback: Any) -> Callable[..., Any]:
    """A callback for Lua that holds its engine weakly (the Lua runtime holds the
    callback, the engine holds the runtime: a strong reference would be a cycle the
    garbage collector cannot see), runs with the memory ceiling lifted (see
    ``_uncapped_call``), and never lets a Python exception into Lua."""
    ref = weakref.WeakMethod(method)
    name = method.__name__

    def callback(*args: Any) -> Any:
        bound = ref()
        if bound is None:
            return fallback
        try:
            return bound.__self__._uncapped_call(bound, args)
        except Exception:
            log.exception("scripting callback %s failed", name)
            return fallback

    return callback


class ScriptRaise(Exception):
    """Raised by the redis.call callback: Lua sees a userdata error, which the
    prelude turns into ``{err=message}``."""

    def __init__(self, message: bytes) -> None:
        super().__init__(message)
        self.message = message


def _raising(method: Callable[..., tuple[bool, Any]]) -> Callable[..., Any]:
    """Like :func:`_weak`, for a callback returning ``(failed, value)``: a failure is
    raised into Lua. The raise happens with no reference to the engine or to Lua
    objects left in the frame, because lupa keeps the last exception (and its
    traceback) alive inside the runtime."""
    ref = weakref.WeakMethod(method)
    name = method.__name__

    def callback(*args: Any) -> Any:
        bound = ref()
        if bound is None:
            failed, value = True, b"ERR the scripting engine is gone"
        else:
            try:
                failed, value = bound.__self__._uncapped_call(bound, args)
            except Exception:
                log.exception("scripting callback %s failed", name)
                failed, value = True, b"ERR internal error in script callback"
        del bound, args
        if failed:
            raise ScriptRaise(value)
        return value

    return callback


_NO_MEMORY = b"not enough memory"
_PUSH_MARGIN = 256 * 1024  # stack growth and small objects lupa makes when returning


def _push_size(result: Any) -> int:
    """Bytes lupa may allocate pushing ``result`` into Lua: its strings, and a margin
    for the stack and small objects."""
    items = result if isinstance(result, tuple) else (result,)
    return _PUSH_MARGIN + sum(len(x) + 64 for x in items if isinstance(x, (bytes, str)))


def _reply_size(v: Any) -> int:
    """A rough upper bound of the Lua memory a command reply becomes."""
    if isinstance(v, (bytes, str)):
        return len(v) + 64
    if isinstance(v, dict):
        return 128 + sum(_reply_size(k) + _reply_size(x) for k, x in v.items())
    if isinstance(v, (list, tuple, set, frozenset)):
        return 128 + sum(_reply_size(x) for x in v)
    return 64




def _no_attributes(obj: Any, name: Any, is_setting: bool) -> Any:
    raise AttributeError("Python attributes are not available to scripts")






def _refused_in_scripts(cmd: Command) -> bool:
    return (
        "noscript" in cmd.flags
        or cmd.tx_control
        or cmd.no_auth
        or (cmd.container is None and cmd.name in _NOSCRIPT_FALLBACK)
    )


def _error_text(message: str) -> bytes:
    """An error reply as Lua sees it in ``{err=...}`` (Redis's luaPushErrorBuff)."""
    code, sep, rest = message.partition(" ")
    if not sep:
        code, rest = "ERR", message
    return f"{code} {rest.strip(chr(13) + chr(10))}".encode("utf-8", "replace")


def _resp2_double(v: float) -> bytes:
    # "$<len>\r\n<text>\r\n": the text a RESP2 client would have received.
    return encode_resp2(v).split(b"\r\n", 1)[1][:-2]


def _lua_number_to_int(v: float) -> int:
    """``(long long)lua_Number``: truncation; out of range (and NaN) gives INT64_MIN."""
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return _I64_MIN
        v = int(v)
    return v if _I64_MIN <= v <= _I64_MAX else _I64_MIN


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, set):
        return frozenset(v)
    if isinstance(v, dict):
        return tuple((k, _hashable(x)) for k, x in v.items())
    return v


def _text(b: Any) -> str:
    if isinstance(b, bytes):
        return b.decode("utf-8", "replace")
    return str(b)


def _lua_error_message(e: LuaError) -> str:
    first = str(e).strip().split("\n", 1)[0].strip()
    return f"ERR Error running script: {first or 'execution failure'}"
