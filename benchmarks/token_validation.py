"""Validating an access token: TokenginX's introspection against a plain GET on Redis.

A resource server that keeps tokens in Redis validates one with ``GET
oauth:access_token:{id}`` and parses the JSON itself. TokenginX answers
``OAUTH.TOKEN.INTROSPECT {id}`` with the RFC 7662 answer (expiry and revocation checked
server-side). Both run under ``redis-benchmark`` in the same run, on the same token
record, and the table gives requests per second and ours/redis ratios:

- ``GET`` on redis-server (the reference),
- ``GET`` on TokenginX (the same work),
- ``OAUTH.TOKEN.INTROSPECT`` on TokenginX (what the built-in server does per check).

Run from the repository root: ``.venv/bin/python benchmarks/token_validation.py``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

from _servers import (
    Server,
    ServerError,
    add_server_args,
    exit_on_sigterm,
    fmt_ratio,
    format_table,
    running,
    server_specs,
)
from resp_throughput import parse_csv

TOKEN = "bench-token-0123456789abcdef0123456789abcdef"
KEY = f"oauth:access_token:{TOKEN}"
RECORD = (
    '{"token_type":"Bearer","client_id":"web","user_id":"alice","scope":"openid profile",'
    '"issued_at":1767225600,"expires_at":4102444800}'
)


def seed(server: Server, ours: bool) -> None:
    client = server.client()
    try:
        if ours:
            client.execute_command("OAUTH.TOKEN.SET", TOKEN, "alice", "openid profile",
                                   "CLIENT_ID", "web", "EXPIRES_IN", 86400)
        else:
            client.set(KEY, RECORD, ex=86400)
    finally:
        client.close()


def rps(bench: str, port: int, args: argparse.Namespace, pipeline: int, *command: str) -> float:
    argv = [bench, "-h", "127.0.0.1", "-p", str(port), "-n", str(args.requests),
            "-c", str(args.clients), "-P", str(pipeline), "--csv", *command]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=True).stdout
    rows = parse_csv(out)
    if not rows:
        raise ServerError(f"redis-benchmark printed no result: {out[-500:]!r}")
    return rows[0]["rps"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_args(p)
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--pipelines", default="1,16", help="comma-separated (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="best of N (default: %(default)s)")
    args = p.parse_args(argv)
    bench = shutil.which("redis-benchmark")
    if bench is None:
        print("cannot find redis-benchmark (install redis-tools)", file=sys.stderr)
        return 1
    exit_on_sigterm()
    rows: list[list[str]] = []
    try:
        with running(server_specs(args), args.startup_timeout) as (redis, ours):
            seed(redis, ours=False)
            seed(ours, ours=True)
            for pipeline in (int(x) for x in args.pipelines.split(",")):
                best: dict[str, float] = {}
                for _ in range(args.rounds):
                    for name, server, command in (
                        ("redis GET", redis, ("GET", KEY)),
                        ("ours GET", ours, ("GET", KEY)),
                        ("ours OAUTH.TOKEN.INTROSPECT", ours, ("OAUTH.TOKEN.INTROSPECT", TOKEN)),
                    ):
                        best[name] = max(best.get(name, 0.0),
                                         rps(bench, server.port, args, pipeline, *command))
                ref = best["redis GET"]
                for name, value in best.items():
                    rows.append([name, str(pipeline), f"{value:,.0f}", fmt_ratio(value, ref)])
    except (ServerError, subprocess.CalledProcessError) as e:
        print(f"benchmark failed: {e}", file=sys.stderr)
        return 1
    print(format_table(["validation", "pipeline", "req/s", "vs redis GET"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
