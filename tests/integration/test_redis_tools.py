"""Debian's redis-cli and redis-benchmark against our server.

These are the tools operators reach for first; each test pins one behaviour they rely
on. A missing tool fails the test: it is installed by the README's test command.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.conftest import RunningServer

MASS_KEYS = 10_000


def tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is missing: install redis-tools (the README's test command does it)")
    return exe


def cli(
    srv: RunningServer, *args: str, input: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [tool("redis-cli"), "-p", str(srv.port), *args],
        input=input,
        capture_output=True,
        timeout=timeout,
    )


def out(p: subprocess.CompletedProcess[bytes]) -> str:
    return p.stdout.decode(errors="replace")


@pytest.fixture
def db(tokenginx: RunningServer) -> Iterator[Any]:
    """A redis-py client on a spare database, emptied before and after."""
    client = redis.Redis(port=tokenginx.port, db=9, socket_timeout=30)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_one_shot_commands(tokenginx: RunningServer, db: redis.Redis) -> None:
    assert out(cli(tokenginx, "ping")) == "PONG\n"
    # Not a terminal, so redis-cli prints raw values unless told --no-raw.
    assert out(cli(tokenginx, "-n", "9", "set", "tool:k", "v 1")) == "OK\n"
    assert out(cli(tokenginx, "-n", "9", "get", "tool:k")) == "v 1\n"
    assert out(cli(tokenginx, "-n", "9", "--no-raw", "get", "tool:k")) == '"v 1"\n'
    assert out(cli(tokenginx, "-n", "9", "--no-raw", "incr", "tool:n")) == "(integer) 1\n"
    assert out(cli(tokenginx, "-n", "9", "--no-raw", "get", "tool:none")) == "(nil)\n"
    assert out(cli(tokenginx, "-n", "9", "--no-raw", "expire", "tool:k", "100")) == "(integer) 1\n"
    assert out(cli(tokenginx, "-n", "9", "ttl", "tool:k")) == "100\n"
    assert out(cli(tokenginx, "-n", "9", "dbsize")) == "2\n"
    assert db.get("tool:k") == b"v 1"


def test_interactive_session_on_stdin(tokenginx: RunningServer, db: redis.Redis) -> None:
    # redis-cli with no command reads commands from a non-terminal stdin (and sends the
    # COMMAND DOCS it uses for hints when it starts).
    p = cli(tokenginx, "-n", "9", input=b'set tool:i "x y"\nget tool:i\nselect 9\nexists tool:i\n')
    assert p.returncode == 0, p.stderr
    assert out(p) == "OK\nx y\nOK\n1\n"


def _check_pipe_result(p: subprocess.CompletedProcess[bytes], db: redis.Redis) -> None:
    assert p.returncode == 0, p.stderr
    text = out(p)
    assert "All data transferred" in text
    assert f"errors: 0, replies: {MASS_KEYS}" in text, text
    assert db.dbsize() == MASS_KEYS


def test_pipe_inline_mass_insertion(tokenginx: RunningServer, db: redis.Redis) -> None:
    data = b"".join(b"SET inline:%d value-%d\r\n" % (i, i) for i in range(MASS_KEYS))
    _check_pipe_result(cli(tokenginx, "-n", "9", "--pipe", input=data), db)
    assert db.get("inline:9999") == b"value-9999"


def test_pipe_multibulk_mass_insertion(tokenginx: RunningServer, db: redis.Redis) -> None:
    def frame(*args: bytes) -> bytes:
        return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)

    data = b"".join(
        frame(b"SET", b"mbulk:%d" % i, b"bin\x00\r\nvalue-%d" % i) for i in range(MASS_KEYS)
    )
    _check_pipe_result(cli(tokenginx, "-n", "9", "--pipe", input=data), db)
    assert db.get("mbulk:1234") == b"bin\x00\r\nvalue-1234"


def test_scan_with_pattern(tokenginx: RunningServer, db: redis.Redis) -> None:
    db.mset({f"scan:a:{i}": i for i in range(300)})
    db.mset({f"scan:b:{i}": i for i in range(300)})
    p = cli(tokenginx, "-n", "9", "--scan", "--pattern", "scan:a:*")
    assert p.returncode == 0, p.stderr
    keys = out(p).split()
    assert len(keys) == len(set(keys)) == 300  # every key once, nothing else
    assert set(keys) == {f"scan:a:{i}" for i in range(300)}
    p = cli(tokenginx, "-n", "9", "--scan", "--pattern", "scan:b:1?")
    assert sorted(out(p).split()) == sorted(f"scan:b:{i}" for i in range(10, 20))


def test_resp3_mode(tokenginx: RunningServer, db: redis.Redis) -> None:
    p = cli(tokenginx, "-3", "--no-raw", "config", "get", "maxmemory")
    assert (p.returncode, out(p)) == (0, '1# "maxmemory" => "0"\n')
    p = cli(tokenginx, "-3", "--no-raw", "hello", "3")
    assert '# "proto" => (integer) 3\n' in out(p)
    db.set("tool:r3", "v")
    p = cli(tokenginx, "-3", "-n", "9", "--no-raw", "get", "tool:r3")
    assert out(p) == '"v"\n'
    p = cli(tokenginx, "-3", "-n", "9", "--no-raw", "get", "tool:none")
    assert out(p) == "(nil)\n"


def test_raw_mode(tokenginx: RunningServer, db: redis.Redis) -> None:
    db.mset({"raw:a": "1", "raw:b": "two words"})
    p = cli(tokenginx, "-n", "9", "--raw", "mget", "raw:a", "raw:b", "raw:none")
    assert out(p) == "1\ntwo words\n\n"
    p = cli(tokenginx, "-n", "9", "--raw", "nosuchcommand")
    assert out(p).startswith("ERR unknown command 'nosuchcommand'")


def test_info(tokenginx: RunningServer, db: redis.Redis) -> None:
    db.set("info:k", "v")
    text = out(cli(tokenginx, "info"))
    sections = re.findall(r"^# (\w+)\r?$", text, re.M)
    for name in ("Server", "Clients", "Memory", "Stats", "Keyspace"):
        assert name in sections
    fields = dict(
        line.split(":", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert re.fullmatch(r"7\.\d+\.\d+\r?", fields["redis_version"])
    assert int(fields["connected_clients"]) >= 1
    assert re.match(r"keys=1,expires=0", fields["db9"])
    keyspace = out(cli(tokenginx, "info", "keyspace")).splitlines()
    assert keyspace[0].rstrip("\r") == "# Keyspace"


def test_error_exit_code(tokenginx: RunningServer) -> None:
    # -e turns an error reply into exit status 1 (and prints it to stderr).
    p = cli(tokenginx, "-e", "nosuchcommand")
    assert p.returncode == 1
    assert b"ERR unknown command 'nosuchcommand'" in p.stderr
    p = cli(tokenginx, "-e", "get")
    assert p.returncode == 1
    assert b"ERR wrong number of arguments for 'get' command" in p.stderr
    assert cli(tokenginx, "-e", "ping").returncode == 0
    assert cli(tokenginx, "nosuchcommand").returncode == 0  # without -e redis-cli exits 0


BENCH_TESTS = ("PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET (10 keys)")


def test_redis_benchmark(tokenginx: RunningServer) -> None:
    p = subprocess.run(
        [
            tool("redis-benchmark"),
            "-p",
            str(tokenginx.port),
            "-t",
            "ping,set,get,incr,mset",
            "-n",
            "2000",
            "-q",
        ],
        capture_output=True,
        timeout=300,
    )
    # -q redraws a progress line with \r; the final line of each test ends with \n.
    text = (p.stdout + p.stderr).decode(errors="replace").replace("\r", "\n")
    assert p.returncode == 0, text
    results = dict(
        re.findall(r"^\s*([A-Z_]+(?: \(10 keys\))?): ([\d.]+) requests per second", text, re.M)
    )
    assert set(results) == set(BENCH_TESTS), text
    assert all(float(rps) > 0 for rps in results.values()), results
    assert not re.search(r"error|warning|could not", text, re.I), text
