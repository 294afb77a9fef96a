#!/usr/bin/env python3
"""Expiry storm and SCAN stalls: TokenginX vs redis-server.

For each server in turn (redis first, then ours, each a fresh process, never both at
once) this script runs two phases:

expiry
    Load N keys ``key:{i}`` (64-byte values) with ``SET key value PXAT D`` where D is
    one absolute deadline shared by every key (now + estimated load time +
    ``--delay-ms``), so they all expire at once. A latency probe in its own process
    (PING and GET of a non-expiring key, back to back on one connection) and a thread
    polling DBSIZE every 50 ms start about a second before D. Reported: the time from
    D until DBSIZE no longer counts any of the N keys (reclaim time), the probe's
    p50/p99/p99.9/max round-trip time during [D, reclaim done], server CPU seconds in
    that window and ``INFO stats`` expired_keys.

scan
    Load N keys without a TTL and iterate ``SCAN cursor COUNT 1000`` from cursor 0 to
    the end while the probe runs; report the probe's latency during the iteration.

    python benchmarks/expiry_storm.py                    # 1,000,000 keys
    python benchmarks/expiry_storm.py --keys 200000 --json storm.json

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any

import redis
from _probe import Probe, ProbeError, bulk_reply, resp_command
from _servers import (
    Server,
    ServerError,
    add_server_args,
    delta,
    environment,
    exit_on_sigterm,
    fmt_num,
    fmt_ratio,
    format_table,
    get_path,
    write_json,
)
from _servers import running as running_servers

PROBE_KEY = b"probe:key"  # never expires; the probe GETs it
PRE_DEADLINE_S = 1.0  # start the probe and the poller this long before the deadline
FAR_FUTURE_MS = 3_600_000  # PXAT of the calibration batch (overwritten by the real load)
PHASES = ("expiry", "scan")


class BenchmarkError(RuntimeError):
    pass


def make_value(i: int, size: int, filler: bytes) -> bytes:
    """A ``size``-byte value that differs per key, so no server can share value objects."""
    return (b"%010d" % i + filler)[:size]


def make_probe(server: Server, value: bytes, timeout: float) -> Probe:
    """The latency probe (own process, so our GIL cannot delay its round trips): PING
    and GET PROBE_KEY in turn; even sample indexes are PINGs, odd ones GETs."""
    requests = [
        (resp_command(b"PING"), b"+PONG\r\n"),
        (resp_command(b"GET", PROBE_KEY), bulk_reply(value)),
    ]
    return Probe(server, requests, ["PING", "GET"], timeout)


# -- DBSIZE poller --------------------------------------------------------------------------


class DbsizePoller(threading.Thread):
    """Polls DBSIZE every ``interval`` s until it is <= ``target`` or ``give_up_ns``."""

    def __init__(self, server: Server, interval: float, target: int, give_up_ns: int) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.interval = interval
        self.target = target
        self.give_up_ns = give_up_ns
        self.samples: list[tuple[int, int]] = []  # (reply time ns, DBSIZE)
        self.done_ns: int | None = None
        self.error: BaseException | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            with self.server.client() as c:
                nxt = time.monotonic()
                while not self.halt.is_set():
                    n = int(c.dbsize())
                    t = time.monotonic_ns()
                    self.samples.append((t, n))
                    if n <= self.target:
                        self.done_ns = t
                        return
                    if t >= self.give_up_ns:
                        return
                    nxt += self.interval
                    time.sleep(max(0.0, nxt - time.monotonic()))
        except BaseException as e:  # noqa: BLE001 - re-raised by the main thread
            self.error = e


# -- loading --------------------------------------------------------------------------------


def load_batch(
    c: Any, start: int, stop: int, value_size: int, pxat: int | None, spread: int, n: int
) -> None:
    filler = b"v" * value_size
    pipe = c.pipeline(transaction=False)
    for i in range(start, stop):
        key, value = b"key:%d" % i, make_value(i, value_size, filler)
        if pxat is None:
            pipe.execute_command("SET", key, value)
        else:
            pipe.execute_command("SET", key, value, "PXAT", pxat + (i * spread) // n)
    pipe.execute()  # raises on the first error reply


def load(server: Server, args: argparse.Namespace, pxat: int | None, spread: int = 0) -> float:
    t0 = time.perf_counter()
    try:
        with server.client() as c:
            for start in range(0, args.keys, args.batch):
                stop = min(args.keys, start + args.batch)
                load_batch(c, start, stop, args.value_size, pxat, spread, args.keys)
    except redis.RedisError as e:
        server.check_alive()
        raise BenchmarkError(f"{server.name}: loading keys failed: {e}\n{server.details()}") from e
    return time.perf_counter() - t0


def stats(server: Server) -> dict[str, Any]:
    info = server.info("stats") or {}
    return {k: v for k, v in info.items() if "expire" in k}


def wall_to_mono_ns(wall_ms: int) -> int:
    return time.monotonic_ns() + (wall_ms * 1_000_000 - time.time_ns())


def sleep_until(mono_ns: int) -> None:
    delay = (mono_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


# -- phases ---------------------------------------------------------------------------------


def expiry_phase(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    n, batch = args.keys, args.batch
    probe_value = make_value(0, args.value_size, b"p" * args.value_size)
    with server.client() as c:
        c.set(PROBE_KEY, probe_value)
        # Calibration: time the first batch (with a far deadline; it is loaded again below)
        # to choose a deadline that falls after the whole load.
        t0 = time.perf_counter()
        far = int(time.time() * 1000) + FAR_FUTURE_MS
        load_batch(c, 0, min(n, batch), args.value_size, far, 0, n)
        first = time.perf_counter() - t0
    estimate_s = first * math.ceil(n / batch) * 1.5 + 1.0
    deadline_ms = int(time.time() * 1000 + estimate_s * 1000) + args.delay_ms
    deadline_ns = wall_to_mono_ns(deadline_ms)
    probe = make_probe(server, probe_value, args.reclaim_timeout + 60)
    try:
        print(
            f"  {server.name}: loading {n:,} keys, all expiring at PXAT {deadline_ms} "
            f"(in {(deadline_ns - time.monotonic_ns()) / 1e9:.1f} s) ...",
            file=sys.stderr,
        )
        load_s = load(server, args, deadline_ms, args.spread_ms)
        server.check_alive()
        slack_s = (deadline_ns - time.monotonic_ns()) / 1e9
        if slack_s <= 0.05:
            raise BenchmarkError(
                f"{server.name}: loading took {load_s:.1f} s and ended {-slack_s:.2f} s after "
                "the deadline; raise --delay-ms"
            )
        dbsize_loaded = dbsize(server)
        before = stats(server)
        sleep_until(deadline_ns - int(PRE_DEADLINE_S * 1e9))
        go_ns = time.monotonic_ns()
        probe.go()
        poller = DbsizePoller(
            server,
            args.poll_ms / 1000,
            1,  # the probe's key
            deadline_ns + int(args.reclaim_timeout * 1e9),
        )
        poller.start()
        sleep_until(deadline_ns)
        cpu0 = server.cpu_seconds()
        poller.join(args.reclaim_timeout + 30)
        cpu1 = server.cpu_seconds()
        end_ns = time.monotonic_ns()
        poller.halt.set()
        probe.stop(60)
        if poller.error is not None:
            server.check_alive()
            raise BenchmarkError(f"{server.name}: DBSIZE poll failed: {poller.error}")
        server.check_alive()
        after = stats(server)
    finally:
        probe.kill()
    done_ns = poller.done_ns
    window_end = done_ns if done_ns is not None else end_ns
    last = poller.samples[-1][1] if poller.samples else None
    result = {
        "server": server.name,
        "deadline_pxat_ms": deadline_ms,
        "load_s": load_s,
        "load_estimate_s": estimate_s,
        "slack_before_deadline_s": slack_s,
        "keys_loaded": None if dbsize_loaded is None else dbsize_loaded - 1,
        "reclaim_s": None if done_ns is None else (done_ns - deadline_ns) / 1e9,
        "keys_left": None if last is None else max(0, last - 1),
        "cpu_s": cpu1 - cpu0,
        "expired_keys": delta(before.get("expired_keys"), after.get("expired_keys")),
        "stats_before": before,
        "stats_after": after,
        "probe_idle": probe.window(
            max(go_ns, deadline_ns - int(PRE_DEADLINE_S * 1e9)),
            deadline_ns,
            deadline_ns,
            per_command_max=True,
        ),
        "probe": probe.window(deadline_ns, window_end, deadline_ns, per_command_max=True),
        "dbsize_samples": [
            [round((t - deadline_ns) / 1e6, 1), v] for t, v in poller.samples if t >= deadline_ns
        ],
    }
    if done_ns is None:
        print(
            f"  warning: {server.name} still had {result['keys_left']} keys "
            f"{args.reclaim_timeout:g} s after the deadline",
            file=sys.stderr,
        )
    p = result["probe"]
    print(
        f"  {server.name}: reclaim {fmt_num(result['reclaim_s'], '{:.3f} s')}, "
        f"probe max {fmt_num(p['max_ms'], '{:.2f} ms')} p99.9 {fmt_num(p['p999_ms'], '{:.2f} ms')} "
        f"({p['round_trips']:,} round trips), expired_keys {result['expired_keys']}",
        file=sys.stderr,
    )
    return result


def scan_phase(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    probe_value = make_value(0, args.value_size, b"p" * args.value_size)
    with server.client() as c:
        c.set(PROBE_KEY, probe_value)
    print(f"  {server.name}: loading {args.keys:,} keys (no TTL) ...", file=sys.stderr)
    load_s = load(server, args, None)
    server.check_alive()
    probe = make_probe(server, probe_value, 600)
    try:
        go_ns = time.monotonic_ns()
        probe.go()
        time.sleep(PRE_DEADLINE_S)
        calls = returned = 0
        try:
            with server.client() as c:
                start_ns = time.monotonic_ns()
                cursor = 0
                while True:
                    cursor, keys = c.scan(cursor=cursor, count=args.scan_count)
                    calls += 1
                    returned += len(keys)
                    if cursor == 0:
                        break
                end_ns = time.monotonic_ns()
        except redis.RedisError as e:
            server.check_alive()
            raise BenchmarkError(f"{server.name}: SCAN failed: {e}") from e
        probe.stop(60)
        server.check_alive()
    finally:
        probe.kill()
    result = {
        "server": server.name,
        "load_s": load_s,
        "scan_s": (end_ns - start_ns) / 1e9,
        "scan_calls": calls,
        "keys_returned": returned,
        "probe_idle": probe.window(go_ns, start_ns, start_ns, per_command_max=True),
        "probe": probe.window(start_ns, end_ns, start_ns, per_command_max=True),
    }
    p = result["probe"]
    print(
        f"  {server.name}: SCAN {calls:,} calls, {returned:,} keys in {result['scan_s']:.2f} s, "
        f"probe max {fmt_num(p['max_ms'], '{:.2f} ms')}",
        file=sys.stderr,
    )
    return result


def dbsize(server: Server) -> int | None:
    try:
        with server.client() as c:
            return int(c.dbsize())
    except redis.RedisError:
        return None


# -- output ---------------------------------------------------------------------------------


def _rows(
    r: dict[str, Any], o: dict[str, Any], spec: list[tuple[str, str, str, bool]]
) -> list[list[str]]:
    """spec: (label, dotted field, format, show ratio)."""
    rows = []
    for label, path, fmt, ratio in spec:
        rv, ov = get_path(r, path), get_path(o, path)
        rows.append([label, fmt_num(rv, fmt), fmt_num(ov, fmt), fmt_ratio(ov, rv) if ratio else ""])
    return rows


_MS = "{:.3f} ms"
EXPIRY_ROWS = [
    ("load time", "load_s", "{:.1f} s", True),
    ("keys loaded (DBSIZE before, less 1)", "keys_loaded", "{:,}", False),
    ("reclaim time (deadline -> DBSIZE 0)", "reclaim_s", "{:.3f} s", True),
    ("keys left at the end", "keys_left", "{:,}", False),
    ("INFO stats expired_keys", "expired_keys", "{:,}", False),
    ("server CPU during reclaim", "cpu_s", "{:.2f} s", True),
    ("probe round trips in window", "probe.round_trips", "{:,}", False),
    ("probe p50", "probe.p50_ms", _MS, True),
    ("probe p99", "probe.p99_ms", _MS, True),
    ("probe p99.9", "probe.p999_ms", _MS, True),
    ("probe max", "probe.max_ms", _MS, True),
    ("probe max, PING only", "probe.max_ping_ms", _MS, True),
    ("probe max, GET only", "probe.max_get_ms", _MS, True),
    ("probe idle p99 (1 s before deadline)", "probe_idle.p99_ms", _MS, True),
    ("probe idle max (1 s before deadline)", "probe_idle.max_ms", _MS, True),
]
SCAN_ROWS = [
    ("load time", "load_s", "{:.1f} s", True),
    ("SCAN full iteration", "scan_s", "{:.2f} s", True),
    ("SCAN calls", "scan_calls", "{:,}", False),
    ("keys returned", "keys_returned", "{:,}", False),
    ("probe round trips during SCAN", "probe.round_trips", "{:,}", False),
    ("probe p50", "probe.p50_ms", _MS, True),
    ("probe p99", "probe.p99_ms", _MS, True),
    ("probe p99.9", "probe.p999_ms", _MS, True),
    ("probe max", "probe.max_ms", _MS, True),
    ("probe idle max (1 s before SCAN)", "probe_idle.max_ms", _MS, True),
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Reclaim time and client latency when N keys expire at once, and client "
        "latency during a full SCAN: TokenginX vs redis-server."
    )
    p.add_argument("--keys", type=int, default=1_000_000, help="N (default %(default)s)")
    p.add_argument("--value-size", type=int, default=64, help="value bytes (default %(default)s)")
    p.add_argument(
        "--delay-ms",
        type=int,
        default=3000,
        help="deadline = now + estimated load time + this (default %(default)s)",
    )
    p.add_argument(
        "--spread-ms",
        type=int,
        default=0,
        help="spread the deadlines evenly over this many ms after the first (default "
        "%(default)s: one common deadline)",
    )
    p.add_argument(
        "--batch", type=int, default=10_000, help="commands per pipeline (default %(default)s)"
    )
    p.add_argument(
        "--poll-ms", type=int, default=50, help="DBSIZE poll interval (default %(default)s)"
    )
    p.add_argument(
        "--reclaim-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="give up waiting for DBSIZE 0 after this long (default %(default)s)",
    )
    p.add_argument("--scan-count", type=int, default=1000, help="SCAN COUNT (default %(default)s)")
    p.add_argument(
        "--phases",
        default=",".join(PHASES),
        help="comma-separated phases to run, of %(default)s",
    )
    p.add_argument("--json", metavar="FILE", help="also write the results here")
    add_server_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    if not phases or any(x not in PHASES for x in phases):
        print(f"--phases: choose from {','.join(PHASES)}", file=sys.stderr)
        return 2
    if min(args.keys, args.batch, args.poll_ms, args.scan_count) < 1 or args.value_size < 10:
        print("--keys, --batch, --poll-ms, --scan-count must be >= 1, --value-size >= 10",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.delay_ms < 0 or args.spread_ms < 0 or args.reclaim_timeout <= 0:
        print("--delay-ms, --spread-ms must be >= 0, --reclaim-timeout > 0", file=sys.stderr)
        return 2
    exit_on_sigterm()

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    specs = [("redis", args.redis_cmd), ("ours", args.ours_cmd)]
    results: dict[str, dict[str, Any]] = {}
    commands: dict[str, list[str]] = {}
    runners = {"expiry": expiry_phase, "scan": scan_phase}
    try:
        for phase in phases:
            print(f"{phase} phase, {args.keys:,} keys:", file=sys.stderr)
            results[phase] = {}
            for spec in specs:  # one server at a time: never 2 x N keys in memory
                with running_servers([spec], args.startup_timeout) as (server,):
                    print(f"  {server.name}: pid {server.pid} port {server.port}: "
                          f"{shlex.join(server.argv)}", file=sys.stderr)  # fmt: skip
                    commands[server.name] = server.argv
                    results[phase][server.name] = runners[phase](server, args)
    except (ServerError, BenchmarkError, ProbeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    header = ["", "redis", "ours", "ours/redis"]
    cpus = f"{os.cpu_count()} CPUs shared by the server, the probe and this script"
    if "expiry" in results:
        r, o = results["expiry"]["redis"], results["expiry"]["ours"]
        how = "one PXAT deadline" if not args.spread_ms else f"PXAT over {args.spread_ms} ms"
        print(f"\nexpiry storm: {args.keys:,} keys x {args.value_size} bytes, {how}; "
              f"probe = PING/GET back to back, window [deadline, DBSIZE 0]; {cpus}")  # fmt: skip
        print(format_table(header, _rows(r, o, EXPIRY_ROWS)))
    if "scan" in results:
        r, o = results["scan"]["redis"], results["scan"]["ours"]
        print(f"\nSCAN 0 ... COUNT {args.scan_count} over {args.keys:,} keys (no TTL); "
              f"probe window = the whole iteration; {cpus}")  # fmt: skip
        print(format_table(header, _rows(r, o, SCAN_ROWS)))

    if args.json:
        doc = {
            "benchmark": "expiry_storm",
            "started": started,
            "config": {
                k: getattr(args, k)
                for k in (
                    "keys",
                    "value_size",
                    "delay_ms",
                    "spread_ms",
                    "batch",
                    "poll_ms",
                    "reclaim_timeout",
                    "scan_count",
                )
            },  # fmt: skip
            "phases": phases,
            "environment": environment(server_commands=commands),
            "results": results,
        }
        write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
