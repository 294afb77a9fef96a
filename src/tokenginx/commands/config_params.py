"""Redis ``CONFIG GET/SET`` parameter names mapped onto our typed :class:`Config`.

Clients and tools ask for Redis's names (redis-benchmark reads ``save`` and
``appendonly``, session libraries set ``notify-keyspace-events``); each parameter
here says how to read it from the running server and, if settable, how to apply a
new value at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenginx.config import EVICTION_POLICIES, parse_addr
from tokenginx.errors import CommandError

if TYPE_CHECKING:
    from tokenginx.state import ServerState

_MB = 1024 * 1024
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}


def parse_memory(value: str) -> int:
    """Redis memory notation: ``100mb``, ``1gb``, ``4096``."""
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", value)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError("argument must be a memory value")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def _int(value: str, lo: int = 0, hi: int = 2**63 - 1) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ValueError("argument couldn't be parsed into an integer") from None
    if not lo <= n <= hi:
        raise ValueError(f"argument must be between {lo} and {hi} inclusive")
    return n


@dataclass(frozen=True)
class Param:
    get: Callable[[ServerState], str]
    set: Callable[[ServerState, str], None] | None = None


def _set_maxmemory(s: ServerState, v: str) -> None:
    n = parse_memory(v)
    s.keyspace.max_memory = n
    s.config.cache.max_memory_mb = -(-n // _MB)
    s.gate.update_guard()  # type: ignore[attr-defined]


def _set_policy(s: ServerState, v: str) -> None:
    v = v.lower()
    if v not in EVICTION_POLICIES:
        raise ValueError("argument(s) must be one of the following: " + ", ".join(EVICTION_POLICIES))
    s.config.cache.eviction_policy = v
    s.keyspace.eviction_policy = v


def _set_notify(s: ServerState, v: str) -> None:
    s.notifier.configure(v)
    s.config.server.notify_keyspace_events = s.notifier.flags


def _set_requirepass(s: ServerState, v: str) -> None:
    s.config.server.requirepass = v


def _set_slowlog_threshold(s: ServerState, v: str) -> None:
    n = _int(v, -1)
    s.config.server.slowlog_log_slower_than_us = n
    s.gate.set_slowlog_threshold(n)  # type: ignore[attr-defined]


def _set_slowlog_len(s: ServerState, v: str) -> None:
    n = _int(v, 0, 2**31 - 1)
    s.config.server.slowlog_max_len = n
    s.resize_slowlog(n)


def _get_output_limits(s: ServerState) -> str:
    c = s.config.server
    return (
        "normal 0 0 0 slave 268435456 67108864 60 "
        f"pubsub {c.pubsub_output_hard_bytes} {c.pubsub_output_soft_bytes} {c.pubsub_output_soft_seconds}"
    )


def _set_output_limits(s: ServerState, v: str) -> None:
    parts = v.split()
    if len(parts) % 4:
        raise ValueError("Wrong number of arguments in buffer limit configuration.")
    for i in range(0, len(parts), 4):
        cls, hard, soft, secs = parts[i : i + 4]
        cls = cls.lower()
        if cls not in ("normal", "slave", "replica", "pubsub"):
            raise ValueError("Invalid client class specified in buffer limit configuration.")
        h, so, se = parse_memory(hard), parse_memory(soft), _int(secs)
        if cls == "pubsub":
            c = s.config.server
            c.pubsub_output_hard_bytes, c.pubsub_output_soft_bytes, c.pubsub_output_soft_seconds = h, so, se
        elif cls == "normal" and (h or so):
            raise ValueError("only 'normal 0 0 0' is supported: normal clients get backpressure instead")


def _setter(section: str, name: str, conv: Callable[[str], object]) -> Callable[[ServerState, str], None]:
    def apply(s: ServerState, v: str) -> None:
        setattr(getattr(s.config, section), name, conv(v))

    return apply


def _getter(section: str, name: str) -> Callable[[ServerState], str]:
    return lambda s: str(getattr(getattr(s.config, section), name))


_BUSY_REPLY_THRESHOLD = Param(
    _getter("scripting", "busy_reply_threshold_ms"),
    _setter("scripting", "busy_reply_threshold_ms", _int),
)

PARAMS: dict[str, Param] = {
    "maxmemory": Param(lambda s: str(s.keyspace.max_memory), _set_maxmemory),
    "maxmemory-policy": Param(lambda s: s.config.cache.eviction_policy, _set_policy),
    "maxclients": Param(_getter("server", "max_connections"), _setter("server", "max_connections", lambda v: _int(v, 1))),
    "timeout": Param(_getter("server", "idle_timeout"), _setter("server", "idle_timeout", _int)),
    "tcp-keepalive": Param(_getter("server", "tcp_keepalive"), _setter("server", "tcp_keepalive", _int)),
    "requirepass": Param(lambda s: s.config.server.requirepass, _set_requirepass),
    "notify-keyspace-events": Param(lambda s: s.notifier.flags, _set_notify),
    "slowlog-log-slower-than": Param(_getter("server", "slowlog_log_slower_than_us"), _set_slowlog_threshold),
    "slowlog-max-len": Param(_getter("server", "slowlog_max_len"), _set_slowlog_len),
    "client-output-buffer-limit": Param(_get_output_limits, _set_output_limits),
    # Redis 7 renamed lua-time-limit to busy-reply-threshold; both names work.
    "busy-reply-threshold": _BUSY_REPLY_THRESHOLD,
    "lua-time-limit": _BUSY_REPLY_THRESHOLD,
    "hz": Param(_getter("ttl", "hz"), _setter("ttl", "hz", lambda v: _int(v, 1, 500))),
    "proto-max-bulk-len": Param(lambda s: str(s.config.limits.bulk_bytes), _setter("limits", "bulk_bytes", lambda v: parse_memory(v))),
    "databases": Param(lambda s: str(len(s.keyspace.databases))),
    "port": Param(lambda s: str(s.listening_ports.get("resp", parse_addr(s.config.server.tcp_addr)[1]))),
    "bind": Param(lambda s: " ".join([parse_addr(s.config.server.tcp_addr)[0], *s.config.server.extra_tcp_binds])),
    "dir": Param(lambda s: s.config.storage.data_dir),
    # Persistence is configured at start-up; these report what runs.
    "save": Param(lambda s: ""),
    "appendonly": Param(lambda s: "yes" if s.persistence is not None else "no"),
    "appendfsync": Param(lambda s: s.config.persistence.fsync),
}


def config_get(state: ServerState, patterns: list[bytes]) -> dict[bytes, bytes]:
    from tokenginx.storage.glob import compile_glob

    out: dict[bytes, bytes] = {}
    for pat in patterns:
        match = compile_glob(pat.lower())
        for name, param in PARAMS.items():
            if match(name.encode()):
                out[name.encode()] = param.get(state).encode()
    return out


def config_set(state: ServerState, pairs: list[tuple[bytes, bytes]]) -> None:
    """Apply every pair or none: values are validated against a copy first."""
    seen: set[str] = set()
    resolved: list[tuple[str, Param, str]] = []
    for raw_name, raw_value in pairs:
        name = raw_name.decode("utf-8", "replace").lower()
        param = PARAMS.get(name)
        if param is None or param.set is None:
            raise CommandError(
                f"ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                if param is None
                else f"ERR CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"
            )
        if name in seen:
            raise CommandError(f"ERR CONFIG SET failed (possibly related to argument '{name}') - duplicate parameter")
        seen.add(name)
        resolved.append((name, param, raw_value.decode("utf-8", "replace")))
    previous = [(name, param, param.get(state)) for name, param, _ in resolved]
    try:
        for name, param, value in resolved:
            try:
                param.set(state, value)  # type: ignore[misc]
            except (ValueError, CommandError) as e:
                msg = e.message.split(" ", 1)[-1] if isinstance(e, CommandError) else str(e)
                raise CommandError(
                    f"ERR CONFIG SET failed (possibly related to argument '{name}') - {msg}"
                ) from None
    except CommandError:
        for _name, param, old in previous:
            try:
                param.set(state, old)  # type: ignore[misc]
            except (ValueError, CommandError):
                pass
        raise
