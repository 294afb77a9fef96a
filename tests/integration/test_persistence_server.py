"""Persistence of a real server process: restarts, commands, damage and a full disk."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import (
    RunningServer,
    free_port,
    start_tokenginx,
    stop_process,
    wait_for_ping,
)

# -- helpers -------------------------------------------------------------------------------


def server_args(port: int, data_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tokenginx.cli.server_main",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--data-dir",
        str(data_dir),
        "--log-level",
        "warn",
        *extra,
    ]


class Launcher:
    """Starts servers on a data directory and makes sure none outlives the test."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(
        self, data_dir: Path, *extra: str, preexec_fn: Callable[[], None] | None = None
    ) -> RunningServer:
        port = free_port()
        args = server_args(port, data_dir, *extra)
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=preexec_fn
        )
        self.procs.append(proc)
        wait_for_ping(port, proc)
        return RunningServer(port, proc, str(data_dir), args)

    def run_to_exit(self, data_dir: Path, *extra: str, timeout: float = 20) -> tuple[int, str]:
        """Start a server that is expected to refuse to start."""
        proc = subprocess.Popen(
            server_args(free_port(), data_dir, *extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.procs.append(proc)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"the server did not exit: {err.decode(errors='replace')}")
        return proc.returncode, err.decode(errors="replace")

    def cleanup(self) -> None:
        for proc in self.procs:
            stop_process(proc)


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    lau = Launcher()
    yield lau
    lau.cleanup()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def sigterm(srv: RunningServer) -> str:
    """Clean shutdown; returns what the server wrote on stderr."""
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=15) == 0
    err = srv.proc.stderr.read().decode(errors="replace") if srv.proc.stderr else ""
    stop_process(srv.proc)
    assert "Traceback" not in err, err
    return err


def sigkill(srv: RunningServer) -> None:
    srv.proc.kill()
    srv.proc.wait(timeout=15)
    stop_process(srv.proc)


def client(srv: RunningServer) -> redis.Redis:
    return redis.Redis(port=srv.port, socket_timeout=10)


def raw_command(port: int, *args: str) -> bytes:
    """One command, its one-line reply unparsed (status, error or integer)."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        out = b""
        while not out.endswith(b"\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
    return out


def fill(r: redis.Redis) -> None:
    r.set("plain", "v")
    r.set("", "")
    r.set(b"\x00bin\xff", bytes(range(256)))
    r.set("ttl", "t", ex=3600)
    r.hset("h", mapping={f"f{i}": f"v{i}" for i in range(200)})
    r.sadd("s", *[f"m{i}" for i in range(200)])
    r.incrby("counter", 42)
    r.rename("plain", "renamed")
    r.set("gone", "1")
    r.delete("gone")
    r3 = redis.Redis(port=r.connection_pool.connection_kwargs["port"], db=3, socket_timeout=10)
    r3.set("in-db3", "3")
    r3.close()
    r.swapdb(3, 4)


def check(r: redis.Redis) -> None:
    assert r.get("renamed") == b"v"
    assert r.get("plain") is None and r.get("gone") is None
    assert r.get("") == b""
    assert r.get(b"\x00bin\xff") == bytes(range(256))
    assert 3590 <= r.ttl("ttl") <= 3600
    assert r.hgetall("h") == {f"f{i}".encode(): f"v{i}".encode() for i in range(200)}
    assert r.smembers("s") == {f"m{i}".encode() for i in range(200)}
    assert r.get("counter") == b"42"
    r4 = redis.Redis(port=r.connection_pool.connection_kwargs["port"], db=4, socket_timeout=10)
    assert r4.get("in-db3") == b"3"
    assert r4.dbsize() == 1
    r4.close()


# -- restarts ------------------------------------------------------------------------------
def test_data_survives_sigterm_restart_and_last_data_dir_flag_wins(data_dir):
    # start_tokenginx passes its own --data-dir first; argparse keeps the last one.
    srv = start_tokenginx("--data-dir", str(data_dir))
    own_dir = srv.data_dir
    try:
        r = client(srv)
        fill(r)
        r.close()
        assert os.listdir(own_dir) == []
        assert os.listdir(data_dir) == ["log-0000000001.tgx"]
        sigterm(srv)
        # The final snapshot compacted the log.
        assert sorted(os.listdir(data_dir)) == ["log-0000000002.tgx", "snapshot-0000000002.tgx"]
        srv = start_tokenginx("--data-dir", str(data_dir))
        shutil.rmtree(srv.data_dir, ignore_errors=True)
        r = client(srv)
        check(r)
        info = r.info("persistence")
        assert info["aof_enabled"] == 1 and info["loading"] == 0
        assert info["persistence_dir"] == str(data_dir)
        r.close()
        sigterm(srv)
    finally:
        stop_process(srv.proc)
        shutil.rmtree(own_dir, ignore_errors=True)


@pytest.mark.parametrize("fsync", ["always", "no"])
def test_acknowledged_writes_survive_sigkill(launcher, data_dir, fsync):
    srv = launcher.start(data_dir, "--fsync", fsync)
    r = client(srv)
    fill(r)
    pipe = r.pipeline(transaction=False)
    for i in range(2000):
        pipe.set(f"k{i}", i)
    pipe.execute()
    r.set("last", "acknowledged")
    r.close()
    sigkill(srv)  # no final snapshot: everything comes from the log
    assert sorted(os.listdir(data_dir)) == ["log-0000000001.tgx"]
    srv = launcher.start(data_dir)
    r = client(srv)
    check(r)
    assert r.get("last") == b"acknowledged"
    assert r.mget([f"k{i}" for i in range(2000)]) == [str(i).encode() for i in range(2000)]
    assert r.info("persistence")["loading_recovered_records"] >= 2000
    r.close()
    sigterm(srv)


def test_no_persistence_writes_no_files(launcher, tmp_path):
    data_dir = tmp_path / "never-created"
    srv = launcher.start(data_dir, "--no-persistence")
    r = client(srv)
    r.set("k", "v")
    assert r.info("persistence")["aof_enabled"] == 0
    with pytest.raises(redis.ResponseError, match="persistence is disabled"):
        r.save()
    assert raw_command(srv.port, "BGSAVE").startswith(b"-ERR persistence is disabled")
    assert r.lastsave() is not None
    r.close()
    sigterm(srv)
    assert not data_dir.exists()
    assert os.listdir(tmp_path) == []


# -- commands ------------------------------------------------------------------------------
def _wait_bgsave(r: redis.Redis) -> dict:
    deadline = time.monotonic() + 10
    while True:
        info = r.info("persistence")
        if info["rdb_bgsave_in_progress"] == 0 or time.monotonic() > deadline:
            return info
        time.sleep(0.02)


def test_save_bgsave_bgrewriteaof_lastsave_and_info(launcher, data_dir):
    srv = launcher.start(data_dir)
    r = client(srv)
    info = r.info("persistence")
    assert info["aof_enabled"] == 1
    assert info["rdb_last_bgsave_status"] == "ok"
    assert info["aof_last_write_status"] == "ok"
    assert info["aof_fsync_policy"] == "everysec"
    assert info["rdb_bgsave_in_progress"] == 0
    r.set("k", "v")
    assert r.info("persistence")["rdb_changes_since_last_save"] >= 1
    t0 = int(time.time())
    assert raw_command(srv.port, "SAVE") == b"+OK\r\n"
    assert t0 - 1 <= r.lastsave().timestamp() <= time.time() + 1
    assert raw_command(srv.port, "LASTSAVE").startswith(b":")
    info = r.info("persistence")
    assert info["rdb_changes_since_last_save"] == 0 and info["rdb_saves"] == 1
    assert sorted(os.listdir(data_dir)) == ["log-0000000002.tgx", "snapshot-0000000002.tgx"]

    r.set("k2", "v2")
    assert raw_command(srv.port, "BGSAVE") == b"+Background saving started\r\n"
    info = _wait_bgsave(r)
    assert info["rdb_bgsave_in_progress"] == 0
    assert info["rdb_last_bgsave_status"] == "ok" and info["rdb_saves"] == 2
    assert raw_command(srv.port, "BGREWRITEAOF") == (
        b"+Background append only file rewriting started\r\n"
    )
    info = _wait_bgsave(r)
    assert info["aof_last_bgrewrite_status"] == "ok" and info["rdb_saves"] == 3
    assert info["aof_last_write_status"] == "ok"
    # Compaction: only the newest snapshot and the segments after it are left.
    deadline = time.monotonic() + 5
    while len(os.listdir(data_dir)) > 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # the parent reaps the child on its next 100 ms tick
    assert sorted(os.listdir(data_dir)) == ["log-0000000004.tgx", "snapshot-0000000004.tgx"]
    r.set("k3", "v3")
    r.close()
    sigkill(srv)
    srv = launcher.start(data_dir)
    r = client(srv)
    assert r.mget("k", "k2", "k3") == [b"v", b"v2", b"v3"]
    r.close()


# -- damage ----------------------------------------------------------------------------------
def _frame_offsets(data: bytes) -> list[int]:
    from tokenginx.storage.persistence import records as rec

    pos, out = rec.HEADER_SIZE, []
    while pos + 8 <= len(data):
        out.append(pos)
        pos += 8 + int.from_bytes(data[pos : pos + 4], "little")
    return out


def test_damaged_log_refuses_to_start_until_repair(launcher, data_dir):
    srv = launcher.start(data_dir)
    r = client(srv)
    for name in ("first", "second", "third"):
        r.set(name, name * 10)  # one write per loop iteration: one frame each
    r.close()
    sigkill(srv)
    seg = data_dir / "log-0000000001.tgx"
    data = bytearray(seg.read_bytes())
    offsets = _frame_offsets(bytes(data))
    assert len(offsets) == 3
    data[offsets[1] + 20] ^= 0x01
    seg.write_bytes(bytes(data))

    rc, err = launcher.run_to_exit(data_dir)
    assert rc != 0
    assert "persistence.repair" in err and "log-0000000001.tgx" in err, err
    assert "Traceback" not in err, err
    assert seg.read_bytes() == bytes(data)  # refusing changed nothing

    srv = launcher.start(data_dir, "--set", "persistence.repair=true")
    r = client(srv)
    assert r.mget("first", "second", "third") == [b"first" * 10, None, b"third" * 10]
    r.set("fourth", "4")
    r.close()
    err = sigterm(srv)
    assert "skipped" in err  # the repair is logged
    # The clean shutdown's snapshot holds the repaired state: a normal start works.
    srv = launcher.start(data_dir)
    r = client(srv)
    assert r.mget("first", "second", "third", "fourth") == [
        b"first" * 10,
        None,
        b"third" * 10,
        b"4",
    ]
    r.close()
    sigterm(srv)


def test_damaged_snapshot_header_gives_a_clear_message(launcher, data_dir):
    srv = launcher.start(data_dir)
    client(srv).set("k", "v")
    sigterm(srv)
    snap = data_dir / "snapshot-0000000002.tgx"
    data = bytearray(snap.read_bytes())
    data[3] ^= 0x01
    snap.write_bytes(bytes(data))
    rc, err = launcher.run_to_exit(data_dir)
    assert rc == 3, err  # EXIT_STARTUP_FAILURE
    assert "Traceback" not in err, err
    assert "cannot load the data directory" in err and "persistence.repair" in err, err
    srv = launcher.start(data_dir, "--set", "persistence.repair=true")
    client(srv).set("after-repair", "1")
    sigterm(srv)


# -- a full disk ------------------------------------------------------------------------------
FSIZE_LIMIT = 64 * 1024


def limit_file_size() -> None:
    # Soft limit only: lifting it later needs no CAP_SYS_RESOURCE. SIGXFSZ ignored, so
    # writes past the limit fail with EFBIG instead of killing the process.
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, resource.RLIM_INFINITY))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def lift_file_size_limit(pid: int) -> None:
    if shutil.which("prlimit"):
        subprocess.run(["prlimit", "--pid", str(pid), "--fsize=unlimited"], check=True)
    else:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)


def test_disk_full_refuses_writes_with_misconf_then_resumes(launcher, data_dir):
    srv = launcher.start(data_dir, preexec_fn=limit_file_size)
    r = client(srv)
    acked: dict[str, bytes] = {}
    # 1. Write until a write fails: the failure is MISCONF, never a silent +OK.
    error = None
    for i in range(1000):
        value = b"%04d" % i * 256
        try:
            r.set(f"k{i}", value)
        except redis.ResponseError as e:
            error = str(e)
            break
        acked[f"k{i}"] = value
    assert error is not None and error.startswith("MISCONF"), error
    assert "File too large" in error
    assert 30 < len(acked) < 200
    # 2. The log stays failing: every write is refused, over several of the cron's
    #    retries (every 100 ms), from this client and from a new one.
    other = client(srv)
    for _ in range(5):
        with pytest.raises(redis.ResponseError, match="^MISCONF"):
            r.set("refused", "1")
        with pytest.raises(redis.ResponseError, match="^MISCONF"):
            other.hset("refused-h", "f", "v")
        time.sleep(0.1)
    # Reads go on.
    assert r.get("k0") == acked["k0"]
    assert other.mget(list(acked)[-3:]) == list(acked.values())[-3:]
    assert r.exists("refused", "refused-h") == 0
    info = other.info("persistence")
    assert info["aof_last_write_status"] == "err"
    assert "File too large" in str(info["aof_last_write_error"])
    files = len(os.listdir(data_dir))
    # 3. Space again: writes are accepted within ~2 s, without a restart.
    lift_file_size_limit(srv.pid)
    deadline = time.monotonic() + 2
    while True:
        try:
            r.set("after", "1")
            break
        except redis.ResponseError:
            assert time.monotonic() < deadline, "writes still refused 2 s after the space came back"
            time.sleep(0.05)
    acked["after"] = b"1"
    assert other.info("persistence")["aof_last_write_status"] == "ok"
    assert len(os.listdir(data_dir)) <= files + 1  # retrying did not litter the data dir
    r.close()
    other.close()
    # 4. Everything acknowledged is in the log; what was refused is not.
    sigkill(srv)
    srv = launcher.start(data_dir)
    r = client(srv)
    keys = list(acked)
    assert r.mget(keys) == [acked[k] for k in keys]
    assert r.exists("refused", "refused-h") == 0
    r.close()


def test_disk_full_retries_do_not_fill_the_data_dir(launcher, data_dir):
    srv = launcher.start(data_dir, preexec_fn=limit_file_size)
    r = client(srv)
    r.set("small", "1")
    # No log file can ever hold this value: the log write keeps failing.
    with pytest.raises(redis.ResponseError, match="^MISCONF"):
        r.set("big", b"B" * (2 * FSIZE_LIMIT))
    first = sorted(os.listdir(data_dir))
    time.sleep(1.0)  # ten cron retries
    later = sorted(os.listdir(data_dir))
    fds = len(os.listdir(f"/proc/{srv.pid}/fd"))
    time.sleep(0.5)
    assert len(os.listdir(f"/proc/{srv.pid}/fd")) <= fds + 1  # no descriptor leak
    with pytest.raises(redis.ResponseError, match="^MISCONF"):
        r.set("refused", "1")
    assert r.get("small") == b"1"
    r.close()
    sigkill(srv)
    assert len(later) <= len(first) + 1, f"{first} then {later}"
    # A crash in that state loses nothing acknowledged and starts cleanly.
    srv = launcher.start(data_dir)
    r = client(srv)
    assert r.get("small") == b"1" and r.exists("refused") == 0
    r.close()
