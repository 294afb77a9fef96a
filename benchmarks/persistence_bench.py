#!/usr/bin/env python3
"""Persistence: write throughput with a log, restart time, latency during a snapshot.

TokenginX (write-ahead log + fork snapshots) against redis-server (AOF / RDB), in one run:

throughput
    ``redis-benchmark -t set -n 200000 -r 100000 -d 200 -c 50 -P {1,16}`` against redis
    (``--appendonly yes --appendfsync everysec``) and ours (``--fsync everysec``), both
    running side by side, then both again with ``always``. ops/s, p50/p99, server CPU
    µs per request. Afterwards both are killed with SIGKILL and restarted, and every key
    they held before the kill is checked.

restart
    One server at a time: load N keys (200-byte values, every odd key with a 1 h TTL),
    SIGKILL, restart, and time from process start until it answers PING and DBSIZE is
    N (log only: automatic compaction is off on both sides); then SAVE (ours) /
    BGREWRITEAOF (redis: the AOF base becomes an RDB), SIGKILL and time the restart
    from the snapshot. Each restart is verified (DBSIZE, expires, every value, TTLs).

snapshot
    One server at a time: load N keys, run a latency probe (own process, SET/GET back to
    back on one connection) and issue BGSAVE; report the probe's latency from the
    command until INFO persistence shows rdb_bgsave_in_progress:0, the BGSAVE reply
    time (it includes the fork) and redis's latest_fork_usec. Then SIGKILL, restart
    from that snapshot and verify.

    python benchmarks/persistence_bench.py
    python benchmarks/persistence_bench.py --keys 200000 --phases restart,snapshot

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import redis
from _probe import Probe, ProbeError, bulk_reply, resp_command
from _servers import (
    HOST,
    Server,
    ServerError,
    delta,
    environment,
    exit_on_sigterm,
    fmt_num,
    fmt_ratio,
    format_table,
    get_path,
    process_tree,
    roundtrip,
    write_json,
)
from resp_throughput import BenchmarkError as ThroughputError
from resp_throughput import parse_pipelines, run_one

PHASES = ("throughput", "restart", "snapshot")
POLICIES = ("everysec", "always")
TTL_S = 3600
PROBE_KEY = b"probe:key"
IDLE_S = 1.0  # probe runs this long before BGSAVE (the idle baseline)
FORK_WINDOW_MS = 200  # "around the fork": round trips overlapping [BGSAVE sent, +200 ms]
CONFIG_KEYS = (
    "requests", "pipelines", "clients", "keyspace", "data_size", "policies", "rounds",
    "keys", "value_size", "batch", "poll_ms",
)  # fmt: skip
TARGET_OPS_RATIO = 0.8
TARGET_RESTART_RATIO = 2.0
TARGET_BGSAVE_P99_MS = 5.0

# {fsync} is replaced by the policy under test; the other placeholders as in _servers.py.
# Throughput runs with each server's default compaction (redis rewrites the AOF, ours takes
# a snapshot, once the log passes 64 MB), as a production server would.
REDIS_CMD = (
    "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly yes"
    " --appendfsync {fsync} --dir {data_dir}"
)
OURS_CMD = (
    "{python} -m tokenginx.cli.server_main --port {port} --bind 127.0.0.1"
    " --http-port {http_port} --grpc-port {grpc_port} --data-dir {data_dir} --log-level warn"
    " --fsync {fsync}"
)
# Restart and snapshot phases: automatic compaction off, so after loading redis has only
# its AOF (an empty RDB base + the commands) and ours only its log segments.
REDIS_RESTART_CMD = (
    "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly yes"
    " --appendfsync everysec --auto-aof-rewrite-percentage 0 --dir {data_dir}"
)
OURS_RESTART_CMD = (
    "{python} -m tokenginx.cli.server_main --port {port} --bind 127.0.0.1"
    " --http-port {http_port} --grpc-port {grpc_port} --data-dir {data_dir} --log-level warn"
    " --fsync everysec --set persistence.snapshot_min_log_mb=1000000"
)

_REDIS_LOADED_RE = re.compile(r"DB loaded from (?:append only file|disk): ([0-9.]+) seconds")


class BenchmarkError(RuntimeError):
    pass


# -- servers that survive a SIGKILL --------------------------------------------------------


class PServer(Server):
    """A Server that can be killed with SIGKILL and started again on the same data dir
    and port (the logs keep accumulating in the same files)."""

    def kill9(self) -> None:
        """SIGKILL the server and any child it has (a snapshot child would otherwise
        go on writing into the data directory)."""
        assert self.proc is not None
        for pid in process_tree(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()

    def respawn(self) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
        )

    def log_text(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        parts = []
        for f in (self._out, self._err):
            if f is not None:
                f.flush()
                f.seek(0)
                parts.append(f.read().decode(errors="replace"))
        return "\n".join(parts)


@contextlib.contextmanager
def started(name: str, template: str, args: argparse.Namespace) -> Iterator[PServer]:
    server = PServer(name, template, args.startup_timeout)
    try:
        server.start()
        server.wait_ready()
        print(f"  {name}: pid {server.pid} port {server.port}: {shlex.join(server.argv)}",
              file=sys.stderr)  # fmt: skip
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.kill9()  # no shutdown snapshot of N keys: it would only cost time
        server.stop()


def with_fsync(template: str, policy: str) -> str:
    return template.replace("{fsync}", policy)


def disk_files(directory: str) -> list[tuple[str, int]]:
    out = []
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with contextlib.suppress(FileNotFoundError):
                out.append((os.path.relpath(path, directory), os.path.getsize(path)))
    return sorted(out)


def _files_line(files: list[tuple[str, int]]) -> str:
    return ", ".join(f"{name} {_size(size)}" for name, size in files) or "(none)"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GB"


def info(server: Server, section: str) -> dict[str, Any]:
    try:
        with server.client(socket_timeout=30) as c:
            return dict(c.info(section))
    except redis.RedisError as e:
        server.check_alive()
        raise BenchmarkError(f"{server.name}: INFO {section} failed: {e}") from e


def wait_idle(server: Server, timeout: float = 600) -> None:
    """Until no snapshot / AOF rewrite runs or is scheduled."""
    deadline = time.monotonic() + timeout
    while True:
        p = info(server, "persistence")
        busy = [
            k
            for k in ("rdb_bgsave_in_progress", "aof_rewrite_in_progress", "aof_rewrite_scheduled")
            if int(p.get(k, 0))
        ]
        if not busy:
            return
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{server.name}: still busy ({', '.join(busy)}) after {timeout}s")
        time.sleep(0.05)


# -- keys ------------------------------------------------------------------------------------


def token_pool(size: int) -> bytes:
    """Base64 text of seeded random bytes: values are cut from it, so they look like
    tokens (as incompressible as real ones) and can be recomputed for verification."""
    return base64.b64encode(random.Random(20240611).randbytes(48 * 1024 + size))


def make_value(i: int, size: int, pool: bytes) -> bytes:
    """A ``size``-byte value that differs per key: ``i`` in 10 digits, then a slice of
    ``pool`` at an offset that depends on ``i``."""
    off = (i * 7919) % (len(pool) - size)
    return (b"%010d" % i + pool[off : off + size])[:size]


def has_ttl(i: int) -> bool:
    return i % 2 == 1


def load(server: Server, args: argparse.Namespace) -> float:
    """SET key:0 ... key:N-1 (odd ones with EX 3600) through pipelines; seconds taken."""
    pool = token_pool(args.value_size)
    t0 = time.perf_counter()
    try:
        with server.client() as c:
            for start in range(0, args.keys, args.batch):
                pipe = c.pipeline(transaction=False)
                for i in range(start, min(args.keys, start + args.batch)):
                    value = make_value(i, args.value_size, pool)
                    if has_ttl(i):
                        pipe.execute_command("SET", b"key:%d" % i, value, "EX", TTL_S)
                    else:
                        pipe.execute_command("SET", b"key:%d" % i, value)
                pipe.execute()
    except redis.RedisError as e:
        server.check_alive()
        raise BenchmarkError(f"{server.name}: loading keys failed: {e}\n{server.details()}") from e
    return time.perf_counter() - t0


def verify(server: Server, args: argparse.Namespace, extra_keys: int = 0) -> dict[str, Any]:
    """Check DBSIZE, the number of keys with a TTL, every value (MGET) and the TTL of
    every 97th key. Returns the findings; ``ok`` is False on any mismatch."""
    n = args.keys
    pool = token_pool(args.value_size)
    problems: list[str] = []
    wrong_values = missing = 0
    ttl_checked = ttl_wrong = 0
    t0 = time.perf_counter()
    try:
        with server.client() as c:
            dbsize = int(c.dbsize())
            if dbsize != n + extra_keys:
                problems.append(f"DBSIZE {dbsize}, expected {n + extra_keys}")
            ks = dict(c.info("keyspace")).get("db0", {})
            expires = ks.get("expires") if isinstance(ks, dict) else None
            if expires is not None and int(expires) != n // 2:
                problems.append(f"INFO keyspace expires={expires}, expected {n // 2}")
            for start in range(0, n, args.batch):
                stop = min(n, start + args.batch)
                values = c.execute_command("MGET", *[b"key:%d" % i for i in range(start, stop)])
                for i, v in zip(range(start, stop), values):
                    if v is None:
                        missing += 1
                        if missing <= 3:
                            problems.append(f"key:{i} missing")
                    elif v != make_value(i, args.value_size, pool):
                        wrong_values += 1
                        if wrong_values <= 3:
                            problems.append(f"key:{i} has a wrong value {v[:40]!r}...")
            pipe = c.pipeline(transaction=False)
            sample = range(0, n, 97)
            for i in sample:
                pipe.execute_command("PTTL", b"key:%d" % i)
            for i, pttl in zip(sample, pipe.execute()):
                ttl_checked += 1
                good = 0 < pttl <= TTL_S * 1000 if has_ttl(i) else pttl == -1
                if not good:
                    ttl_wrong += 1
                    if ttl_wrong <= 3:
                        problems.append(f"key:{i} PTTL {pttl}")
    except redis.RedisError as e:
        server.check_alive()
        raise BenchmarkError(f"{server.name}: verification failed: {e}") from e
    if missing > 3:
        problems.append(f"{missing} keys missing in all")
    if wrong_values > 3:
        problems.append(f"{wrong_values} wrong values in all")
    if ttl_wrong > 3:
        problems.append(f"{ttl_wrong} of {ttl_checked} sampled TTLs wrong")
    return {
        "ok": not problems,
        "dbsize": dbsize,
        "expires": None if expires is None else int(expires),
        "missing": missing,
        "wrong_values": wrong_values,
        "ttl_checked": ttl_checked,
        "ttl_wrong": ttl_wrong,
        "problems": problems,
        "seconds": time.perf_counter() - t0,
    }


# -- timed restart ---------------------------------------------------------------------------


def timed_restart(server: PServer, expected: int, timeout: float) -> dict[str, Any]:
    """SIGKILL, start again, time until PING answers +PONG and until DBSIZE == expected
    (polled every 5 ms; -LOADING replies and refused connections are retried)."""
    server.kill9()
    files = disk_files(server.data_dir)
    t0 = time.monotonic()
    server.respawn()
    pong = ready = None
    dbsize = None
    last = "no attempt yet"
    while ready is None:
        now = time.monotonic()
        if now - t0 > timeout:
            raise BenchmarkError(
                f"{server.name}: not ready {timeout:g}s after restart (last: {last}; "
                f"DBSIZE {dbsize}, expected {expected})\n{server.details()}"
            )
        if server.proc is not None and server.proc.poll() is not None:
            raise ServerError(server._death_message("exited while restarting"))
        try:
            with socket.create_connection((HOST, server.port), timeout=5) as s:
                reply = roundtrip(s, b"*1\r\n$4\r\nPING\r\n")
                if reply.startswith(b"+PONG"):
                    if pong is None:
                        pong = time.monotonic() - t0
                    reply = roundtrip(s, b"*1\r\n$6\r\nDBSIZE\r\n")
                    if reply.startswith(b":"):
                        dbsize = int(reply[1:])
                        if dbsize == expected:
                            ready = time.monotonic() - t0
                            break
                        if time.monotonic() - t0 - pong > 10:
                            break  # answers PING but the keys are not all back: report it
                last = f"reply {reply.decode(errors='replace')!r}"
        except OSError as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.005)
    return {
        "files": files,
        "disk_bytes": sum(size for _, size in files),
        "pong_s": pong,
        "ready_s": ready,
        "dbsize": dbsize,
        "server_load_s": server_load_seconds(server),
    }


def server_load_seconds(server: PServer) -> float | None:
    """The load time the server itself reports: ours INFO loading_time_sec, redis its
    'DB loaded from ...: X seconds' log line (the last one)."""
    try:
        p = info(server, "persistence")
    except BenchmarkError:
        return None
    if "loading_time_sec" in p:
        return float(p["loading_time_sec"])
    found = _REDIS_LOADED_RE.findall(server.log_text())
    return float(found[-1]) if found else None


# -- phase 1: throughput ---------------------------------------------------------------------


def keyspace_dump(server: Server) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    with server.client() as c:
        keys = list(c.scan_iter(count=1000))
        for start in range(0, len(keys), 10_000):
            chunk = keys[start : start + 10_000]
            out.update(zip(chunk, c.execute_command("MGET", *chunk)))
    return out


def crash_check(server: PServer, args: argparse.Namespace) -> dict[str, Any]:
    """Read every key, SIGKILL (once no snapshot/rewrite runs), restart, compare."""
    wait_idle(server)
    before = keyspace_dump(server)
    r = timed_restart(server, len(before), args.restart_timeout)
    after = keyspace_dump(server)
    lost = [k for k in before if k not in after]
    changed = [k for k in before if k in after and after[k] != before[k]]
    added = [k for k in after if k not in before]
    return {
        "keys_before": len(before),
        "keys_after": len(after),
        "lost": len(lost),
        "changed": len(changed),
        "added": len(added),
        "examples": [k.decode(errors="replace") for k in (lost + changed + added)[:5]],
        "ok": not (lost or changed or added),
        "restart_s": r["ready_s"],
        "disk_bytes": r["disk_bytes"],
    }


def forks_started(stats: dict[str, Any], pers: dict[str, Any]) -> int:
    """A counter of background saves/rewrites started: redis INFO stats total_forks;
    ours (no such field) finished snapshots + the one running."""
    if "total_forks" in stats:
        return int(stats["total_forks"])
    return int(pers.get("rdb_saves", 0)) + int(pers.get("rdb_bgsave_in_progress", 0))


def run_set(
    args: argparse.Namespace,
    server: PServer,
    mon: Any,
    policy: str,
    pipeline: int,
    rnd: int,
    runs: list[dict[str, Any]],
) -> None:
    """One redis-benchmark SET invocation; error replies, forks and the log's write
    status from INFO on the monitoring connection ``mon``, before and after."""
    st0, p0 = mon.info("stats"), mon.info("persistence")
    for rec in run_one(args, server, "set", pipeline, rnd):
        st, p = mon.info("stats"), mon.info("persistence")
        rec.update(
            policy=policy,
            error_replies=delta(
                st0.get("total_error_replies", 0), st.get("total_error_replies", 0)
            ),
            forks=forks_started(st, p) - forks_started(st0, p0),
            aof_last_write_status=p.get("aof_last_write_status"),
        )
        runs.append(rec)
        print(
            f"  P={pipeline:<3} round {rnd + 1}/{args.rounds} {server.name:<6}"
            f"{rec['rps']:>11,.0f} ops/s  p50 {rec['p50_latency_ms']:.3f} ms  "
            f"p99 {rec['p99_latency_ms']:.3f} ms  cpu {rec['cpu_us_per_op']:.2f} µs/op  "
            f"errors {rec['error_replies']}  forks {rec['forks']}  "
            f"write {rec['aof_last_write_status']}",
            file=sys.stderr,
        )


def median_runs(runs: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, dict[str, Any]]]:
    """(policy, pipeline) -> server -> median over rounds of each figure (forks: sum)."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["policy"], r["pipeline"], r["server"]), []).append(r)
    out: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for (policy, pipeline, server), rs in groups.items():
        entry = {
            k: statistics.median(r[k] for r in rs)
            for k in ("rps", "p50_latency_ms", "p99_latency_ms", "cpu_us_per_op")
        }
        entry["forks"] = sum(r["forks"] for r in rs)
        entry["rounds"] = len(rs)
        out.setdefault((policy, pipeline), {})[server] = entry
    return out


def throughput_phase(args: argparse.Namespace) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    checks: dict[str, dict[str, Any]] = {}
    commands: dict[str, list[str]] = {}
    for policy in args.policies:
        print(f"throughput, fsync {policy}:", file=sys.stderr)
        with (
            started("redis", with_fsync(args.redis_cmd, policy), args) as rs,
            started("ours", with_fsync(args.ours_cmd, policy), args) as ours,
        ):
            servers = [rs, ours]
            commands[f"redis/{policy}"], commands[f"ours/{policy}"] = rs.argv, ours.argv
            # One monitoring connection per server: redis-py's connection handshake may
            # draw error replies (e.g. CLIENT SETINFO on Redis 7.0) that are not the
            # benchmark's; they happen before the first INFO on this connection.
            monitors = {s.name: s.client(socket_timeout=30) for s in servers}
            for rnd in range(args.rounds):
                for k, pipeline in enumerate(args.pipelines):
                    order = servers if (k + rnd) % 2 == 0 else servers[::-1]
                    for server in order:
                        run_set(args, server, monitors[server.name], policy, pipeline, rnd, runs)
            for mon in monitors.values():
                mon.close()
            for server in servers:
                c = crash_check(server, args)
                checks[f"{server.name}/{policy}"] = c
                print(
                    f"  {server.name}: kill -9 + restart: {c['keys_before']:,} keys before, "
                    f"{c['keys_after']:,} after, lost {c['lost']}, changed {c['changed']}, "
                    f"added {c['added']} ({'ok' if c['ok'] else 'MISMATCH'}); "
                    f"restart {c['restart_s']:.2f} s",
                    file=sys.stderr,
                )
    return {"runs": runs, "crash_checks": checks, "commands": commands}


def throughput_table(res: dict[str, Any]) -> str:
    by = median_runs(res["runs"])
    headers = [
        "fsync", "P", "redis ops/s", "ours ops/s", "ops ratio", "p50 redis", "p50 ours",
        "p99 redis", "p99 ours", "cpu redis", "cpu ours", "cpu ratio", "forks r/o",
    ]  # fmt: skip
    rows = []
    for (policy, pipeline), pair in by.items():
        r, o = pair["redis"], pair["ours"]
        rows.append([
            policy, str(pipeline), f"{r['rps']:,.0f}", f"{o['rps']:,.0f}",
            fmt_ratio(o["rps"], r["rps"]),
            f"{r['p50_latency_ms']:.3f}", f"{o['p50_latency_ms']:.3f}",
            f"{r['p99_latency_ms']:.3f}", f"{o['p99_latency_ms']:.3f}",
            f"{r['cpu_us_per_op']:.2f}", f"{o['cpu_us_per_op']:.2f}",
            fmt_ratio(o["cpu_us_per_op"], r["cpu_us_per_op"]), f"{r['forks']}/{o['forks']}",
        ])  # fmt: skip
    lines = [format_table(headers, rows)]
    lines.append(
        "(ratio = ours/redis; latencies in ms; cpu = server CPU µs per request; forks r/o = "
        "background AOF rewrites / snapshots started during the run, redis/ours)"
    )
    for label, c in res["crash_checks"].items():
        lines.append(
            f"kill -9 + restart, {label}: {c['keys_before']:,} keys before, "
            f"{c['keys_after']:,} after; lost {c['lost']}, changed {c['changed']}, "
            f"added {c['added']}: {'ok' if c['ok'] else 'MISMATCH ' + str(c['examples'])}"
        )
    return "\n".join(lines)


# -- phase 2: restart ------------------------------------------------------------------------


def snapshot_now(server: PServer) -> tuple[str, float]:
    """ours: SAVE (blocking); redis: BGREWRITEAOF, waited for (the AOF base becomes an
    RDB image and the incremental file starts empty). Returns (what, seconds)."""
    t0 = time.perf_counter()
    try:
        with server.client() as c:
            if server.name == "ours":
                c.execute_command("SAVE")
                what = "SAVE"
            else:
                c.execute_command("BGREWRITEAOF")
                what = "BGREWRITEAOF"
    except redis.RedisError as e:
        server.check_alive()
        raise BenchmarkError(f"{server.name}: snapshot failed: {e}\n{server.details()}") from e
    if what == "BGREWRITEAOF":
        wait_idle(server)
        status = info(server, "persistence").get("aof_last_bgrewrite_status")
        if status != "ok":
            raise BenchmarkError(f"{server.name}: BGREWRITEAOF ended with status {status}")
    return what, time.perf_counter() - t0


def restart_one(server: PServer, args: argparse.Namespace) -> dict[str, Any]:
    n = args.keys
    print(f"  {server.name}: loading {n:,} keys ...", file=sys.stderr)
    load_s = load(server, args)
    wait_idle(server)
    log_only = timed_restart(server, n, args.restart_timeout)
    log_only["verify"] = verify(server, args)
    _report_restart(server, "log-only", log_only)
    what, save_s = snapshot_now(server)
    snap = timed_restart(server, n, args.restart_timeout)
    snap["verify"] = verify(server, args)
    _report_restart(server, f"after {what}", snap)
    return {
        "load_s": load_s,
        "log_only": log_only,
        "snapshot_command": what,
        "snapshot_s": save_s,
        "snapshot": snap,
    }


def _report_restart(server: Server, label: str, r: dict[str, Any]) -> None:
    v = r["verify"]
    print(
        f"  {server.name}: {label} restart: PONG {fmt_num(r['pong_s'], '{:.2f} s')}, "
        f"DBSIZE=N {fmt_num(r['ready_s'], '{:.2f} s')} (DBSIZE {r['dbsize']}); "
        f"on disk {_size(r['disk_bytes'])}: {_files_line(r['files'])}; "
        f"verify {'ok' if v['ok'] else 'FAILED: ' + '; '.join(v['problems'])}",
        file=sys.stderr,
    )


def one_at_a_time(
    phase: str, args: argparse.Namespace, run: Callable[[PServer, argparse.Namespace], Any]
) -> dict[str, Any]:
    """Run ``run`` on redis, then on ours (the restart-phase commands), one server at a
    time; each result gets the server's command line."""
    print(f"{phase} phase, {args.keys:,} keys:", file=sys.stderr)
    out: dict[str, Any] = {}
    for name, template in (("redis", args.redis_restart_cmd), ("ours", args.ours_restart_cmd)):
        with started(name, template, args) as server:
            out[name] = run(server, args)
            out[name]["command"] = server.argv
    return out


def restart_phase(args: argparse.Namespace) -> dict[str, Any]:
    return one_at_a_time("restart", args, restart_one)


RESTART_ROWS = [
    ("load N keys (client, pipelines)", "load_s", "{:.1f} s", True),
    ("log-only: on disk", "log_only.disk_bytes", "size", True),
    ("log-only: start -> PONG", "log_only.pong_s", "{:.2f} s", True),
    ("log-only: start -> DBSIZE = N", "log_only.ready_s", "{:.2f} s", True),
    ("log-only: load time (server's own)", "log_only.server_load_s", "{:.2f} s", True),
    ("log-only: verified", "log_only.verify.ok", "bool", False),
    ("snapshot command time", "snapshot_s", "{:.2f} s", True),
    ("snapshot: on disk", "snapshot.disk_bytes", "size", True),
    ("snapshot: start -> PONG", "snapshot.pong_s", "{:.2f} s", True),
    ("snapshot: start -> DBSIZE = N", "snapshot.ready_s", "{:.2f} s", True),
    ("snapshot: load time (server's own)", "snapshot.server_load_s", "{:.2f} s", True),
    ("snapshot: verified", "snapshot.verify.ok", "bool", False),
]


# -- phase 3: latency during BGSAVE ----------------------------------------------------------


def make_probe(server: Server, value: bytes, timeout: float) -> Probe:
    """The latency probe: SET PROBE_KEY value and GET PROBE_KEY in turn; even samples
    are SETs, odd ones GETs."""
    requests = [
        (resp_command(b"SET", PROBE_KEY, value), b"+OK\r\n"),
        (resp_command(b"GET", PROBE_KEY), bulk_reply(value)),
    ]
    return Probe(server, requests, ["SET", "GET"], timeout)


def bgsave_one(server: PServer, args: argparse.Namespace) -> dict[str, Any]:
    n = args.keys
    print(f"  {server.name}: loading {n:,} keys ...", file=sys.stderr)
    load_s = load(server, args)
    probe_value = b"p" * args.value_size
    with server.client() as c:
        c.set(PROBE_KEY, probe_value)
    wait_idle(server)
    rss = server.rss_bytes()
    stats0 = info(server, "stats")
    probe = make_probe(server, probe_value, 600)
    polls = 0
    try:
        go_ns = time.monotonic_ns()
        probe.go()
        time.sleep(IDLE_S)
        with server.client() as c:
            cmd_ns = time.monotonic_ns()
            try:
                reply = c.execute_command("BGSAVE")
            except redis.RedisError as e:
                server.check_alive()
                raise BenchmarkError(f"{server.name}: BGSAVE failed: {e}") from e
            reply_ns = time.monotonic_ns()
            deadline = time.monotonic() + args.bgsave_timeout
            while True:
                p = dict(c.info("persistence"))
                polls += 1
                if not int(p.get("rdb_bgsave_in_progress", 0)):
                    end_ns = time.monotonic_ns()
                    break
                if time.monotonic() > deadline:
                    raise BenchmarkError(
                        f"{server.name}: BGSAVE still running after {args.bgsave_timeout:g}s"
                    )
                time.sleep(args.poll_ms / 1000)
        probe.stop(60)
        server.check_alive()
    finally:
        probe.kill()
    stats1 = info(server, "stats")
    status = p.get("rdb_last_bgsave_status")
    files = disk_files(server.data_dir)
    result: dict[str, Any] = {
        "load_s": load_s,
        "rss_bytes": rss,
        "bgsave_reply": reply.decode() if isinstance(reply, bytes) else str(reply),
        "bgsave_status": status,
        "bgsave_reply_ms": (reply_ns - cmd_ns) / 1e6,
        "bgsave_s": (end_ns - cmd_ns) / 1e9,
        "info_polls": polls,
        "latest_fork_usec": stats1.get("latest_fork_usec"),
        "total_forks": delta(stats0.get("total_forks"), stats1.get("total_forks")),
        "files": files,
        "disk_bytes": sum(size for _, size in files),
        "snapshot_bytes": sum(size for name, size in files if _is_snapshot(name)),
        "end_ms": (end_ns - cmd_ns) / 1e6,
        "probe_idle": probe.window(go_ns, cmd_ns, cmd_ns),
        "probe": probe.window(cmd_ns, end_ns, cmd_ns),
        "probe_fork": probe.window(cmd_ns, cmd_ns + FORK_WINDOW_MS * 1_000_000, cmd_ns),
        "probe_end": probe.window(end_ns - FORK_WINDOW_MS * 1_000_000, end_ns, cmd_ns),
    }
    pr = result["probe"]
    print(
        f"  {server.name}: BGSAVE {result['bgsave_s']:.2f} s (reply after "
        f"{result['bgsave_reply_ms']:.1f} ms, status {status}), probe p99 "
        f"{fmt_num(pr['p99_ms'], '{:.3f} ms')} max {fmt_num(pr['max_ms'], '{:.2f} ms')} "
        f"({pr['round_trips']:,} round trips); files {_files_line(files)}",
        file=sys.stderr,
    )
    if status != "ok":
        raise BenchmarkError(f"{server.name}: BGSAVE ended with status {status}")
    # redis with appendonly yes restarts from its AOF, not from dump.rdb: only ours
    # (whose start-up loads the newest snapshot) is restarted here.
    if args.verify_bgsave and server.name == "ours":
        r = timed_restart(server, n + 1, args.restart_timeout)
        r["verify"] = verify(server, args, extra_keys=1)
        with server.client() as c:
            if c.get(PROBE_KEY) != probe_value:
                r["verify"]["ok"] = False
                r["verify"]["problems"].append("probe:key lost or wrong")
        _report_restart(server, "after BGSAVE", r)
        result["restart"] = r
    return result


def _is_snapshot(name: str) -> bool:
    base = os.path.basename(name)
    return base == "dump.rdb" or (base.startswith("snapshot-") and base.endswith(".tgx"))


def snapshot_phase(args: argparse.Namespace) -> dict[str, Any]:
    return one_at_a_time("snapshot", args, bgsave_one)


_MS = "{:.3f} ms"
SNAPSHOT_ROWS = [
    ("RSS before BGSAVE", "rss_bytes", "size", True),
    ("BGSAVE reply time (includes the fork)", "bgsave_reply_ms", "{:.2f} ms", True),
    ("INFO stats latest_fork_usec", "latest_fork_usec", "{:,} µs", False),
    ("BGSAVE -> rdb_bgsave_in_progress:0", "bgsave_s", "{:.2f} s", True),
    ("snapshot file (dump.rdb / snapshot-*.tgx)", "snapshot_bytes", "size", True),
    ("data dir after BGSAVE (all files)", "disk_bytes", "size", True),
    ("probe round trips during BGSAVE", "probe.round_trips", "{:,}", False),
    ("probe p50", "probe.p50_ms", _MS, True),
    ("probe p99", "probe.p99_ms", _MS, True),
    ("probe p99.9", "probe.p999_ms", _MS, True),
    ("probe max", "probe.max_ms", _MS, True),
    (f"probe max, first {FORK_WINDOW_MS} ms (fork)", "probe_fork.max_ms", _MS, True),
    (f"probe max, last {FORK_WINDOW_MS} ms (child reaped)", "probe_end.max_ms", _MS, True),
    ("probe idle p99 (1 s before)", "probe_idle.p99_ms", _MS, True),
    ("probe idle max (1 s before)", "probe_idle.max_ms", _MS, True),
    ("kill -9, restart from it -> DBSIZE = N+1", "restart.ready_s", "{:.2f} s", True),
    ("kill -9, restart from it: verified", "restart.verify.ok", "bool", False),
]


# -- output ----------------------------------------------------------------------------------


def _fmt(v: Any, fmt: str) -> str:
    if v is None:
        return "n/a"
    if fmt == "size":
        return _size(v)
    if fmt == "bool":
        return "ok" if v else "FAILED"
    return fmt.format(v)


def side_table(r: dict[str, Any], o: dict[str, Any], spec: list[tuple[str, str, str, bool]]) -> str:
    rows = []
    for label, path, fmt, ratio in spec:
        rv, ov = get_path(r, path), get_path(o, path)
        if rv is None and ov is None:
            continue
        rows.append([label, _fmt(rv, fmt), _fmt(ov, fmt), fmt_ratio(ov, rv) if ratio else ""])
    return format_table(["", "redis", "ours", "ours/redis"], rows)


def targets(results: dict[str, Any]) -> list[str]:
    lines = []
    if "throughput" in results:
        for (policy, pipeline), pair in median_runs(results["throughput"]["runs"]).items():
            x = pair["ours"]["rps"] / pair["redis"]["rps"]
            ok = "ok" if x >= TARGET_OPS_RATIO else "MISS"
            lines.append(
                f"  SET {policy:<8} P={pipeline:<3} ops/s ours/redis {x:.3f} "
                f"(>= {TARGET_OPS_RATIO:.2f})  {ok}"
            )
    if "restart" in results:
        r, o = results["restart"]["redis"], results["restart"]["ours"]
        for label, key in (("log-only", "log_only"), ("snapshot", "snapshot")):
            rv, ov = r[key]["ready_s"], o[key]["ready_s"]
            if rv and ov:
                x = ov / rv
                ok = "ok" if x <= TARGET_RESTART_RATIO else "MISS"
                lines.append(
                    f"  restart {label:<9} time ours/redis {x:.3f} "
                    f"(<= {TARGET_RESTART_RATIO:.1f})  {ok}"
                )
    if "snapshot" in results:
        p99 = results["snapshot"]["ours"]["probe"]["p99_ms"]
        if p99 is not None:
            ok = "ok" if p99 <= TARGET_BGSAVE_P99_MS else "MISS"
            lines.append(
                f"  ours probe p99 during BGSAVE {p99:.3f} ms "
                f"(<= {TARGET_BGSAVE_P99_MS:.1f} ms)  {ok}"
            )
    return lines


def integrity_failures(results: dict[str, Any]) -> list[str]:
    bad = []
    for label, c in results.get("throughput", {}).get("crash_checks", {}).items():
        if not c["ok"]:
            bad.append(f"throughput {label}: kill -9 + restart lost/changed keys: {c}")
    for r in results.get("throughput", {}).get("runs", []):
        if r.get("error_replies") or r.get("aof_last_write_status") not in ("ok", None):
            bad.append(
                f"throughput {r['server']}/{r['policy']} P={r['pipeline']}: "
                f"{r['error_replies']} error replies, write status {r['aof_last_write_status']}"
            )
    for phase, paths in (
        ("restart", ("log_only.verify", "snapshot.verify")),
        ("snapshot", ("restart.verify",)),
    ):
        for name, res in results.get(phase, {}).items():
            for path in paths:
                v = get_path(res, path)
                if v is not None and not v["ok"]:
                    bad.append(f"{phase} {name} {path}: {'; '.join(v['problems'])}")
    return bad


# -- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Persistence benchmark, TokenginX vs redis-server: SET throughput with "
        "fsync everysec/always, restart time from the log and from a snapshot, client "
        "latency during BGSAVE."
    )
    p.add_argument("--phases", default=",".join(PHASES), help="comma-separated, of %(default)s")
    p.add_argument("--json", metavar="FILE", help="also write every result here")
    g = p.add_argument_group("throughput")
    g.add_argument("--requests", "-n", type=int, default=200_000, help="default %(default)s")
    g.add_argument(
        "--pipelines", "-P", type=parse_pipelines, default=[1, 16], help="comma-separated (1,16)"
    )
    g.add_argument("--clients", "-c", type=int, default=50, help="default %(default)s")
    g.add_argument("--keyspace", "-r", type=int, default=100_000, help="default %(default)s")
    g.add_argument("--data-size", "-d", type=int, default=200, help="default %(default)s")
    g.add_argument(
        "--policies",
        default=",".join(POLICIES),
        help="fsync policies to compare, of everysec,always,no (default %(default)s)",
    )
    g.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat each pipeline depth, alternating which server goes first; tables "
        "show the median (default %(default)s)",
    )
    g.add_argument("--redis-benchmark", default="redis-benchmark", metavar="PATH")
    g.add_argument("--run-timeout", type=float, default=900.0, metavar="SECONDS")
    g = p.add_argument_group("restart and snapshot")
    g.add_argument("--keys", type=int, default=1_000_000, help="N (default %(default)s)")
    g.add_argument("--value-size", type=int, default=200, help="default %(default)s")
    g.add_argument("--batch", type=int, default=10_000, help="commands per pipeline")
    g.add_argument(
        "--restart-timeout", type=float, default=600.0, metavar="SECONDS", help="per restart"
    )
    g.add_argument("--bgsave-timeout", type=float, default=600.0, metavar="SECONDS")
    g.add_argument("--poll-ms", type=int, default=20, help="INFO poll interval during BGSAVE")
    g.add_argument(
        "--no-verify-bgsave",
        dest="verify_bgsave",
        action="store_false",
        help="skip the kill -9 + restart + verify after BGSAVE",
    )
    g = p.add_argument_group("servers ({fsync} = the policy under test)")
    g.add_argument("--redis-cmd", default=REDIS_CMD, metavar="TEMPLATE")
    g.add_argument("--ours-cmd", default=OURS_CMD, metavar="TEMPLATE")
    g.add_argument("--redis-restart-cmd", default=REDIS_RESTART_CMD, metavar="TEMPLATE")
    g.add_argument("--ours-restart-cmd", default=OURS_RESTART_CMD, metavar="TEMPLATE")
    g.add_argument("--startup-timeout", type=float, default=30.0, metavar="SECONDS")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    if not phases or any(x not in PHASES for x in phases):
        print(f"--phases: choose from {','.join(PHASES)}", file=sys.stderr)
        return 2
    args.policies = [x.strip() for x in args.policies.split(",") if x.strip()]
    if not args.policies or any(x not in ("everysec", "always", "no") for x in args.policies):
        print("--policies: choose from everysec,always,no", file=sys.stderr)
        return 2
    if min(args.keys, args.batch, args.requests, args.clients, args.poll_ms, args.rounds) < 1 or (
        args.value_size < 10
    ):
        print("--keys, --batch, --requests, --clients, --poll-ms, --rounds must be >= 1, "
              "--value-size >= 10", file=sys.stderr)  # fmt: skip
        return 2
    if "throughput" in phases:
        bench = shutil.which(args.redis_benchmark)
        if bench is None:
            print(f"cannot find {args.redis_benchmark!r} (install redis-tools)", file=sys.stderr)
            return 2
        args.redis_benchmark = bench
    exit_on_sigterm()

    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t_start = time.monotonic()
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    runners = {"throughput": throughput_phase, "restart": restart_phase, "snapshot": snapshot_phase}
    try:
        for phase in phases:
            results[phase] = runners[phase](args)
    except (ServerError, BenchmarkError, ProbeError, ThroughputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - t_start

    cpus = f"{os.cpu_count()} CPUs"
    if "throughput" in results:
        print(
            f"\nthroughput: redis-benchmark -t set -n {args.requests} -r {args.keyspace} "
            f"-d {args.data_size} -c {args.clients}; redis --appendonly yes --appendfsync X, "
            f"ours --fsync X; both running side by side; {cpus} shared by servers and client"
            + (f"; median of {args.rounds} rounds" if args.rounds > 1 else "")
        )
        print(throughput_table(results["throughput"]))
    if "restart" in results:
        r, o = results["restart"]["redis"], results["restart"]["ours"]
        print(
            f"\nrestart: {args.keys:,} keys x {args.value_size} bytes, half with a "
            f"{TTL_S} s TTL; kill -9, then time from process start (polled every 5 ms); "
            f"snapshot = redis {r['snapshot_command']} (RDB base), ours {o['snapshot_command']}"
        )
        print(side_table(r, o, RESTART_ROWS))
        for name, res in (("redis", r), ("ours", o)):
            print(f"{name} files, log-only: {_files_line(res['log_only']['files'])}")
            print(f"{name} files, snapshot: {_files_line(res['snapshot']['files'])}")
    if "snapshot" in results:
        r, o = results["snapshot"]["redis"], results["snapshot"]["ours"]
        print(
            f"\nlatency during BGSAVE: {args.keys:,} keys x {args.value_size} bytes; probe = "
            f"SET/GET back to back on its own connection; window = BGSAVE sent -> INFO "
            f"rdb_bgsave_in_progress:0 (polled every {args.poll_ms} ms); {cpus}"
        )
        print(side_table(r, o, SNAPSHOT_ROWS))
    lines = targets(results)
    if lines:
        print("\ntargets:")
        print("\n".join(lines))
    bad = integrity_failures(results)
    print("\nintegrity: " + ("all checks passed" if not bad else "FAILURES"))
    for line in bad:
        print(f"  {line}")
    load_after = os.getloadavg()
    print(
        f"\ntotal run time {elapsed:.0f} s; load average (1 min) {load_before[0]:.2f} at the "
        f"start, {load_after[0]:.2f} at the end"
    )

    if args.json:
        doc = {
            "benchmark": "persistence_bench",
            "started": started_at,
            "elapsed_s": elapsed,
            "config": {k: getattr(args, k) for k in CONFIG_KEYS},
            "environment": environment(loadavg_start=load_before, loadavg_end=load_after),
            "results": results,
            "integrity_failures": bad,
        }
        doc["config"]["phases"] = phases
        write_json(args.json, doc)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
