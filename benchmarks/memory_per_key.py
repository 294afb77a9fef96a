#!/usr/bin/env python3
"""Memory per key: TokenginX vs redis-server.

Starts a fresh ``redis-server`` and a fresh TokenginX server, reads each one's RSS
(VmRSS from /proc/<pid>/status) as a baseline, loads N keys ``key:{i}`` with V-byte
values through redis-py pipelines (SET, or SETEX with ``--ttl``), reads RSS again and
reports (rss_after - rss_before) / N for both plus the ours/redis ratio. ``INFO memory``
used_memory is shown for reference when the server reports it.

    python benchmarks/memory_per_key.py                     # 1,000,000 keys x 200 bytes
    python benchmarks/memory_per_key.py --both              # without and with a TTL
    python benchmarks/memory_per_key.py --keys 100000 --ttl 600

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from datetime import datetime, timezone
from typing import Any

import redis
from _servers import (
    Server,
    ServerError,
    add_server_args,
    environment,
    exit_on_sigterm,
    format_table,
    running,
    server_specs,
    write_json,
)

TARGET_RATIO = 1.3  # ours bytes/key <= 1.3 x redis bytes/key
DEFAULT_BOTH_TTL = 3600


def make_value(i: int, size: int, filler: bytes) -> bytes:
    """A ``size``-byte value that differs per key, so no server can share value objects."""
    return (b"%010d" % i + filler)[:size]


def load(server: Server, keys: int, value_size: int, ttl: int | None, batch: int) -> float:
    """SET (or SETEX) ``keys`` keys through pipelines of ``batch``; return seconds taken."""
    filler = b"v" * value_size
    t0 = time.perf_counter()
    with server.client() as c:
        for start in range(0, keys, batch):
            pipe = c.pipeline(transaction=False)
            for i in range(start, min(keys, start + batch)):
                key = b"key:%d" % i
                value = make_value(i, value_size, filler)
                if ttl is None:
                    pipe.set(key, value)
                else:
                    pipe.execute_command("SETEX", key, ttl, value)  # not the deprecated setex()
            pipe.execute()  # raises on the first error reply
    return time.perf_counter() - t0


def used_memory(server: Server) -> int | None:
    info = server.info("memory")
    if not info or "used_memory" not in info:
        return None
    return int(info["used_memory"])


def dbsize(server: Server) -> int | None:
    try:
        with server.client() as c:
            return int(c.dbsize())
    except redis.RedisError:
        return None


def measure(server: Server, args: argparse.Namespace, ttl: int | None) -> dict[str, Any]:
    server.check_alive()
    time.sleep(args.settle)
    rss_before, mem_before = server.rss_bytes(), used_memory(server)
    print(f"  loading {args.keys:,} keys into {server.name} ...", file=sys.stderr)
    try:
        load_s = load(server, args.keys, args.value_size, ttl, args.batch)
    except redis.RedisError as e:
        server.check_alive()  # a crash is reported with the server's output
        raise ServerError(f"{server.name}: loading keys failed: {e}\n{server.details()}") from e
    server.check_alive()
    time.sleep(args.settle)
    rss_after, mem_after = server.rss_bytes(), used_memory(server)
    n = dbsize(server)
    if n is not None and n != args.keys:
        print(f"  warning: {server.name} DBSIZE is {n:,}, expected {args.keys:,}", file=sys.stderr)
    result = {
        "server": server.name,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "rss_bytes_per_key": (rss_after - rss_before) / args.keys,
        "used_memory_before": mem_before,
        "used_memory_after": mem_after,
        "used_memory_bytes_per_key": (
            None
            if mem_before is None or mem_after is None
            else (mem_after - mem_before) / args.keys
        ),
        "dbsize": n,
        "load_s": load_s,
    }
    print(
        f"  {server.name}: {result['rss_bytes_per_key']:.1f} bytes/key (RSS), "
        f"loaded in {load_s:.1f}s ({args.keys / load_s:,.0f} keys/s)",
        file=sys.stderr,
    )
    return result


def _mib(b: int | None) -> str:
    return "n/a" if b is None else f"{b / 2**20:,.1f} MiB"


def _num(x: float | None, fmt: str = "{:,.1f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _ratio(ours: float | None, redis_: float | None) -> float | None:
    if ours is None or redis_ is None or redis_ <= 0:
        return None
    return ours / redis_


def _fmt_ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}x"


def case_label(args: argparse.Namespace, ttl: int | None) -> str:
    how = "no TTL (SET)" if ttl is None else f"TTL {ttl}s (SETEX)"
    return f"{args.keys:,} keys, {args.value_size}-byte values, {how}"


def render_case(r: dict[str, Any], o: dict[str, Any]) -> str:
    rss_ratio = _ratio(o["rss_bytes_per_key"], r["rss_bytes_per_key"])
    mem_ratio = _ratio(o["used_memory_bytes_per_key"], r["used_memory_bytes_per_key"])
    rows = [
        ["RSS before", _mib(r["rss_before"]), _mib(o["rss_before"]), ""],
        ["RSS after", _mib(r["rss_after"]), _mib(o["rss_after"]), ""],
        [
            "RSS bytes/key",
            _num(r["rss_bytes_per_key"]),
            _num(o["rss_bytes_per_key"]),
            _fmt_ratio(rss_ratio),
        ],
        ["used_memory before", _mib(r["used_memory_before"]), _mib(o["used_memory_before"]), ""],
        ["used_memory after", _mib(r["used_memory_after"]), _mib(o["used_memory_after"]), ""],
        [
            "used_memory bytes/key",
            _num(r["used_memory_bytes_per_key"]),
            _num(o["used_memory_bytes_per_key"]),
            _fmt_ratio(mem_ratio),
        ],
        ["DBSIZE", _num(r["dbsize"], "{:,}"), _num(o["dbsize"], "{:,}"), ""],
        ["load time", f"{r['load_s']:.1f} s", f"{o['load_s']:.1f} s", ""],
    ]
    return format_table(["", "redis", "ours", "ours/redis"], rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Compare memory per key of TokenginX and redis-server (RSS delta / keys)."
    )
    p.add_argument("--keys", type=int, default=1_000_000, help="keys to load (default %(default)s)")
    p.add_argument(
        "--value-size", type=int, default=200, help="value size in bytes (default %(default)s)"
    )
    p.add_argument(
        "--ttl",
        type=int,
        metavar="SECONDS",
        help="load with SETEX and this TTL instead of SET (keep it longer than the run)",
    )
    p.add_argument(
        "--both",
        action="store_true",
        help=f"run without TTL and with TTL (--ttl, default {DEFAULT_BOTH_TTL}s), "
        "each on fresh servers",
    )
    p.add_argument(
        "--batch", type=int, default=10_000, help="commands per pipeline (default %(default)s)"
    )
    p.add_argument(
        "--settle",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="pause before each RSS reading (default %(default)s)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the results here")
    add_server_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.keys < 1 or args.value_size < 0 or args.batch < 1:
        print("--keys and --batch must be >= 1, --value-size >= 0", file=sys.stderr)
        return 2
    if args.ttl is not None and args.ttl < 1:
        print("--ttl must be >= 1", file=sys.stderr)
        return 2
    cases = [None, args.ttl or DEFAULT_BOTH_TTL] if args.both else [args.ttl]
    exit_on_sigterm()

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results: list[dict[str, Any]] = []
    try:
        for ttl in cases:
            print(f"{case_label(args, ttl)}: starting fresh servers", file=sys.stderr)
            with running(server_specs(args), args.startup_timeout) as servers:
                for s in servers:
                    print(f"  {s.name}: pid {s.pid} port {s.port}: {shlex.join(s.argv)}",
                          file=sys.stderr)  # fmt: skip
                per_server = {s.name: measure(s, args, ttl) for s in servers}
                commands = {s.name: s.argv for s in servers}
            results.append({"ttl": ttl, "label": case_label(args, ttl), **per_server})
    except ServerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    summary_rows = []
    for res in results:
        r, o = res["redis"], res["ours"]
        ratio = _ratio(o["rss_bytes_per_key"], r["rss_bytes_per_key"])
        res["rss_ratio"] = ratio
        print()
        print(res["label"])
        print(render_case(r, o))
        verdict = "n/a" if ratio is None else ("ok" if ratio <= TARGET_RATIO else "MISS")
        summary_rows.append([
            "no TTL" if res["ttl"] is None else f"TTL {res['ttl']}s",
            _num(r["rss_bytes_per_key"]),
            _num(o["rss_bytes_per_key"]),
            _fmt_ratio(ratio) or "n/a",
            f"<= {TARGET_RATIO:.2f}x {verdict}",
        ])  # fmt: skip
    print()
    print("bytes per key (RSS delta / keys):")
    print(format_table(["case", "redis", "ours", "ours/redis", "target"], summary_rows))

    if args.json:
        doc = {
            "benchmark": "memory_per_key",
            "started": started,
            "config": {
                "keys": args.keys,
                "value_size": args.value_size,
                "batch": args.batch,
                "cases": cases,
            },
            "environment": environment(server_commands=commands),
            "results": results,
        }
        write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
