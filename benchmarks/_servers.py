"""Start, probe and stop the servers the benchmarks compare (redis-server and TokenginX).

Shared by the benchmark scripts (with ``_probe.py``); stdlib only (redis-py is
imported lazily by :meth:`Server.client`).

A server is described by a command *template*: a shell-like string split with
:func:`shlex.split` (no shell is involved, so the PID we get is the server's own PID)
in which these placeholders are replaced:

``{port}``       RESP port, from :func:`free_port`
``{http_port}``  a second free port (TokenginX HTTP/REST listener)
``{grpc_port}``  a third free port (TokenginX gRPC listener)
``{data_dir}``   a fresh temporary directory, removed on stop; also the process's cwd
``{python}``     ``sys.executable``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"

# Both sides in-memory only by default, so the comparison is like for like; the
# persistence benchmark passes its own commands (appendonly / fsync policies).
REDIS_CMD = "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --dir {data_dir}"
OURS_CMD = (
    "{python} -m tokenginx.cli.server_main --port {port} --bind 127.0.0.1"
    " --http-port {http_port} --grpc-port {grpc_port} --data-dir {data_dir} --log-level warn"
    " --no-persistence"
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
_LOG_TAIL_CHARS = 4000


class ServerError(RuntimeError):
    """A server could not be started, died, or did not answer PING in time."""


# -- ports --------------------------------------------------------------------------------

_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and not handed out before by this process."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise ServerError("could not find a free TCP port")


# -- /proc ----------------------------------------------------------------------------------


def _read_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime + stime in clock ticks) of one process, or None if it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
    return int(rest[1]), int(rest[11]) + int(rest[12])


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _read_stat(int(entry))
        if st is not None:
            children.setdefault(st[0], []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` (all threads) and live descendants."""
    ticks = 0
    for p in process_tree(pid):
        st = _read_stat(p)
        if st is not None:
            ticks += st[1]
    return ticks / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of ``pid`` plus its live descendants, in bytes."""
    total = 0
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024  # reported in kB
                break
    return total


# -- servers --------------------------------------------------------------------------------


def render(template: str, values: dict[str, str]) -> list[str]:
    """Split ``template`` like a shell would and substitute the ``{name}`` placeholders."""
    text = template
    for name, value in values.items():
        text = text.replace("{" + name + "}", shlex.quote(value))
    return shlex.split(text)


def roundtrip(sock: socket.socket, request: bytes) -> bytes:
    """Send ``request`` and return the first reply line (raises OSError on failure)."""
    sock.sendall(request)
    buf = b""
    while b"\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed before a reply")
        buf += chunk
    return buf.split(b"\r\n", 1)[0]


def _ping(port: int, timeout: float = 1.0) -> bytes:
    """Send a RESP PING and return the first reply line (raises OSError on failure)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        return roundtrip(s, b"*1\r\n$4\r\nPING\r\n")


class Server:
    """One server process started from a command template."""

    def __init__(self, name: str, template: str, startup_timeout: float = 30.0) -> None:
        self.name = name
        self.template = template
        self.startup_timeout = startup_timeout
        self.port = 0
        self.argv: list[str] = []
        self.data_dir = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: Any = None
        self._err: Any = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self.data_dir = tempfile.mkdtemp(prefix=f"tokenginx-bench-{self.name}-")
        self.port = free_port()
        values = {
            "port": str(self.port),
            "http_port": str(free_port()),
            "grpc_port": str(free_port()),
            "data_dir": self.data_dir,
            "python": sys.executable,
        }
        self.argv = render(self.template, values)
        if not self.argv:
            raise ServerError(f"{self.name}: empty server command")
        # Logs live outside data_dir so a server wiping its data dir cannot lose them.
        # They stay open for the server's lifetime and are closed by stop().
        self._out = tempfile.TemporaryFile(prefix=f"{self.name}-stdout-")  # noqa: SIM115
        self._err = tempfile.TemporaryFile(prefix=f"{self.name}-stderr-")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.data_dir,  # so a stray ./config.yaml in the caller's cwd is ignored
                stdin=subprocess.DEVNULL,
                stdout=self._out,
                stderr=self._err,
                start_new_session=True,  # Ctrl-C goes to us; we stop the server ourselves
            )
        except OSError as e:
            self.stop()
            raise ServerError(f"{self.name}: cannot run {shlex.join(self.argv)}: {e}") from e

    def wait_ready(self) -> None:
        """Block until the server answers PING with +PONG; raise ServerError otherwise."""
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last = "no attempt yet"
        while True:
            if self.proc.poll() is not None:
                raise ServerError(self._death_message("exited before answering PING"))
            try:
                reply = _ping(self.port)
            except OSError as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if reply.startswith(b"+PONG"):
                    return
                last = f"reply {reply.decode(errors='replace')!r}"  # e.g. -LOADING: retry
            if time.monotonic() >= deadline:
                msg = (
                    f"{self.name} did not answer PING on {HOST}:{self.port} within "
                    f"{self.startup_timeout:g}s (last attempt: {last})"
                )
                raise ServerError(msg + "\n" + self.details())
            time.sleep(0.05)

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise ServerError(self._death_message("died during the benchmark"))

    def stop(self, timeout: float = 10.0) -> int | None:
        """Terminate (then kill after ``timeout``), remove the data dir; return the exit code."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.terminate()
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    print(
                        f"{self.name}: no exit {timeout:g}s after SIGTERM, killing", file=sys.stderr
                    )
                    with contextlib.suppress(ProcessLookupError):
                        self.proc.kill()
                    self.proc.wait()
            rc = self.proc.returncode
        for f in (self._out, self._err):
            if f is not None:
                f.close()
        self._out = self._err = None
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return rc

    # -- measurements -------------------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def client(self, **kwargs: Any) -> Any:
        """A ``redis.Redis`` connected to this server, failing fast (no retries).

        redis-py retries connection errors by default (re-sending whole pipelines),
        which would hide a server that drops connections and distort timings.
        """
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        kwargs.setdefault("socket_timeout", 300)
        kwargs.setdefault("retry", Retry(NoBackoff(), 0))
        return redis.Redis(host=HOST, port=self.port, **kwargs)

    def info(self, section: str) -> dict[str, Any] | None:
        """``INFO section`` as a dict, or None if the server does not support it."""
        import redis

        try:
            with self.client() as c:
                return dict(c.info(section))
        except redis.RedisError:
            return None

    # -- diagnostics --------------------------------------------------------------------
    def _tail(self, f: Any) -> str:
        if f is None:
            return ""
        f.flush()
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - _LOG_TAIL_CHARS))
        return f.read().decode(errors="replace").strip()

    def details(self) -> str:
        parts = [f"command: {shlex.join(self.argv)}"]
        for label, f in (("stderr", self._err), ("stdout", self._out)):
            text = self._tail(f)
            parts.append(
                f"--- {self.name} {label} (tail) ---\n{text}"
                if text
                else f"--- {self.name} {label}: (empty) ---"
            )
        return "\n".join(parts)

    def _death_message(self, what: str) -> str:
        rc = None if self.proc is None else self.proc.returncode
        return f"{self.name} {what} (exit code {rc})\n{self.details()}"


@contextlib.contextmanager
def running(
    specs: Sequence[tuple[str, str]], startup_timeout: float = 30.0
) -> Iterator[list[Server]]:
    """Start every ``(name, template)``, wait for each to answer PING, stop all on exit."""
    servers: list[Server] = []
    try:
        for name, template in specs:
            server = Server(name, template, startup_timeout)
            servers.append(server)
            server.start()
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in reversed(servers):
            server.stop()


# -- command line -------------------------------------------------------------------------


def add_server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--redis-cmd",
        default=REDIS_CMD,
        metavar="TEMPLATE",
        help="command template for the reference redis-server (default: %(default)s)",
    )
    # Hidden: replace our server, e.g. by a second redis-server to check the plumbing, or by
    # any other RESP server to compare against.
    p.add_argument("--ours-cmd", default=OURS_CMD, help=argparse.SUPPRESS)
    p.add_argument(
        "--startup-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for each server to answer PING (default: %(default)s)",
    )


def server_specs(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [("redis", args.redis_cmd), ("ours", args.ours_cmd)]


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so ``finally`` blocks stop the servers."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


# -- output ---------------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        out = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def delta(a: Any, b: Any) -> int | None:
    """``b - a`` as ints (counters read before and after), None if either is missing."""
    if a is None or b is None:
        return None
    return int(b) - int(a)


def fmt_num(x: float | None, fmt: str) -> str:
    """``fmt.format(x)``, or "n/a" for None."""
    return "n/a" if x is None else fmt.format(x)


def fmt_ratio(ours: float | None, redis_: float | None) -> str:
    """ours/redis as "1.23x", or "" when either is missing or redis's is not positive."""
    if ours is None or redis_ is None or redis_ <= 0:
        return ""
    return f"{ours / redis_:.2f}x"


def get_path(d: Any, path: str) -> Any:
    """``d["a"]["b"]`` for path "a.b"; None where a level is missing or not a dict."""
    for part in path.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def environment(**extra: Any) -> dict[str, Any]:
    """The machine facts every benchmark's JSON carries, plus ``extra``."""
    import platform

    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        **extra,
    }


def write_json(path: str, doc: dict[str, Any]) -> None:
    import json

    with open(path, "w") as f:
        json.dump(doc, f, indent=2, default=str)
        f.write("\n")
    print(f"\nwrote {path}", file=sys.stderr)
