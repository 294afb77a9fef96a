"""Server commands: INFO CONFIG TIME LASTSAVE SLOWLOG MONITOR FUNCTION DEBUG SHUTDOWN ROLE MEMORY."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time

from tokenginx.client import Client
from tokenginx.commands.args import parse_int
from tokenginx.commands.config_params import config_get, config_set
from tokenginx.commands.table import CommandGroup
from tokenginx.errors import BusyScriptError, CommandError, syntax_error
from tokenginx.replies import OK, Status, Verbatim
from tokenginx.storage.memory import value_size
from tokenginx.version import REDIS_COMPAT_VERSION, __version__

group = CommandGroup("server")
command = group.command
sub = group.subcommand

_DEFAULT_SECTIONS = ("server", "clients", "memory", "persistence", "stats", "replication", "cpu", "keyspace")
_ALL_SECTIONS = (*_DEFAULT_SECTIONS, "commandstats", "errorstats")


# -- INFO -------------------------------------------------------------------------------
def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _human(n: int) -> str:
    for unit in ("B", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n}{unit}" if unit == "B" else f"{n:.2f}{unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _section_server(client: Client) -> list[str]:
    st = client.state
    uptime = int(time.monotonic() - st.stats.started_monotonic)
    return [
        f"redis_version:{REDIS_COMPAT_VERSION}",
        f"tokenginx_version:{__version__}",
        "redis_git_sha1:00000000",
        "redis_git_dirty:0",
        "redis_mode:standalone",
        "tokenginx_mode:standalone",
        f"os:{platform.system()} {platform.release()} {platform.machine()}",
        f"arch_bits:{64 if sys.maxsize > 2**32 else 32}",
        "multiplexing_api:epoll",
        f"python_version:{platform.python_version()}",
        f"process_id:{st.pid}",
        f"run_id:{st.run_id}",
        f"tcp_port:{st.listening_ports.get('resp', 0)}",
        f"server_time_usec:{time.time_ns() // 1000}",
        f"uptime_in_seconds:{uptime}",
        f"uptime_in_days:{uptime // 86400}",
        f"hz:{st.config.ttl.hz}",
        "executable:" + (sys.argv[0] if sys.argv else ""),
    ]


def _section_clients(client: Client) -> list[str]:
    st = client.state
    pubsub = sum(1 for c in st.clients.values() if c.subscriptions())
    return [
        f"connected_clients:{len(st.clients)}",
        f"maxclients:{st.config.server.max_connections}",
        "blocked_clients:0",
        f"pubsub_clients:{pubsub}",
        f"watching_clients:{sum(1 for c in st.clients.values() if c.watched)}",
    ]


def _section_memory(client: Client) -> list[str]:
    st = client.state
    used = st.keyspace.used_memory()
    rss = _rss_bytes()
    maxmem = st.keyspace.max_memory
    engine = st.scripts
    lua_bytes = engine.memory_used() if engine is not None else 0
    scripts_bytes = sum(len(sc.body) for sc in engine.scripts.values()) if engine is not None else 0
    return [
        f"used_memory:{used}",
        f"used_memory_human:{_human(used)}",
        f"used_memory_rss:{rss}",
        f"used_memory_rss_human:{_human(rss)}",
        f"used_memory_peak:{max(used, 0)}",
        f"used_memory_dataset:{used - st.keyspace.overhead}",
        f"used_memory_startup:{st.keyspace.overhead}",
        f"used_memory_lua:{lua_bytes}",
        f"used_memory_vm_eval:{lua_bytes}",
        f"used_memory_scripts_eval:{scripts_bytes}",
        f"number_of_cached_scripts:{len(engine) if engine is not None else 0}",
        f"maxmemory:{maxmem}",
        f"maxmemory_human:{_human(maxmem)}",
        f"maxmemory_policy:{st.keyspace.eviction_policy}",
        f"mem_fragmentation_ratio:{(rss / used) if used else 0:.2f}",
        "mem_allocator:pymalloc",
    ]


def _section_persistence(client: Client) -> list[str]:
    st = client.state
    p = st.persistence
    lines = [f"loading:{1 if st.loading else 0}", f"rdb_changes_since_last_save:{st.keyspace.dirty}"]
    if p is None:
        return lines + [
            "rdb_bgsave_in_progress:0",
            f"rdb_last_save_time:{st.last_save}",
            "rdb_last_bgsave_status:ok",
            "aof_enabled:0",
            "aof_rewrite_in_progress:0",
            "aof_last_write_status:ok",
        ]
    s, j, r = p.status, p.journal, p.report
    in_progress = 1 if p.saving else 0
    write_ok = "ok" if j is None or j.error is None else "err"
    return lines + [
        f"rdb_bgsave_in_progress:{in_progress}",
        f"rdb_last_save_time:{s.last_save}",
        f"rdb_last_bgsave_status:{s.last_status}",
        f"rdb_last_bgsave_time_sec:{int(s.last_duration_s) if s.last_duration_s >= 0 else -1}",
        f"rdb_saves:{s.saves}",
        f"rdb_snapshot_size:{s.snapshot_size}",
        "aof_enabled:1",
        f"aof_rewrite_in_progress:{in_progress}",
        f"aof_last_bgrewrite_status:{s.last_status}",
        f"aof_last_write_status:{write_ok}",
        f"aof_current_size:{j.size if j is not None else 0}",
        f"aof_fsync_policy:{p.fsync}",
        f"aof_last_write_error:{(j.error if j is not None and j.error else '')}",
        f"loading_recovered_records:{r.records}",
        f"loading_truncated_bytes:{r.truncated_bytes}",
        f"loading_time_sec:{r.seconds:.3f}",
        f"persistence_dir:{p.directory}",
    ]


def _section_stats(client: Client) -> list[str]:
    st = client.state
    s, ks = st.stats, st.keyspace
    return [
        f"total_connections_received:{s.connections_received}",
        f"total_commands_processed:{st.commands_processed()}",
        f"instantaneous_ops_per_sec:{s.instantaneous_ops()}",
        f"total_net_input_bytes:{s.net_input_bytes}",
        f"total_net_output_bytes:{s.net_output_bytes}",
        f"rejected_connections:{s.rejected_connections}",
        f"expired_keys:{ks.expired_keys}",
        f"expired_keys_active:{ks.expire_cycle_keys}",
        f"evicted_keys:{ks.evicted_keys}",
        f"keyspace_hits:{ks.hits}",
        f"keyspace_misses:{ks.misses}",
        f"pubsub_channels:{len(st.pubsub.channels)}",
        f"pubsub_patterns:{st.pubsub.numpat()}",
        f"client_output_buffer_limit_disconnections:{s.pubsub_clients_killed}",
        f"total_error_replies:{s.error_replies}",
        f"total_keys:{ks.total_keys()}",
    ]


def _section_replication(client: Client) -> list[str]:
    return ["role:master", "connected_slaves:0", "master_repl_offset:0"]


def _section_cpu(client: Client) -> list[str]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return [
        f"used_cpu_sys:{ru.ru_stime:.6f}",
        f"used_cpu_user:{ru.ru_utime:.6f}",
    ]


def _section_keyspace(client: Client) -> list[str]:
    lines = []
    for db in client.state.keyspace.databases:
        n = db.size()
        if n:
            lines.append(f"db{db.id}:keys={n},expires={len(db.expires)},avg_ttl=0")
    return lines


def _section_commandstats(client: Client) -> list[str]:
    lines = []
    for cmd in client.state.table.all_with_subcommands():
        if cmd.calls or cmd.rejected_calls or cmd.failed_calls:
            usec = cmd.usec_ns // 1000
            per = usec / cmd.calls if cmd.calls else 0.0
            lines.append(
                f"cmdstat_{cmd.full_name}:calls={cmd.calls},usec={usec},usec_per_call={per:.2f},"
                f"rejected_calls={cmd.rejected_calls},failed_calls={cmd.failed_calls}"
            )
    return lines


def _section_errorstats(client: Client) -> list[str]:
    return [f"errorstat_{p}:count={n}" for p, n in sorted(client.state.stats.errors_by_prefix.items())]


_SECTIONS = {
    "server": _section_server,
    "clients": _section_clients,
    "memory": _section_memory,
    "persistence": _section_persistence,
    "stats": _section_stats,
    "replication": _section_replication,
    "cpu": _section_cpu,
    "keyspace": _section_keyspace,
    "commandstats": _section_commandstats,
    "errorstats": _section_errorstats,
}


def info_text(client: Client, sections: list[str]) -> str:
    wanted: list[str] = []
    for s in sections or ["default"]:
        s = s.lower()
        if s == "default":
            wanted.extend(_DEFAULT_SECTIONS)
        elif s in ("all", "everything"):
            wanted.extend(_ALL_SECTIONS)
        elif s in _SECTIONS:
            wanted.append(s)
    blocks = []
    for name in dict.fromkeys(wanted):
        lines = _SECTIONS[name](client)
        title = "CPU" if name == "cpu" else name.capitalize()
        blocks.append(f"# {title}\r\n" + "".join(line + "\r\n" for line in lines))
    return "\r\n".join(blocks)


@command("info", -1, "loading stale", acl="slow dangerous", summary="Returns information and statistics about the server.", complexity="O(1)")
def info(client: Client, argv: list[bytes]) -> Verbatim:
    return Verbatim(info_text(client, [a.decode("utf-8", "replace") for a in argv[1:]]).encode())


# -- CONFIG -----------------------------------------------------------------------------
group.container("config", acl="slow", summary="A container for server configuration commands.", since="2.0.0")


@sub("config", "get", -3, "admin noscript loading stale", acl="admin slow dangerous", summary="Returns the effective values of configuration parameters.", since="2.0.0", complexity="O(N)")
def config_get_cmd(client: Client, argv: list[bytes]) -> dict[bytes, bytes]:
    return config_get(client.state, argv[2:])


@sub("config", "set", -4, "admin noscript loading stale", acl="admin slow dangerous", summary="Sets configuration parameters in-flight.", since="2.0.0", complexity="O(N)")
def config_set_cmd(client: Client, argv: list[bytes]) -> object:
    if len(argv) % 2:
        raise CommandError("ERR wrong number of arguments for 'config|set' command")
    config_set(client.state, list(zip(argv[2::2], argv[3::2])))
    return OK


@sub("config", "resetstat", 2, "admin noscript loading stale", acl="admin slow dangerous", summary="Resets the server's statistics.", since="2.0.0")
def config_resetstat(client: Client, argv: list[bytes]) -> object:
    st = client.state
    st.table.reset_stats()
    st.slowlog.clear()
    s = st.stats
    s.connections_received = s.error_replies = 0
    s.ops_samples.clear()
    s.net_input_bytes = s.net_output_bytes = s.rejected_connections = 0
    s.errors_by_prefix.clear()
    ks = st.keyspace
    ks.hits = ks.misses = ks.expired_keys = ks.evicted_keys = ks.expire_cycle_keys = 0
    return OK


# -- misc -------------------------------------------------------------------------------
@command("time", 1, "loading stale fast", acl="fast", summary="Returns the server time.", since="2.6.0")
def time_(client: Client, argv: list[bytes]) -> list[bytes]:
    ms = client.state.clock()
    us = time.time_ns() // 1000
    # Use the (injectable) clock's second and the real sub-second part.
    return [b"%d" % (ms // 1000), b"%d" % (us % 1_000_000)]


@command("wait", 3, "", acl="slow connection", summary="Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.", since="3.0.0")
def wait(client: Client, argv: list[bytes]) -> int:
    """There are no replicas to wait for: validate the arguments, answer 0."""
    parse_int(argv[1])
    if parse_int(argv[2]) < 0:
        raise CommandError("ERR timeout is negative")
    return 0


@command("role", 1, "noscript loading stale fast", acl="admin fast dangerous", summary="Returns the replication role.", since="2.8.12")
def role(client: Client, argv: list[bytes]) -> list[object]:
    return [b"master", 0, []]


@command("monitor", 1, "admin noscript loading stale no_multi", acl="admin slow dangerous", summary="Listens for all requests received by the server in real-time.")
def monitor(client: Client, argv: list[bytes]) -> object:
    if client.push_sink is None:
        raise CommandError("ERR MONITOR is not available on this connection")
    if not client.monitor:
        client.monitor = True
        client.state.monitors.append(client)
    return OK


@command("shutdown", -1, "admin noscript loading stale no_multi allow_busy", acl="admin slow dangerous", summary="Synchronously saves the database(s) to disk and shuts down the Redis server.")
def shutdown(client: Client, argv: list[bytes]) -> object:
    for a in argv[1:]:
        if a.upper() not in (b"NOSAVE", b"SAVE", b"NOW", b"FORCE", b"ABORT"):
            raise syntax_error()
    if any(a.upper() == b"ABORT" for a in argv[1:]):
        raise CommandError("ERR No shutdown in progress.")
    if client.state.busy:
        # A script is busy: only SHUTDOWN NOSAVE, which stops it (see ScriptEngine).
        if not any(a.upper() == b"NOSAVE" for a in argv[1:]):
            raise BusyScriptError()
        client.state.scripts.shutdown_while_busy()
    stop = client.state.shutdown_requested
    if stop is None:
        raise CommandError("ERR Errors trying to SHUTDOWN. Check logs.")
    stop()
    client.closing = True
    return OK


# -- SLOWLOG ----------------------------------------------------------------------------
group.container("slowlog", acl="slow", summary="A container for slow log commands.", since="2.2.12")


@sub("slowlog", "get", -2, "admin loading stale", acl="admin slow dangerous", summary="Returns the slow log's entries.", since="2.2.12", complexity="O(N)")
def slowlog_get(client: Client, argv: list[bytes]) -> list[object]:
    count = 10
    if len(argv) > 3:
        raise CommandError("ERR wrong number of arguments for 'slowlog|get' command")
    if len(argv) == 3:
        count = parse_int(argv[2])
        if count < -1:
            raise CommandError("ERR count should be greater than or equal to -1")
        if count == -1:
            count = len(client.state.slowlog)
    entries = list(client.state.slowlog)[:count]
    return [[e.id, e.timestamp, e.duration_us, list(e.argv), e.addr.encode(), e.name] for e in entries]


@sub("slowlog", "len", 2, "admin loading stale", acl="admin slow dangerous", summary="Returns the number of entries in the slow log.", since="2.2.12")
def slowlog_len(client: Client, argv: list[bytes]) -> int:
    return len(client.state.slowlog)


@sub("slowlog", "reset", 2, "admin loading stale", acl="admin slow dangerous", summary="Clears all entries from the slow log.", since="2.2.12", complexity="O(N)")
def slowlog_reset(client: Client, argv: list[bytes]) -> object:
    client.state.slowlog.clear()
    return OK


# -- FUNCTION (we have no functions; the answers are what an empty library gives) --------
group.container("function", acl="slow", summary="A container for function commands.", since="7.0.0")


@sub("function", "flush", -2, "write noscript", acl="write slow scripting", summary="Deletes all libraries and functions.", since="7.0.0")
def function_flush(client: Client, argv: list[bytes]) -> object:
    if len(argv) > 3 or (len(argv) == 3 and argv[2].upper() not in (b"ASYNC", b"SYNC")):
        raise syntax_error()
    return OK


@sub("function", "list", -2, "noscript", acl="slow scripting", summary="Returns information about all libraries.", since="7.0.0")
def function_list(client: Client, argv: list[bytes]) -> list[object]:
    return []


# -- DEBUG ------------------------------------------------------------------------------
group.container("debug", flags="admin noscript loading stale", acl="admin slow dangerous", summary="A container for debugging commands.")


@sub("debug", "sleep", 3, "admin noscript loading stale", acl="admin slow dangerous", summary="Blocks the server for the given seconds (as Redis does); 0 returns at once.")
def debug_sleep(client: Client, argv: list[bytes]) -> object:
    try:
        seconds = float(argv[2])
    except ValueError:
        raise CommandError("ERR value is not a valid float") from None
    if seconds > 0:
        time.sleep(min(seconds, 60.0))
    return OK


@sub("debug", "object", 3, "admin noscript loading stale", (2, 2, 1), "admin slow dangerous", summary="Shows low-level information about a key.")
def debug_object(client: Client, argv: list[bytes]) -> object:
    from tokenginx.commands.keys import encoding_of

    v = client.db.lookup(argv[2])
    if v is None:
        raise CommandError("ERR no such key")
    size = value_size(argv[2], v)
    return Status(
        b"Value at:0x0 refcount:1 encoding:%b serializedlength:%d lru:0 lru_seconds_idle:0"
        % (encoding_of(v), size)
    )


# -- MEMORY -----------------------------------------------------------------------------
group.container("memory", acl="slow", summary="A container for memory diagnostics commands.", since="4.0.0")


@sub("memory", "usage", -3, "readonly", (2, 2, 1), "read slow", summary="Estimates the memory usage of a key.", since="4.0.0", complexity="O(N)")
def memory_usage(client: Client, argv: list[bytes]) -> int | None:
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3].upper() != b"SAMPLES"):
        raise syntax_error()
    v = client.db.lookup(argv[2])
    return None if v is None else value_size(argv[2], v)
