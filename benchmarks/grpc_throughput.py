#!/usr/bin/env python3
"""gRPC throughput: unary ``Get`` against our server vs a bare ``grpc.aio`` ceiling.

In one run it starts TokenginX (and, for the ``apikey`` row, a second one with
``--set security.api_keys=KEY``), stores one session (``Set``, a ~200-byte value with
a TTL) and starts the *ceiling*: a separate process running a bare ``grpc.aio`` server
on uvloop with the same proto, the same server options, and a ``Get`` that returns a
constant ``GetResponse`` identical to ours (same value, ``found``, ``ttl_seconds``).
A load client — this script again, in its own process (grpc.aio on uvloop, one
channel, ``--concurrency`` calls in flight for ``--duration`` seconds, every latency
recorded) — then drives

    ours     Get(key)                      (no auth configured)
    ours     Get(key) + Bearer metadata    (API key configured)
    ceiling  Get(key)                      (once without and once with the same metadata)

alternating which side goes first in each round; medians over rounds of req/s,
p50/p99 latency, server CPU µs per call, and the ratio ours/ceiling (target >= 0.7x).
Servers and the client are pinned to different CPUs with ``taskset`` when available.

    python benchmarks/grpc_throughput.py                 # 3 rounds of 8 s per side and row
    python benchmarks/grpc_throughput.py --rounds 5 --json grpc.json

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
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
    OURS_CMD,
    Server,
    ServerError,
    environment,
    exit_on_sigterm,
    format_table,
    free_port,
    write_json,
)

TARGET_RATIO = 0.7
API_KEY = "bench-api-key-0123456789"
SESSION_KEY = "bench:session:0001"
SESSION_TTL = 3600
CEILING_CMD = (
    "{python} {script} --serve-ceiling --ceiling-port {grpc_port} --value-size {value_size}"
)
SERVER_OPTIONS = [  # the door's options (transport/grpc/door.py), for a like-for-like ceiling
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
]


class BenchmarkError(RuntimeError):
    pass


def session_value(size: int) -> bytes:
    """A realistic SSO session object as compact JSON of exactly ``size`` bytes (>= ~150)."""
    value: dict[str, Any] = {
        "user_id": "u-000123", "username": "alice@example.com", "roles": ["user", "admin"],
        "tenant": "acme", "ip": "203.0.113.7", "login_at": 1767225600, "pad": "",
    }  # fmt: skip
    base = len(json.dumps(value, separators=(",", ":")))
    value["pad"] = "x" * max(0, size - base)
    return json.dumps(value, separators=(",", ":")).encode()


def _stubs() -> tuple[Any, Any]:
    from tokenginx.transport.grpc import tokenginx_pb2, tokenginx_pb2_grpc

    return tokenginx_pb2, tokenginx_pb2_grpc


def _uvloop_run(coro: Any) -> Any:
    import uvloop

    return uvloop.run(coro)


# -- the ceiling server (this script with --serve-ceiling) --------------------------------------


def serve_ceiling(port: int, value_size: int) -> None:
    import grpc

    pb, pb_grpc = _stubs()
    response = pb.GetResponse(value=session_value(value_size), found=True, ttl_seconds=SESSION_TTL)

    class Constant(pb_grpc.TokenginXServiceServicer):
        async def Get(self, request: Any, context: Any) -> Any:  # noqa: N802
            return response

    async def main() -> None:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        pb_grpc.add_TokenginXServiceServicer_to_server(Constant(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    _uvloop_run(main())


# -- the load client (this script with --client) --------------------------------------------------


def run_client(
    port: int, key: str, token: str, concurrency: int, duration: float, value_len: int
) -> None:
    import grpc

    pb, pb_grpc = _stubs()
    metadata = (("authorization", f"Bearer {token}"),) if token else None

    async def main() -> dict[str, Any]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.TokenginXServiceStub(channel)
            request = pb.GetRequest(key=key)
            first = await stub.Get(request, metadata=metadata, timeout=10)
            if not first.found or len(first.value) != value_len:
                raise SystemExit(f"unexpected reply: found={first.found} len={len(first.value)}")
            latencies: list[int] = []
            errors = 0
            clock = time.perf_counter_ns
            end = clock() + int(duration * 1e9)

            async def worker() -> None:
                nonlocal errors
                get = stub.Get
                while True:
                    t0 = clock()
                    if t0 >= end:
                        return
                    try:
                        reply = await get(request, metadata=metadata)
                    except grpc.aio.AioRpcError:
                        errors += 1
                        continue
                    latencies.append(clock() - t0)
                    if not reply.found:
                        errors += 1

            started = clock()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = (clock() - started) / 1e9
        latencies.sort()
        n = len(latencies)

        def pct(p: float) -> float:
            return latencies[min(n - 1, int(p / 100 * n))] / 1e6 if n else 0.0

        return {
            "calls": n, "errors": errors, "duration_s": elapsed,
            "mean_ms": (sum(latencies) / n / 1e6) if n else 0.0,
            "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "p999_ms": pct(99.9),
            "max_ms": latencies[-1] / 1e6 if n else 0.0,
        }  # fmt: skip

    print("CLIENTJSON " + json.dumps(_uvloop_run(main())))


# -- servers --------------------------------------------------------------------------------------


class GrpcServer(Server):
    """A server process whose gRPC port is known up front (``{grpc_port}`` pre-filled),
    ready when ``HealthCheck`` answers HEALTHY (the ceiling, which has only ``Get``: when
    ``Get`` answers)."""

    def __init__(
        self, name: str, template: str, startup_timeout: float, ceiling: bool = False
    ) -> None:
        self.ceiling = ceiling
        self.grpc_port = free_port()
        super().__init__(
            name, template.replace("{grpc_port}", str(self.grpc_port)), startup_timeout
        )

    def wait_ready(self) -> None:
        import grpc

        pb, pb_grpc = _stubs()
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last = "no attempt yet"
        with grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}") as channel:
            stub = pb_grpc.TokenginXServiceStub(channel)
            while True:
                if self.proc.poll() is not None:
                    raise ServerError(self._death_message("exited before answering gRPC"))
                try:
                    if self.ceiling:
                        if stub.Get(pb.GetRequest(key=SESSION_KEY), timeout=0.5).found:
                            return
                        last = "Get: found=false"
                    else:
                        status = stub.HealthCheck(pb.HealthCheckRequest(), timeout=0.5).status
                        if status == pb.HealthCheckResponse.HEALTHY:
                            return
                        last = f"HealthCheck {pb.HealthCheckResponse.Status.Name(status)}"
                except grpc.RpcError as e:
                    last = f"{e.code().name}: {e.details()}"
                if time.monotonic() >= deadline:
                    msg = (
                        f"{self.name}: gRPC on port {self.grpc_port} not ready within "
                        f"{self.startup_timeout:g}s (last attempt: {last})"
                    )
                    raise ServerError(msg + "\n" + self.details())
                time.sleep(0.05)


def seed(server: GrpcServer, token: str, value: bytes) -> None:
    import grpc

    pb, pb_grpc = _stubs()
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.TokenginXServiceStub(channel)
        stub.Set(
            pb.SetRequest(key=SESSION_KEY, value=value, ttl_seconds=SESSION_TTL),
            metadata=metadata,
            timeout=10,
        )
        got = stub.Get(pb.GetRequest(key=SESSION_KEY), metadata=metadata, timeout=10)
    if not got.found or got.value != value:
        raise BenchmarkError(f"{server.name}: the seeded session did not read back")


def client_argv(args: argparse.Namespace, port: int, token: str, duration: float) -> list[str]:
    argv = [
        sys.executable, os.path.abspath(__file__), "--client", "--client-port", str(port),
        "--client-token", token, "--concurrency", str(args.concurrency),
        "--duration", f"{duration:g}", "--value-size", str(args.value_size),
    ]  # fmt: skip
    if args.client_cpus:
        argv = ["taskset", "-c", args.client_cpus, *argv]
    return argv


def run_load(
    args: argparse.Namespace, server: GrpcServer, token: str, duration: float
) -> dict[str, Any]:
    argv = client_argv(args, server.grpc_port, token, duration)
    server.check_alive()
    cpu_before = server.cpu_seconds()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    except subprocess.TimeoutExpired as e:
        raise BenchmarkError(f"{shlex.join(argv)} timed out") from e
    cpu = server.cpu_seconds() - cpu_before
    server.check_alive()
    stats = None
    for line in proc.stdout.splitlines():
        if line.startswith("CLIENTJSON "):
            stats = json.loads(line[len("CLIENTJSON ") :])
    if proc.returncode != 0 or stats is None:
        raise BenchmarkError(
            f"{shlex.join(argv)} failed (exit code {proc.returncode})\n"
            f"--- stdout ---\n{proc.stdout.strip()}\n--- stderr ---\n{proc.stderr.strip()}"
        )
    if stats["errors"]:
        raise BenchmarkError(f"{server.name}: {stats['errors']} calls failed\n{server.details()}")
    n, secs = stats["calls"], stats["duration_s"]
    return {
        **stats,
        "rps": n / secs if secs else 0.0,
        "cpu_s": cpu,
        "cpu_us_per_call": cpu * 1e6 / n if n else 0.0,
        "server_util": cpu / secs if secs else 0.0,
    }


# -- summary --------------------------------------------------------------------------------------


def summarize(runs: Sequence[dict[str, Any]], rows: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        entry: dict[str, Any] = {"row": row}
        for side in ("ours", "ceiling"):
            rs = [r for r in runs if r["row"] == row and r["side"] == side]
            entry[side] = {
                k: statistics.median(r[k] for r in rs)
                for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_call", "server_util")
            }
        per_round = []
        for rnd in sorted({r["round"] for r in runs}):
            pair = {r["side"]: r["rps"] for r in runs if r["row"] == row and r["round"] == rnd}
            if pair.get("ceiling"):
                per_round.append(pair["ours"] / pair["ceiling"])
        entry["ratio"] = entry["ours"]["rps"] / entry["ceiling"]["rps"]
        entry["p99_ratio"] = entry["ours"]["p99_ms"] / entry["ceiling"]["p99_ms"]
        # What the call rate ratio would be if each server had a whole CPU to itself.
        entry["cpu_ratio"] = entry["ceiling"]["cpu_us_per_call"] / entry["ours"]["cpu_us_per_call"]
        entry["ratio_per_round"] = per_round
        out.append(entry)
    return out


def render_table(summary: Sequence[dict[str, Any]]) -> str:
    headers = [
        "row", "ceiling calls/s", "ours calls/s", "ratio", "rounds min-max", "p50 ceil",
        "p50 ours", "p99 ceil", "p99 ours", "cpu ceil", "cpu ours", "cpu ratio", "util ceil",
        "util ours",
    ]  # fmt: skip
    rows = []
    for s in summary:
        c, o = s["ceiling"], s["ours"]
        pr = s["ratio_per_round"]
        rows.append([
            s["row"], f"{c['rps']:,.0f}", f"{o['rps']:,.0f}", f"{s['ratio']:.2f}x",
            f"{min(pr):.2f}-{max(pr):.2f}x" if pr else "",
            f"{c['p50_ms']:.2f}", f"{o['p50_ms']:.2f}", f"{c['p99_ms']:.2f}", f"{o['p99_ms']:.2f}",
            f"{c['cpu_us_per_call']:.0f}", f"{o['cpu_us_per_call']:.0f}", f"{s['cpu_ratio']:.2f}x",
            f"{c['server_util']:.0%}", f"{o['server_util']:.0%}",
        ])  # fmt: skip
    return format_table(headers, rows) + (
        "\n(median over rounds; ratio = ours/ceiling calls/s of the medians, 'rounds' = the"
        "\n per-round ratios; latencies in ms as seen by the client; cpu = server CPU µs per"
        "\n call; cpu ratio = ceiling/ours cpu, the calls/s ratio if each server had a CPU to"
        "\n itself; util = share of one CPU the server used)"
    )


def print_profile(path: str, top: int) -> None:
    print(f"\nprofile of {path} (top {top} by own time):")
    stats = pstats.Stats(path, stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)


# -- main -------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Unary gRPC Get against TokenginX vs a bare grpc.aio constant Get "
        "(calls/s, p50/p99, server CPU per call, ratio ours/ceiling)."
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds per row (default %(default)s)")
    p.add_argument(
        "--duration",
        "-d",
        type=float,
        default=8.0,
        help="seconds per load run (default %(default)s)",
    )
    p.add_argument(
        "--concurrency", "-c", type=int, default=32,
        help="calls in flight on the client's channel (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--warmup", type=float, default=2.0,
        help="seconds of unrecorded load per server and row first (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--value-size", type=int, default=200, help="session bytes (default %(default)s)"
    )
    p.add_argument(
        "--rows", default="noauth,apikey",
        help="noauth (no auth configured), apikey (API key + Bearer metadata) (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--server-cpus", default="1", help="taskset -c list for the servers (default %(default)s)"
    )
    p.add_argument(
        "--client-cpus", default="0", help="taskset -c list for the client (default %(default)s)"
    )
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument(
        "--profile", metavar="DIR",
        help="run our servers under cProfile, write DIR/ours-<row>.prof and print the top "
        "functions (for finding hot spots, not for figures)",
    )  # fmt: skip
    p.add_argument("--json", metavar="FILE", help="also write config, every run and the summary")
    p.add_argument("--startup-timeout", type=float, default=30.0, metavar="SECONDS")
    p.add_argument("--ours-cmd", default=OURS_CMD, help=argparse.SUPPRESS)
    # Hidden: this script as the ceiling server, and as the load client.
    p.add_argument("--serve-ceiling", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ceiling-port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--client-port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--client-token", default="", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve_ceiling:
        serve_ceiling(args.ceiling_port, args.value_size)
        return 0
    if args.client:
        run_client(
            args.client_port,
            SESSION_KEY,
            args.client_token,
            args.concurrency,
            args.duration,
            args.value_size,
        )
        return 0
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    if (
        args.rounds < 1 or args.duration <= 0 or args.concurrency < 1
        or not rows or any(r not in ("noauth", "apikey") for r in rows)
    ):  # fmt: skip
        print("--rounds, --duration, -c must be >= 1; --rows noauth,apikey", file=sys.stderr)
        return 2
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    if not pin:
        args.client_cpus = ""
        print("not pinning (taskset missing, --no-pin, or one CPU)", file=sys.stderr)
    prefix = f"taskset -c {args.server_cpus} " if pin else ""
    exit_on_sigterm()
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
        print("profiling: cProfile slows our server; ratios are not meaningful", file=sys.stderr)

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    value = session_value(args.value_size)
    runs: list[dict[str, Any]] = []
    servers: list[GrpcServer] = []
    profiles: list[str] = []
    try:
        ours: dict[str, GrpcServer] = {}
        for row in rows:
            cmd = args.ours_cmd
            if args.profile:
                prof = os.path.abspath(os.path.join(args.profile, f"ours-{row}.prof"))
                profiles.append(prof)
                cmd = cmd.replace(
                    "{python} -m tokenginx",
                    f"{{python}} -m cProfile -o {shlex.quote(prof)} -m tokenginx",
                )
            if row == "apikey":
                cmd += f" --set security.api_keys={API_KEY}"
            s = GrpcServer(f"ours-{row}", prefix + cmd, args.startup_timeout)
            servers.append(s)
            ours[row] = s
            s.start()
        ceiling_cmd = CEILING_CMD.replace("{script}", shlex.quote(os.path.abspath(__file__)))
        ceiling_cmd = ceiling_cmd.replace("{value_size}", str(args.value_size))
        ceiling = GrpcServer("ceiling", prefix + ceiling_cmd, args.startup_timeout, ceiling=True)
        servers.append(ceiling)
        ceiling.start()
        for s in servers:
            s.wait_ready()
        for row, s in ours.items():
            seed(s, API_KEY if row == "apikey" else "", value)
        for s in servers:
            print(
                f"{s.name}: pid {s.pid} grpc {s.grpc_port}: {shlex.join(s.argv)}", file=sys.stderr
            )

        targets = {
            row: ((ours[row], API_KEY if row == "apikey" else ""),
                  (ceiling, API_KEY if row == "apikey" else ""))
            for row in rows
        }  # fmt: skip
        if args.warmup > 0:
            for row in rows:
                for server, token in targets[row]:
                    run_load(args, server, token, args.warmup)
        for rnd in range(args.rounds):
            for row in rows:
                pair = targets[row] if rnd % 2 == 0 else targets[row][::-1]
                for server, token in pair:
                    rec = run_load(args, server, token, args.duration)
                    side = "ceiling" if server is ceiling else "ours"
                    runs.append({"row": row, "side": side, "round": rnd, **rec})
                    print(
                        f"round {rnd + 1}/{args.rounds}  {row:<7} {side:<8}"
                        f"{rec['rps']:>10,.0f} calls/s  p50 {rec['p50_ms']:.2f} ms  "
                        f"p99 {rec['p99_ms']:.2f} ms  cpu {rec['cpu_us_per_call']:.0f} µs/call  "
                        f"util {rec['server_util']:.0%}",
                        file=sys.stderr,
                    )
        commands = {s.name: s.argv for s in servers}
        example = shlex.join(client_argv(args, ours[rows[0]].grpc_port, "", args.duration))
    except (ServerError, BenchmarkError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        for s in reversed(servers):
            s.stop()

    summary = summarize(runs, rows)
    print()
    print(
        f"grpc.aio client, 1 channel, {args.concurrency} calls in flight, {args.duration:g}s per run; "
        f"{args.rounds} round(s); {os.cpu_count()} CPUs; "
        + (
            f"servers on CPU {args.server_cpus}, client on CPU {args.client_cpus}"
            if pin
            else "not pinned"
        )
    )
    print(f"e.g. {example}\n")
    print(render_table(summary))
    print("\ntarget (median calls/s):")
    for s in summary:
        verdict = "ok" if s["ratio"] >= TARGET_RATIO else "MISS"
        print(f"  {s['row']:<7} ours/ceiling {s['ratio']:.2f}x >= {TARGET_RATIO}x  {verdict}")
    for prof in profiles:
        if os.path.exists(prof):
            print_profile(prof, 25)
    if args.json:
        write_json(args.json, {
            "benchmark": "grpc_throughput",
            "started": started,
            "config": {k: v for k, v in vars(args).items() if k not in ("serve_ceiling", "client")},
            "environment": environment(load_before=load_before, load_after=os.getloadavg(), pinned=pin),
            "commands": commands,
            "runs": runs,
            "summary": summary,
        })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
