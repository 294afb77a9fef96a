"""Shared fixtures: real server processes on free ports, and an in-process gate."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import tokenginx.transport.grpc  # noqa: F401 - sets GRPC_ENABLE_FORK_SUPPORT before any grpc import
from tokenginx.client import Client
from tokenginx.clock import ManualClock
from tokenginx.commands.table import CommandGroup
from tokenginx.config import Config
from tokenginx.errors import CommandError
from tokenginx.server import Server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_ping(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {out}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                data = s.recv(64)
                if data.startswith((b"+PONG", b"-NOAUTH")):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not answer PING within {timeout}s")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        if stream is not None:
            stream.close()


@dataclass
class RunningServer:
    port: int
    proc: subprocess.Popen
    data_dir: str
    args: list[str] = field(default_factory=list)
    http_port: int = 0
    grpc_port: int = 0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        return self.proc.pid


def start_tokenginx(
    *extra: str, port: int | None = None, http_port: int | None = None, grpc_port: int | None = None
) -> RunningServer:
    """Start ``tokenginx-server`` on free ports (RESP, HTTP and gRPC) with a temp data dir."""
    port = port or free_port()
    http_port = http_port or free_port()
    grpc_port = grpc_port or free_port()
    data_dir = tempfile.mkdtemp(prefix="tokenginx-test-")
    args = [
        sys.executable,
        "-m",
        "tokenginx.cli.server_main",
        "--port",
        str(port),
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
        "--bind",
        "127.0.0.1",
        "--data-dir",
        data_dir,
        "--log-level",
        "warn",
        *extra,
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_ping(port, proc)
    except Exception:
        stop_process(proc)
        raise
    return RunningServer(port, proc, data_dir, args, http_port, grpc_port)


def start_redis(*extra: str) -> RunningServer:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed; run the README's test command (scripts/test)")
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="redis-ref-")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", data_dir, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_for_ping(port, proc)
    return RunningServer(port, proc, data_dir)


@pytest.fixture(scope="session")
def tokenginx() -> Iterator[RunningServer]:
    """One shared server process for the integration suite."""
    srv = start_tokenginx()
    yield srv
    stop_process(srv.proc)
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def reference_redis() -> Iterator[RunningServer]:
    srv = start_redis()
    yield srv
    stop_process(srv.proc)
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture
def r(tokenginx: RunningServer) -> Iterator[Any]:
    import redis

    client = redis.Redis(port=tokenginx.port, socket_timeout=10)
    client.flushall()
    yield client
    client.close()


# -- in-process gate, for unit tests of command semantics --------------------------------
class GateHarness:
    """Runs commands through the real gate and table, with a hand-moved clock."""

    def __init__(
        self, config: Config | None = None, groups: Iterable[CommandGroup] | None = None
    ) -> None:
        self.clock = ManualClock()
        self.server = Server(config or Config(), clock=self.clock, groups=groups)
        self.state = self.server.state
        self.gate = self.server.gate
        self.pushed: list[Any] = []
        self.client = self.new_client()

    def new_client(self) -> Client:
        pushed = self.pushed
        return Client(self.state, kind="test", addr="127.0.0.1:1", push_sink=pushed.append)

    def call(self, *args: Any, client: Client | None = None) -> Any:
        argv = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        return self.gate.execute(client or self.client, argv)

    def ok(self, *args: Any, client: Client | None = None) -> Any:
        """Like call, but an error reply fails the test."""
        reply = self.call(*args, client=client)
        if isinstance(reply, CommandError):
            raise AssertionError(f"{args!r} -> {reply.message}")
        return reply

    def err(self, *args: Any, client: Client | None = None) -> str:
        reply = self.call(*args, client=client)
        assert isinstance(reply, CommandError), f"{args!r} should fail, got {reply!r}"
        return reply.message


@pytest.fixture
def gate() -> GateHarness:
    return GateHarness()


os.environ.setdefault("PYTHONUNBUFFERED", "1")
