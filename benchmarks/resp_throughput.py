#!/usr/bin/env python3
"""RESP throughput, latency and server CPU per op: TokenginX vs redis-server.

Starts a fresh ``redis-server`` and a fresh TokenginX server, then drives both in the
same run with ``redis-benchmark`` (one invocation per test, pipeline depth and round,
alternating which server goes first in each round) and reports ops/s, p50/p99 latency
and server CPU microseconds per operation (utime+stime from /proc/<pid>/stat, read
just before and after each redis-benchmark invocation), plus ours/redis ratios.

    python benchmarks/resp_throughput.py                      # defaults: n=200000, P=1,16
    python benchmarks/resp_throughput.py --rounds 3 --json results.json

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

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

LATENCIES = (
    "avg_latency_ms",
    "min_latency_ms",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "max_latency_ms",
)
# Targets for ours vs redis (see README.md): ops/s ratio by pipeline depth, p99 by depth.
TARGET_OPS_RATIO = {1: 0.9, 16: 0.8}
TARGET_P99_MS = {1: 1.0}


class BenchmarkError(RuntimeError):
    pass


def parse_csv(text: str) -> list[dict[str, Any]]:
    """Rows of ``redis-benchmark --csv`` output: {"test": "SET", "rps": ..., "p50_latency_ms": ...}."""
    rows: list[dict[str, Any]] = []
    header: list[str] | None = None
    for rec in csv.reader(io.StringIO(text)):
        if not rec:
            continue
        if rec[0] == "test":
            header = rec
            continue
        if header is None or len(rec) != len(header):
            continue  # not part of the CSV table (warnings and the like)
        try:
            values = {k: float(v) for k, v in zip(header[1:], rec[1:])}
        except ValueError:
            continue
        rows.append({"test": rec[0], **values})
    return rows


def benchmark_argv(args: argparse.Namespace, port: int, test: str, pipeline: int) -> list[str]:
    return [
        args.redis_benchmark,
        "-h", "127.0.0.1",
        "-p", str(port),
        "-t", test,
        "-n", str(args.requests),
        "-r", str(args.keyspace),
        "-d", str(args.data_size),
        "-c", str(args.clients),
        "-P", str(pipeline),
        "--csv",
    ]  # fmt: skip


def run_one(
    args: argparse.Namespace, server: Server, test: str, pipeline: int, rnd: int
) -> list[dict[str, Any]]:
    """One redis-benchmark invocation against ``server``; one record per CSV row."""
    argv = benchmark_argv(args, server.port, test, pipeline)
    server.check_alive()
    cpu_before = server.cpu_seconds()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=args.run_timeout)
    except subprocess.TimeoutExpired as e:
        raise BenchmarkError(
            f"{shlex.join(argv)} against {server.name} timed out after {args.run_timeout:g}s"
        ) from e
    wall = time.perf_counter() - t0
    cpu = server.cpu_seconds() - cpu_before
    server.check_alive()
    rows = parse_csv(proc.stdout)
    if proc.returncode != 0 or not rows:
        raise BenchmarkError(
            f"{shlex.join(argv)} against {server.name} failed (exit code {proc.returncode})\n"
            f"--- stdout ---\n{proc.stdout.strip()}\n--- stderr ---\n{proc.stderr.strip()}"
        )
    # -n is per test; a -t entry may expand to several tests (e.g. lrange), so CPU is
    # spread over every request the invocation sent.
    ops = args.requests * len(rows)
    return [
        {
            "server": server.name,
            "test": row["test"],
            "pipeline": pipeline,
            "round": rnd,
            "requests": args.requests,
            **{k: v for k, v in row.items() if k != "test"},
            "cpu_s": cpu,
            "cpu_us_per_op": cpu * 1e6 / ops,
            "wall_s": wall,
        }
        for row in rows
    ]


def summarize(runs: Sequence[dict[str, Any]], how: str) -> list[dict[str, Any]]:
    """Per (test, pipeline, server): median over rounds, or best (max rps, min the rest)."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["test"], r["pipeline"], r["server"]), []).append(r)
    out = []
    for (test, pipeline, server), rs in groups.items():

        def agg(key: str, best: Any, rs: list[dict[str, Any]] = rs) -> float:
            values = [r[key] for r in rs]
            return statistics.median(values) if how == "median" else best(values)

        entry = {"test": test, "pipeline": pipeline, "server": server, "rounds": len(rs)}
        entry["rps"] = agg("rps", max)
        for key in (*LATENCIES, "cpu_us_per_op"):
            entry[key] = agg(key, min)
        out.append(entry)
    return out


def _ratio(ours: float, redis: float) -> float | None:
    return ours / redis if redis > 0 else None


def _fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}x"


def compare(summary: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pair redis and ours per (test, pipeline), in first-seen order."""
    by_key: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for s in summary:
        by_key.setdefault((s["test"], s["pipeline"]), {})[s["server"]] = s
    rows = []
    for (test, pipeline), pair in by_key.items():
        if "redis" not in pair or "ours" not in pair:
            continue
        r, o = pair["redis"], pair["ours"]
        rows.append({
            "test": test,
            "pipeline": pipeline,
            "redis": r,
            "ours": o,
            "ops_ratio": _ratio(o["rps"], r["rps"]),
            "cpu_ratio": _ratio(o["cpu_us_per_op"], r["cpu_us_per_op"]),
        })  # fmt: skip
    return rows


def render_table(pairs: Sequence[dict[str, Any]]) -> str:
    headers = [
        "test", "P", "redis ops/s", "ours ops/s", "ops ratio",
        "p50 redis", "p50 ours", "p99 redis", "p99 ours",
        "cpu redis", "cpu ours", "cpu ratio",
    ]  # fmt: skip
    rows = []
    for p in pairs:
        r, o = p["redis"], p["ours"]
        rows.append([
            p["test"], str(p["pipeline"]),
            f"{r['rps']:,.0f}", f"{o['rps']:,.0f}", _fmt_ratio(p["ops_ratio"]),
            f"{r['p50_latency_ms']:.3f}", f"{o['p50_latency_ms']:.3f}",
            f"{r['p99_latency_ms']:.3f}", f"{o['p99_latency_ms']:.3f}",
            f"{r['cpu_us_per_op']:.2f}", f"{o['cpu_us_per_op']:.2f}", _fmt_ratio(p["cpu_ratio"]),
        ])  # fmt: skip
    return format_table(headers, rows) + (
        "\n(ratio = ours/redis; latencies in ms; cpu = server CPU µs per request)"
    )


def check_targets(pairs: Sequence[dict[str, Any]]) -> list[str]:
    lines = []
    for p in pairs:
        label = f"{p['test']} P={p['pipeline']}"
        want = TARGET_OPS_RATIO.get(p["pipeline"])
        if want is not None and p["ops_ratio"] is not None:
            ok = "ok" if p["ops_ratio"] >= want else "MISS"
            lines.append(
                f"  {label:<12} ops/s ours/redis {p['ops_ratio']:.2f} (>= {want:.2f})  {ok}"
            )
        max_p99 = TARGET_P99_MS.get(p["pipeline"])
        if max_p99 is not None:
            p99 = p["ours"]["p99_latency_ms"]
            ok = "ok" if p99 <= max_p99 else "MISS"
            lines.append(f"  {label:<12} ours p99 {p99:.3f} ms (<= {max_p99:.2f} ms)  {ok}")
    return lines


def _versions(server: Server) -> dict[str, Any]:
    info = server.info("server") or {}
    return {k: v for k, v in info.items() if "version" in k}


def parse_pipelines(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {text!r}") from e
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"pipeline depths must be >= 1: {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Compare TokenginX and redis-server with redis-benchmark "
        "(ops/s, p50/p99 latency, server CPU per op)."
    )
    p.add_argument(
        "--requests",
        "-n",
        type=int,
        default=200_000,
        help="requests per test and run (redis-benchmark -n; default %(default)s)",
    )
    p.add_argument(
        "--pipelines",
        "-P",
        type=parse_pipelines,
        default=[1, 16],
        help="comma-separated pipeline depths (redis-benchmark -P; default 1,16)",
    )
    p.add_argument(
        "--clients",
        "-c",
        type=int,
        default=50,
        help="parallel connections (redis-benchmark -c; default %(default)s)",
    )
    p.add_argument(
        "--keyspace",
        "-r",
        type=int,
        default=100_000,
        help="random keys in the keyspace (redis-benchmark -r; default %(default)s)",
    )
    p.add_argument(
        "--data-size",
        "-d",
        type=int,
        default=200,
        help="SET value size in bytes (redis-benchmark -d; default %(default)s)",
    )
    p.add_argument(
        "--tests",
        "-t",
        default="set,get",
        help="comma-separated redis-benchmark tests, run in this order (default %(default)s)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every configuration N times, alternating which server goes "
        "first; report median and best (default %(default)s)",
    )
    p.add_argument("--json", metavar="FILE", help="also write all runs and summaries here")
    p.add_argument(
        "--redis-benchmark",
        default="redis-benchmark",
        metavar="PATH",
        help="redis-benchmark binary (default %(default)s)",
    )
    p.add_argument(
        "--run-timeout",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="give up on one redis-benchmark invocation after this long",
    )
    add_server_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rounds < 1 or args.requests < 1 or args.clients < 1:
        print("--rounds, --requests and --clients must be >= 1", file=sys.stderr)
        return 2
    bench = shutil.which(args.redis_benchmark)
    if bench is None:
        print(f"cannot find {args.redis_benchmark!r} (install redis-tools)", file=sys.stderr)
        return 2
    args.redis_benchmark = bench
    tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    exit_on_sigterm()

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    runs: list[dict[str, Any]] = []
    try:
        with running(server_specs(args), args.startup_timeout) as servers:
            for s in servers:
                print(f"{s.name}: pid {s.pid} port {s.port}: {shlex.join(s.argv)}", file=sys.stderr)
            versions = {s.name: _versions(s) for s in servers}
            for pipeline in args.pipelines:
                for rnd in range(args.rounds):
                    order = servers if rnd % 2 == 0 else servers[::-1]
                    for test in tests:
                        for server in order:
                            for rec in run_one(args, server, test, pipeline, rnd):
                                runs.append(rec)
                                print(
                                    f"P={pipeline:<3} round {rnd + 1}/{args.rounds}  "
                                    f"{rec['test']:<6} {server.name:<6}"
                                    f"{rec['rps']:>13,.0f} ops/s  "
                                    f"p50 {rec['p50_latency_ms']:.3f} ms  "
                                    f"p99 {rec['p99_latency_ms']:.3f} ms  "
                                    f"cpu {rec['cpu_us_per_op']:.2f} µs/op",
                                    file=sys.stderr,
                                )
            commands = {s.name: s.argv for s in servers}
    except (ServerError, BenchmarkError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    median = compare(summarize(runs, "median"))
    best = compare(summarize(runs, "best"))
    print()
    print(
        f"redis-benchmark -n {args.requests} -r {args.keyspace} -d {args.data_size} "
        f"-c {args.clients}; {args.rounds} round(s); {os.cpu_count()} CPUs shared by "
        f"servers and client"
    )
    if args.rounds > 1:
        print(f"\nmedian of {args.rounds} rounds:")
    print(render_table(median))
    if args.rounds > 1:
        print(f"\nbest of {args.rounds} rounds (max ops/s, min latency and CPU):")
        print(render_table(best))
    targets = check_targets(median)
    if targets:
        print("\ntargets (median):")
        print("\n".join(targets))

    if args.json:
        doc = {
            "benchmark": "resp_throughput",
            "started": started,
            "config": {
                "requests": args.requests,
                "pipelines": args.pipelines,
                "clients": args.clients,
                "keyspace": args.keyspace,
                "data_size": args.data_size,
                "tests": tests,
                "rounds": args.rounds,
            },
            "environment": environment(
                loadavg=os.getloadavg(),
                redis_benchmark=args.redis_benchmark,
                server_commands=commands,
                server_versions=versions,
            ),
            "runs": runs,
            "median": median,
            "best": best,
        }
        write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
