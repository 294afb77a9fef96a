"""tokenginx-client as a process against a real server (and against real Redis)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import RunningServer, free_port, start_tokenginx, stop_process

CLIENT = [sys.executable, "-m", "tokenginx.cli.client_main"]
# Variables the client reads: a developer's shell must not change what these tests see.
_CLIENT_ENV = (
    "TOKENGINX_HOST",
    "TOKENGINX_PORT",
    "TOKENGINX_PASSWORD",
    "TOKENGINX_DB",
    "TOKENGINX_DATABASE",
    "REDISCLI_AUTH",
)


def client_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLIENT_ENV}
    env.update(extra)
    return env


def run(
    *args: str, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*CLIENT, *args],
        input=input,
        capture_output=True,
        timeout=60,
        env=env or client_env(),
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


def at(srv: RunningServer, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return run("-p", str(srv.port), *args, **kw)


@pytest.fixture(scope="module")
def secured() -> Iterator[RunningServer]:
    srv = start_tokenginx("--requirepass", "pw")
    yield srv
    stop_process(srv.proc)
    shutil.rmtree(srv.data_dir, ignore_errors=True)


# -- one-shot ------------------------------------------------------------------------------
def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("tokenginx-client")
    assert exe.exists(), "pip install -e . declares the tokenginx-client console script"
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert proc.stdout.startswith("tokenginx-client ")


def test_set_get_one_shot(tokenginx: RunningServer, r: redis.Redis) -> None:
    p = at(tokenginx, "set", "cli:k", "hello world")
    assert (p.returncode, p.stdout, p.stderr) == (0, "OK\n", "")
    assert r.get("cli:k") == b"hello world"
    assert at(tokenginx, "get", "cli:k").stdout == '"hello world"\n'
    assert at(tokenginx, "get", "cli:missing").stdout == "(nil)\n"
    assert at(tokenginx, "incr", "cli:n").stdout == "(integer) 1\n"
    assert at(tokenginx, "incrby", "cli:n", "-5").stdout == "(integer) -4\n"
    assert at(tokenginx, "mget", "cli:k", "cli:missing").stdout == '1) "hello world"\n2) (nil)\n'


def test_binary_values_are_escaped_like_redis_cli(tokenginx: RunningServer, r: redis.Redis) -> None:
    r.set("cli:bin", b'a"b\\c\n\x00\xff')
    assert at(tokenginx, "get", "cli:bin").stdout == '"a\\"b\\\\c\\n\\x00\\xff"\n'
    p = subprocess.run(
        [*CLIENT, "-p", str(tokenginx.port), "--raw", "get", "cli:bin"],
        capture_output=True,
        timeout=30,
        env=client_env(),
    )
    assert p.stdout == b'a"b\\c\n\x00\xff\n'


def test_contract_spellings(tokenginx: RunningServer, r: redis.Redis) -> None:
    # Contract §12: `tokenginx-client -server localhost:6380 -c "SET key value"` → OK
    server = f"127.0.0.1:{tokenginx.port}"
    assert run("-server", server, "-c", "SET key value").stdout == "OK\n"
    assert run("-server", server, "-c", "GET key").stdout == '"value"\n'
    assert run("-server", server, "-c", 'SET "my key" "a b"').stdout == "OK\n"
    assert r.get("my key") == b"a b"


def test_error_reply_exits_1(tokenginx: RunningServer) -> None:
    p = at(tokenginx, "get")
    assert p.returncode == 1
    assert p.stdout == "(error) ERR wrong number of arguments for 'get' command\n"
    p = at(tokenginx, "--raw", "nosuchcommand")
    assert p.returncode == 1
    assert p.stdout.startswith("ERR unknown command 'nosuchcommand'")


def test_raw_and_resp3(tokenginx: RunningServer, r: redis.Redis) -> None:
    r.mset({"cli:a": "1", "cli:b": "2"})
    assert at(tokenginx, "--raw", "mget", "cli:a", "cli:b", "cli:none").stdout == "1\n2\n\n"
    p = at(tokenginx, "-3", "config", "get", "maxmemory")
    assert p.stdout == '1# "maxmemory" => "0"\n'
    assert at(tokenginx, "config", "get", "maxmemory").stdout == '1) "maxmemory"\n2) "0"\n'
    hello = at(tokenginx, "-3", "hello", "3").stdout
    assert '1# "server" => "redis"\n' in hello
    assert re.search(r'# "proto" => \(integer\) 3\n', hello)


def test_select_db(tokenginx: RunningServer, r: redis.Redis) -> None:
    assert at(tokenginx, "-n", "5", "set", "cli:db5", "x").stdout == "OK\n"
    assert r.get("cli:db5") is None
    db5 = redis.Redis(port=tokenginx.port, db=5)
    try:
        assert db5.get("cli:db5") == b"x"
    finally:
        db5.flushdb()
        db5.close()


# -- shortcuts ------------------------------------------------------------------------------
def test_ping(tokenginx: RunningServer) -> None:
    p = at(tokenginx, "ping")
    assert (p.returncode, p.stdout) == (0, "PONG\n")


def test_info(tokenginx: RunningServer) -> None:
    p = at(tokenginx, "info", "server")
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    assert lines[0] == "# Server"  # raw text, not a quoted bulk string
    assert any(re.fullmatch(r"redis_version:\d+\.\d+\.\d+", line) for line in lines)
    assert "tokenginx_version:" in p.stdout
    assert "# Keyspace" in at(tokenginx, "-3", "info").stdout  # verbatim string on RESP3


def test_stats(tokenginx: RunningServer, r: redis.Redis) -> None:
    r.set("cli:s1", "1")
    r.set("cli:s2", "2", ex=100)
    p = at(tokenginx, "stats")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("TokenginX ") and lines[0].endswith(f"127.0.0.1:{tokenginx.port}")
    labels = [line.split(":")[0] for line in lines[1:]]
    assert labels == [
        "uptime",
        "clients",
        "memory",
        "ops/sec",
        "hits/misses",
        "expired keys",
        "keys",
    ]
    assert re.fullmatch(r"uptime:\s+\d+d \d\d:\d\d:\d\d", lines[1])
    assert re.fullmatch(r"clients:\s+[1-9]\d*", lines[2])
    assert "db0=2 (expires 1)" in lines[-1]


# -- auth -------------------------------------------------------------------------------------
def test_auth(secured: RunningServer) -> None:
    p = at(secured, "ping")
    assert (p.returncode, p.stdout) == (1, "(error) NOAUTH Authentication required.\n")
    p = at(secured, "-a", "pw", "ping")
    assert (p.returncode, p.stdout) == (0, "PONG\n")
    assert "Warning: Using a password" in p.stderr
    p = at(secured, "-a", "pw", "--no-auth-warning", "set", "k", "v")
    assert (p.returncode, p.stdout, p.stderr) == (0, "OK\n", "")
    p = at(secured, "--user", "default", "-a", "pw", "--no-auth-warning", "get", "k")
    assert (p.returncode, p.stdout) == (0, '"v"\n')
    p = at(secured, "ping", env=client_env(TOKENGINX_PASSWORD="pw"))
    assert (p.returncode, p.stdout, p.stderr) == (0, "PONG\n", "")


def test_wrong_password(secured: RunningServer) -> None:
    p = at(secured, "-a", "nope", "--no-auth-warning", "ping")
    assert p.returncode == 1
    assert p.stderr.startswith("AUTH failed: WRONGPASS")
    assert p.stdout == "(error) NOAUTH Authentication required.\n"


# -- batch --------------------------------------------------------------------------------------
BATCH = b"""\
# a comment, then a blank line

set cli:batch "two words"
get cli:batch
nosuchcmd
incr cli:counter
"""


def test_batch_file(tokenginx: RunningServer, r: redis.Redis, tmp_path: Path) -> None:
    f = tmp_path / "cmds.txt"
    f.write_bytes(BATCH)
    p = at(tokenginx, "-f", str(f))
    assert p.returncode == 1  # one line failed; the others still ran
    out = p.stdout.splitlines()
    assert out[:2] == ["OK", '"two words"']
    assert out[2].startswith("(error) ERR unknown command 'nosuchcmd'")
    assert out[3:] == ["(integer) 1"]
    assert r.get("cli:batch") == b"two words"


def test_batch_stdin(tokenginx: RunningServer) -> None:
    p = at(tokenginx, "-f", "-", input=b"set cli:x 1\r\nincr cli:x\n")
    assert (p.returncode, p.stdout) == (0, "OK\n(integer) 2\n")


def test_batch_file_missing(tokenginx: RunningServer, tmp_path: Path) -> None:
    p = at(tokenginx, "-f", str(tmp_path / "nope.txt"))
    assert p.returncode == 2
    assert "cannot read" in p.stderr


# -- REPL ---------------------------------------------------------------------------------------
def test_repl_through_stdin(tokenginx: RunningServer, r: redis.Redis) -> None:
    script = (
        b"\n".join(
            [
                b'set cli:repl "a b"',
                b"get cli:repl",
                b'get "unbalanced',
                b"get",
                b"select 3",
                b"multi",
                b"incr cli:r3",
                b"exec",
                b"exit",
                b"get cli:repl",  # never sent: exit leaves the REPL
            ]
        )
        + b"\n"
    )
    p = at(tokenginx, input=script)
    assert (p.returncode, p.stderr) == (0, "")
    prompt = f"tokenginx 127.0.0.1:{tokenginx.port}"
    # Errors do not end the REPL; the prompt follows SELECT and MULTI like redis-cli's.
    assert p.stdout == (
        f"{prompt}> OK\n"
        f'{prompt}> "a b"\n'
        f"{prompt}> Invalid argument(s)\n"
        f"{prompt}> (error) ERR wrong number of arguments for 'get' command\n"
        f"{prompt}> OK\n"
        f"{prompt}[3]> OK\n"
        f"{prompt}[3](TX)> QUEUED\n"
        f"{prompt}[3](TX)> 1) (integer) 1\n"
        f"{prompt}[3]> "
    )
    assert r.get("cli:repl") == b"a b"


def test_repl_eof_leaves(tokenginx: RunningServer) -> None:
    p = at(tokenginx, input=b"ping\n")
    assert p.returncode == 0
    assert p.stdout.endswith("> PONG\n" + f"tokenginx 127.0.0.1:{tokenginx.port}> \n")


class Driven:
    """A client process fed line by line; a thread collects what it prints."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*CLIENT, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=client_env(),
        )
        self.out = b""
        self._cond = threading.Condition()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        while chunk := os.read(self.proc.stdout.fileno(), 4096):
            with self._cond:
                self.out += chunk
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def expect(self, pattern: str, since: int = 0, timeout: float = 15.0) -> str:
        """Wait until the output from offset ``since`` on matches ``pattern``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (m := re.search(pattern.encode(), self.out[since:])):
                left = deadline - time.monotonic()
                if left <= 0 or not self._pump_thread.is_alive():
                    raise AssertionError(f"no {pattern!r} in {self.out[since:]!r}")
                self._cond.wait(left)
        return m.group(0).decode()

    def send(self, line: str, expect: str) -> str:
        """Send ``line`` and wait for output matching ``expect`` after it."""
        since = len(self.out)
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return self.expect(expect, since)

    def finish(self, *, terminate: bool = False) -> tuple[int, str]:
        """End the process (EOF on stdin, or SIGTERM); its exit status and stderr."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        if terminate:
            self.proc.terminate()
        rc = self.proc.wait(timeout=15)
        self._pump_thread.join(timeout=15)  # it stops at EOF; then the pipe can close
        assert self.proc.stderr is not None and self.proc.stdout is not None
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        self.proc.stdout.close()
        return rc, err


def test_repl_reconnects_once_after_the_server_closed_it(
    tokenginx: RunningServer, r: redis.Redis
) -> None:
    repl = Driven("-p", str(tokenginx.port))
    try:
        first = int(repl.send("client id", r"\(integer\) (\d+)").split()[-1])
        assert r.client_kill_filter(_id=first) == 1
        r.set("cli:after", "kill")
        assert repl.send("get cli:after", r'"kill"\n') == '"kill"\n'
        second = int(repl.send("client id", r"\(integer\) (\d+)").split()[-1])
        assert second != first
    finally:
        rc, err = repl.finish()
    assert rc == 0, err


def test_repl_survives_an_unreachable_server() -> None:
    port = free_port()
    p = run("-p", str(port), input=b"ping\nping\n")
    assert p.returncode == 0
    assert p.stdout.startswith("not connected> ")
    refused = f"Could not connect to TokenginX at 127.0.0.1:{port}: Connection refused"
    assert p.stderr.count(refused) == 3  # at start, then once per command


def test_subscribe_streams_messages(tokenginx: RunningServer, r: redis.Redis) -> None:
    sub = Driven("-p", str(tokenginx.port), "subscribe", "cli:ch")
    try:
        sub.expect(r"3\) \(integer\) 1\n")  # subscribed
        assert r.publish("cli:ch", "hi there") == 1
        sub.expect(r'3\) "hi there"\n')
    finally:
        sub.finish(terminate=True)
    assert sub.out.decode() == (
        "Reading messages... (press Ctrl-C to quit)\n"
        '1) "subscribe"\n2) "cli:ch"\n3) (integer) 1\n'
        '1) "message"\n2) "cli:ch"\n3) "hi there"\n'
    )


# -- unreachable and bad usage ------------------------------------------------------------------
@pytest.mark.parametrize("args", [["ping"], ["get", "k"], ["stats"], ["-f", "-"]])
def test_unreachable_server_exits_2(args: list[str]) -> None:
    port = free_port()
    p = run("-p", str(port), *args, input=b"ping\n")
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr == f"Could not connect to TokenginX at 127.0.0.1:{port}: Connection refused\n"


def test_usage_error_exits_2() -> None:
    p = run("-p", "notaport", "ping")
    assert p.returncode == 2
    assert "-p expects a number" in p.stderr
    assert run("--help").stdout.startswith("Usage: tokenginx-client")


# -- the same screen as redis-cli -----------------------------------------------------------
PARITY_COMMANDS = [
    ["set", "par:s", 'q"uote\\\n\x01'],
    ["get", "par:s"],
    ["get", "par:missing"],
    ["exists", "par:s"],
    ["mget", "par:s", "par:missing"],
    ["type", "par:s"],
    ["nosuchcommand", "x"],
    ["get"],
    ["config", "get", "maxmemory"],
    ["eval", "return {1, {2, {3, 'x'}}, {err='E1'}, {ok='FINE'}}", "0"],
    ["eval", "redis.setresp(3); return {map={a={1,2}, b={set={x=true}}}}", "0"],
    ["eval", "redis.setresp(3); return {double=2.5}", "0"],
    ["eval", "return redis.call('ping')", "0"],
    ["echo", ""],
    ["info", "server"],
]


def _redis_cli() -> str:
    exe = shutil.which("redis-cli")
    if exe is None:
        pytest.fail("redis-cli is missing: install redis-tools (the README's test command does it)")
    return exe


@pytest.mark.parametrize("proto", ["-2", "-3"])
@pytest.mark.parametrize("target", ["redis", "tokenginx"])
def test_output_matches_redis_cli(target: str, proto: str, request: pytest.FixtureRequest) -> None:
    srv: RunningServer = request.getfixturevalue(
        "reference_redis" if target == "redis" else "tokenginx"
    )
    exe = _redis_cli()
    mismatches = []
    for argv in PARITY_COMMANDS:
        if target == "tokenginx" and argv[0] == "eval":
            continue  # scripting is the server's business, not the client's
        if argv[:2] == ["info", "server"]:
            continue  # the text changes between two calls (uptime, time); checked below
        ours = subprocess.run(
            [*CLIENT, "-p", str(srv.port), proto, *argv],
            capture_output=True,
            timeout=30,
            env=client_env(),
        )
        theirs = subprocess.run(
            [exe, "-p", str(srv.port), "--no-raw", proto, *argv], capture_output=True, timeout=30
        )
        if ours.stdout != theirs.stdout:
            mismatches.append((argv, theirs.stdout, ours.stdout))
    assert not mismatches
    ours = subprocess.run(
        [*CLIENT, "-p", str(srv.port), proto, "info", "server"],
        capture_output=True,
        timeout=30,
        env=client_env(),
    )
    theirs = subprocess.run(
        [exe, "-p", str(srv.port), "--no-raw", proto, "info", "server"],
        capture_output=True,
        timeout=30,
    )
    strip = re.compile(rb"^(uptime_in_\w+|server_time_usec|lru_clock):.*$", re.M)
    assert strip.sub(b"", ours.stdout) == strip.sub(b"", theirs.stdout)
