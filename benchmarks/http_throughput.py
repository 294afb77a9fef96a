#!/usr/bin/env python3
"""HTTP throughput: GET of a session over REST against the bare Starlette/uvicorn ceiling.

In one run it starts two TokenginX servers (one without authentication, one with an
API key: ``--set security.api_keys=KEY``), seeds the same session on each
(``POST /api/v1/sessions``, a ~200-byte JSON value with a TTL), and starts the
*ceiling*: a separate process running uvicorn (httptools, uvloop, one worker, access
log and lifespan off) with a Starlette app whose one GET route returns a constant
``JSONResponse`` exactly as large as our session body. ``wrk`` then drives

    ours     GET /api/v1/sessions/<key>               (no auth)
    ours     GET /api/v1/sessions/<key> + Bearer KEY  (API key configured)
    ceiling  GET /constant  (once without and once with the same header)

with the same threads, connections and duration, alternating which side goes first in
each round; medians over rounds, req/s, p50/p99 latency, server CPU µs per request and
the ratio ours/ceiling (target >= 0.7x). Servers and wrk are pinned to different CPUs
with ``taskset`` when it is available.

    python benchmarks/http_throughput.py                  # 3 rounds of 10 s per side and row
    python benchmarks/http_throughput.py --rounds 5 --json http.json

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _servers import (
    HOST,
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
CEILING_PATH = "/constant"
CEILING_CMD = (
    "{python} {script} --serve-ceiling --ceiling-port {http_port} --ceiling-body {body_file}"
)

# wrk's done() hook prints its own statistics as one JSON line (latencies in µs), so
# nothing depends on the human-readable summary format.
WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,\"status_errors\":%d," ..
    "\"connect_errors\":%d,\"read_errors\":%d,\"write_errors\":%d,\"timeout_errors\":%d," ..
    "\"mean_us\":%.2f,\"max_us\":%.2f,\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f," ..
    "\"p999_us\":%.2f}\n",
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read,
    e.write, e.timeout, latency.mean, latency.max, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
"""


class BenchmarkError(RuntimeError):
    pass


# -- the ceiling server (runs in its own process: this script with --serve-ceiling) ----------


def serve_ceiling(port: int, body_file: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    content = json.loads(Path(body_file).read_bytes())

    async def constant(request: Request) -> JSONResponse:
        return JSONResponse(content)

    app = Starlette(routes=[Route(CEILING_PATH, constant, methods=["GET"])])
    uvicorn.run(
        app,
        host=HOST,
        port=port,
        http="httptools",
        loop="uvloop",
        lifespan="off",
        access_log=False,
        workers=1,
        log_level="warning",
        server_header=False,  # ours sends none either
    )


# -- servers ----------------------------------------------------------------------------------


class HttpServer(Server):
    """A server process that is ready when ``GET ready_path`` answers 200."""

    def __init__(
        self,
        name: str,
        template: str,
        ready_path: str,
        startup_timeout: float,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.http_port = free_port()
        super().__init__(name, template.replace("{http_port}", str(self.http_port)), startup_timeout)
        self.ready_path = ready_path
        self.headers = headers or {}

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.http_port}{path}"

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {**self.headers}
        if body is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url(path), data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last = "no attempt yet"
        while True:
            if self.proc.poll() is not None:
                raise ServerError(self._death_message("exited before answering HTTP"))
            try:
                status, _ = self.request("GET", self.ready_path)
            except OSError as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if status == 200:
                    return
                last = f"status {status}"
            if time.monotonic() >= deadline:
                msg = (
                    f"{self.name} did not answer GET {self.ready_path} on port {self.http_port} "
                    f"within {self.startup_timeout:g}s (last attempt: {last})"
                )
                raise ServerError(msg + "\n" + self.details())
            time.sleep(0.05)


def session_value(size: int) -> dict[str, Any]:
    """A realistic SSO session object whose compact JSON is exactly ``size`` bytes (if >= ~150)."""
    value: dict[str, Any] = {
        "user_id": "u-000123",
        "username": "alice@example.com",
        "roles": ["user", "admin"],
        "tenant": "acme",
        "ip": "203.0.113.7",
        "login_at": 1767225600,
        "pad": "",
    }
    base = len(json.dumps(value, separators=(",", ":")))
    value["pad"] = "x" * max(0, size - base)
    return value


def seed(server: HttpServer, value_size: int) -> bytes:
    """Store the session and return the body of a GET of it (the bytes wrk will read)."""
    body = json.dumps({"key": SESSION_KEY, "value": session_value(value_size), "ttl": 3600})
    status, reply = server.request("POST", "/api/v1/sessions", body.encode())
    if status != 201:
        raise BenchmarkError(f"{server.name}: POST /api/v1/sessions answered {status}: {reply!r}")
    status, reply = server.request("GET", "/api/v1/sessions/" + SESSION_KEY)
    if status != 200:
        raise BenchmarkError(f"{server.name}: GET of the seeded session answered {status}: {reply!r}")
    return reply


# -- wrk ----------------------------------------------------------------------------------------


def find_wrk(path: str) -> str:
    found = shutil.which(path)
    if found:
        return found
    if path == "wrk" and os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        proc = subprocess.run(
            ["apt-get", "install", "-y", "wrk"], capture_output=True, text=True, check=False
        )
        found = shutil.which(path)
        if found:
            return found
        raise BenchmarkError(f"apt-get install -y wrk failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    raise BenchmarkError(
        f"cannot find {path!r}: install it (Debian: apt-get install wrk) or pass --wrk PATH"
    )


def wrk_argv(args: argparse.Namespace, url: str, headers: Sequence[str], duration: float) -> list[str]:
    argv = [
        args.wrk,
        "-t", str(args.threads),
        "-c", str(args.connections),
        "-d", f"{duration:g}s",
        "--latency",
        "-s", args.lua_file,
    ]  # fmt: skip
    for h in headers:
        argv += ["-H", h]
    argv.append(url)
    if args.client_cpus:
        argv = ["taskset", "-c", args.client_cpus, *argv]
    return argv


def run_wrk(
    args: argparse.Namespace, server: HttpServer, path: str, headers: Sequence[str], duration: float
) -> dict[str, Any]:
    argv = wrk_argv(args, server.url(path), headers, duration)
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
        if line.startswith("WRKJSON "):
            stats = json.loads(line[len("WRKJSON ") :])
    if proc.returncode != 0 or stats is None:
        raise BenchmarkError(
            f"{shlex.join(argv)} failed (exit code {proc.returncode})\n"
            f"--- stdout ---\n{proc.stdout.strip()}\n--- stderr ---\n{proc.stderr.strip()}"
        )
    errors = {k: stats[k] for k in stats if k.endswith("_errors") and stats[k]}
    if errors:
        raise BenchmarkError(
            f"{server.name}: wrk saw errors {errors} (non-2xx answers or socket errors)\n"
            f"{proc.stdout.strip()}\n{server.details()}"
        )
    n = stats["requests"]
    secs = stats["duration_us"] / 1e6
    return {
        "rps": n / secs if secs else 0.0,
        "requests": n,
        "duration_s": secs,
        "bytes_per_response": stats["bytes"] / n if n else 0.0,
        "mean_ms": stats["mean_us"] / 1000,
        "p50_ms": stats["p50_us"] / 1000,
        "p90_ms": stats["p90_us"] / 1000,
        "p99_ms": stats["p99_us"] / 1000,
        "p999_ms": stats["p999_us"] / 1000,
        "max_ms": stats["max_us"] / 1000,
        "cpu_s": cpu,
        "cpu_us_per_req": cpu * 1e6 / n if n else 0.0,
        "server_util": cpu / secs if secs else 0.0,  # fraction of one CPU the server got
        "wrk_stdout": proc.stdout,
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
                for k in (
                    "rps", "p50_ms", "p99_ms", "cpu_us_per_req", "server_util", "bytes_per_response"
                )
            }
            entry[side]["rps_min"] = min(r["rps"] for r in rs)
            entry[side]["rps_max"] = max(r["rps"] for r in rs)
        per_round = []
        for rnd in sorted({r["round"] for r in runs}):
            pair = {r["side"]: r["rps"] for r in runs if r["row"] == row and r["round"] == rnd}
            if pair.get("ceiling"):
                per_round.append(pair["ours"] / pair["ceiling"])
        entry["ratio"] = entry["ours"]["rps"] / entry["ceiling"]["rps"]
        # What the req/s ratio would be if each server had a whole CPU to itself.
        entry["cpu_ratio"] = entry["ceiling"]["cpu_us_per_req"] / entry["ours"]["cpu_us_per_req"]
        entry["ratio_per_round"] = per_round
        out.append(entry)
    return out


def render_table(summary: Sequence[dict[str, Any]]) -> str:
    headers = [
        "row", "ceiling req/s", "ours req/s", "ratio", "rounds min-max",
        "p50 ceil", "p50 ours", "p99 ceil", "p99 ours", "cpu ceil", "cpu ours", "cpu ratio",
        "util ceil", "util ours",
    ]  # fmt: skip
    rows = []
    for s in summary:
        c, o = s["ceiling"], s["ours"]
        pr = s["ratio_per_round"]
        rows.append([
            s["row"], f"{c['rps']:,.0f}", f"{o['rps']:,.0f}", f"{s['ratio']:.2f}x",
            f"{min(pr):.2f}-{max(pr):.2f}x" if pr else "",
            f"{c['p50_ms']:.2f}", f"{o['p50_ms']:.2f}", f"{c['p99_ms']:.2f}", f"{o['p99_ms']:.2f}",
            f"{c['cpu_us_per_req']:.0f}", f"{o['cpu_us_per_req']:.0f}", f"{s['cpu_ratio']:.2f}x",
            f"{c['server_util']:.0%}", f"{o['server_util']:.0%}",
        ])  # fmt: skip
    return format_table(headers, rows) + (
        "\n(median over rounds; ratio = ours/ceiling req/s of the medians, 'rounds' = the"
        "\n per-round ratios; latencies in ms as seen by wrk; cpu = server CPU µs per request;"
        "\n cpu ratio = ceiling/ours cpu, the req/s ratio if each server had a CPU to itself;"
        "\n util = share of one CPU the server used: well below 100% means it was not the"
        "\n bottleneck or other processes took its CPU)"
    )


def print_profile(path: str, top: int) -> None:
    print(f"\nprofile of {path} (top {top} by own time):")
    stats = pstats.Stats(path, stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


# -- main -------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="GET of a session over HTTP vs a bare Starlette/uvicorn constant endpoint, "
        "with wrk (req/s, p50/p99, server CPU per request, ratio ours/ceiling)."
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds per row (default %(default)s)")
    p.add_argument(
        "--duration", "-d", type=float, default=10.0, help="seconds per wrk run (default %(default)s)"
    )
    p.add_argument(
        "--connections", "-c", type=int, default=50, help="wrk -c (default %(default)s)"
    )
    p.add_argument("--threads", "-t", type=int, default=1, help="wrk -t (default %(default)s)")
    p.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of unrecorded load per server first "
        "(default %(default)s)"
    )
    p.add_argument(
        "--value-size", type=int, default=200, help="session value JSON bytes (default %(default)s)"
    )
    p.add_argument(
        "--rows", default="noauth,apikey",
        help="which rows: noauth (no auth configured), apikey (API key + Bearer header) "
        "(default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--server-cpus", default="1", help="taskset -c list for the servers (default %(default)s)"
    )
    p.add_argument("--client-cpus", default="0", help="taskset -c list for wrk (default %(default)s)")
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--wrk", default="wrk", metavar="PATH", help="wrk binary (default %(default)s)")
    p.add_argument(
        "--profile", metavar="DIR",
        help="run our servers under cProfile, write DIR/ours-<row>.prof and print the top "
        "functions (throughput is then much lower: for finding hot spots, not for figures)",
    )  # fmt: skip
    p.add_argument("--json", metavar="FILE", help="also write config, every run and the summary")
    p.add_argument("--startup-timeout", type=float, default=30.0, metavar="SECONDS")
    # Hidden: replace our server ({http_port} etc. as in _servers.py).
    p.add_argument("--ours-cmd", default=OURS_CMD, help=argparse.SUPPRESS)
    # Hidden: this script as the ceiling server.
    p.add_argument("--serve-ceiling", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ceiling-port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--ceiling-body", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve_ceiling:
        serve_ceiling(args.ceiling_port, args.ceiling_body)
        return 0
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    if (
        args.rounds < 1 or args.duration <= 0 or args.connections < 1 or args.threads < 1
        or not rows or any(r not in ("noauth", "apikey") for r in rows)
    ):  # fmt: skip
        print("--rounds, --duration, -c, -t must be >= 1; --rows noauth,apikey", file=sys.stderr)
        return 2
    try:
        args.wrk = find_wrk(args.wrk)
    except BenchmarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    if not pin:
        args.client_cpus = ""
        print("not pinning (taskset missing, --no-pin, or one CPU)", file=sys.stderr)
    server_prefix = f"taskset -c {args.server_cpus} " if pin else ""
    exit_on_sigterm()

    work = tempfile.mkdtemp(prefix="tokenginx-bench-http-")
    args.lua_file = os.path.join(work, "report.lua")
    Path(args.lua_file).write_text(WRK_LUA)
    body_file = os.path.join(work, "body.json")
    ours_cmd = args.ours_cmd
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
        print("profiling: cProfile slows our server; ratios are not meaningful", file=sys.stderr)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    auth_header = f"Authorization: Bearer {API_KEY}"
    runs: list[dict[str, Any]] = []
    servers: list[HttpServer] = []
    profiles: list[str] = []
    try:
        ours: dict[str, HttpServer] = {}
        for row in rows:
            cmd = ours_cmd
            if args.profile:
                prof = os.path.abspath(os.path.join(args.profile, f"ours-{row}.prof"))
                profiles.append(prof)
                cmd = cmd.replace(
                    "{python} -m tokenginx", "{python} -m cProfile -o " + shlex.quote(prof) + " -m tokenginx"
                )
            if row == "apikey":
                cmd += f" --set security.api_keys={API_KEY}"
            s = HttpServer(
                f"ours-{row}", server_prefix + cmd, "/health", args.startup_timeout,
                {"Authorization": f"Bearer {API_KEY}"} if row == "apikey" else None,
            )  # fmt: skip
            servers.append(s)
            ours[row] = s
            s.start()
        for s in servers:
            s.wait_ready()
        bodies = {row: seed(s, args.value_size) for row, s in ours.items()}
        body = bodies[rows[0]]
        Path(body_file).write_bytes(body)
        ceiling_cmd = CEILING_CMD.replace("{script}", shlex.quote(os.path.abspath(__file__)))
        ceiling_cmd = ceiling_cmd.replace("{body_file}", shlex.quote(body_file))
        ceiling = HttpServer("ceiling", server_prefix + ceiling_cmd, CEILING_PATH, args.startup_timeout)
        servers.append(ceiling)
        ceiling.start()
        ceiling.wait_ready()
        _, ceiling_body = ceiling.request("GET", CEILING_PATH)
        sizes = {**{f"ours-{r}": len(b) for r, b in bodies.items()}, "ceiling": len(ceiling_body)}
        for s in servers:
            print(f"{s.name}: pid {s.pid} http {s.http_port}: {shlex.join(s.argv)}", file=sys.stderr)
        print(f"response body bytes: {sizes}", file=sys.stderr)

        path = "/api/v1/sessions/" + SESSION_KEY
        targets = {
            row: (
                (ours[row], path, [auth_header] if row == "apikey" else []),
                (ceiling, CEILING_PATH, [auth_header] if row == "apikey" else []),
            )
            for row in rows
        }
        if args.warmup > 0:
            for row in rows:
                for server, p, hdrs in targets[row]:
                    run_wrk(args, server, p, hdrs, args.warmup)
        for rnd in range(args.rounds):
            for row in rows:
                pair = targets[row] if rnd % 2 == 0 else targets[row][::-1]
                for server, p, hdrs in pair:
                    rec = run_wrk(args, server, p, hdrs, args.duration)
                    side = "ceiling" if server is ceiling else "ours"
                    runs.append({"row": row, "side": side, "round": rnd, **rec})
                    print(
                        f"round {rnd + 1}/{args.rounds}  {row:<7} {side:<8}"
                        f"{rec['rps']:>10,.0f} req/s  p50 {rec['p50_ms']:.2f} ms  "
                        f"p99 {rec['p99_ms']:.2f} ms  cpu {rec['cpu_us_per_req']:.0f} µs/req  "
                        f"util {rec['server_util']:.0%}",
                        file=sys.stderr,
                    )
        commands = {s.name: s.argv for s in servers}
        example = shlex.join(wrk_argv(args, ours[rows[0]].url(path), [], args.duration))
    except (ServerError, BenchmarkError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        for s in reversed(servers):
            s.stop()
        shutil.rmtree(work, ignore_errors=True)

    summary = summarize(runs, rows)
    print()
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, keep-alive; "
        f"{args.rounds} round(s); {os.cpu_count()} CPUs; "
        + (f"servers on CPU {args.server_cpus}, wrk on CPU {args.client_cpus}" if pin else "not pinned")
    )
    print(f"e.g. {example}")
    print(f"body bytes: {sizes}\n")
    print(render_table(summary))
    print("\ntarget (median req/s):")
    for s in summary:
        ok = "ok" if s["ratio"] >= TARGET_RATIO else "MISS"
        print(
            f"  {s['row']:<7} ours/ceiling {s['ratio']:.2f} (>= {TARGET_RATIO})  {ok}"
            f"   (cpu ratio {s['cpu_ratio']:.2f})"
        )
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} (1 min)")
    for prof in profiles:
        if os.path.exists(prof):
            print_profile(prof, 30)

    if args.json:
        doc = {
            "benchmark": "http_throughput",
            "started": started,
            "config": {
                "rounds": args.rounds,
                "duration_s": args.duration,
                "connections": args.connections,
                "threads": args.threads,
                "warmup_s": args.warmup,
                "value_size": args.value_size,
                "rows": rows,
                "pinned": pin,
                "server_cpus": args.server_cpus if pin else None,
                "client_cpus": args.client_cpus if pin else None,
                "body_bytes": sizes,
            },
            "environment": environment(
                loadavg_before=load_before,
                loadavg_after=os.getloadavg(),
                wrk=args.wrk,
                server_commands=commands,
            ),
            "runs": [{k: v for k, v in r.items() if k != "wrk_stdout"} for r in runs],
            "wrk_output": [r["wrk_stdout"] for r in runs],
            "summary": summary,
        }
        write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
