"""SIGKILL the server under load: no acknowledged write may be lost, under any fsync policy.

The load/kill/verify machinery lives in ``benchmarks/crash_harness.py`` (also a CLI
for longer runs). The seed of every round is in the failure message; set
``TOKENGINX_CRASH_SEED`` to replay a run's choices (timing still varies).
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import crash_harness as ch  # noqa: E402

SEED = int(os.environ.get("TOKENGINX_CRASH_SEED") or random.SystemRandom().getrandbits(32))


@pytest.fixture
def data_dir() -> Iterator[str]:
    root = tempfile.mkdtemp(prefix="tokenginx-crash-test-")
    yield os.path.join(root, "data")
    shutil.rmtree(root, ignore_errors=True)


def _describe(res: ch.RoundResult) -> str:
    return (
        f"policy={res.policy} variant={res.variant} kill={res.kill_mode} seed={res.seed}"
        f" (run seed {SEED}) after {res.kill_after_s}s: acked={res.writes_acked}"
        f" checked={res.keys_checked} lost={res.lost} wrong={res.wrong} extra={res.extra_keys}"
        f"\n  " + "\n  ".join(res.problems)
    )


@pytest.mark.parametrize("policy", ch.POLICIES)
def test_no_acknowledged_write_lost_after_sigkill(policy: str) -> None:
    rng = random.Random(f"{SEED}-{policy}")
    shift = ch.POLICIES.index(policy)
    for n, variant in enumerate(ch.VARIANTS, start=1):
        res = ch.run_round(
            policy,
            variant,
            rng.getrandbits(64),
            round_no=n,
            threads=4,
            min_seconds=0.3,
            max_seconds=1.0,
            # Over the three policies every variant is killed both ways.
            kill_mode=ch.KILL_MODES[(n + shift) % 2],
        )
        assert res.writes_acked > 0, _describe(res)
        assert res.keys_checked > 0, _describe(res)
        assert res.lost == 0, _describe(res)
        assert res.wrong == 0, _describe(res)
        assert res.extra_keys == 0, _describe(res)
        assert res.second_restart_ok, _describe(res)
        assert res.truncated_bytes >= 0 and res.recovery_s >= 0, _describe(res)


def _info(port: int) -> dict:
    r = ch.client(port)
    try:
        return r.info("persistence")
    finally:
        r.close()


def _segments(directory: str) -> list[str]:
    return sorted(glob.glob(os.path.join(directory, "log-*.tgx")))


def test_restart_after_sigkill_reports_truncation_and_accepts_writes(data_dir: str) -> None:
    server = ch.ServerProcess(data_dir, "everysec")
    try:
        server.start()
        logs = [ch.WriterLog(t) for t in range(2)]
        stop = threading.Event()
        workers = [
            threading.Thread(target=ch.writer, args=(server.port, logs[t], SEED + t, stop))
            for t in range(2)
        ]
        for w in workers:
            w.start()
        time.sleep(0.4)
        server.kill("server")
        stop.set()
        for w in workers:
            w.join(timeout=30)
        assert sum(w.acked for w in logs) > 0

        # A SIGKILL rarely tears a write() to a regular file, so also simulate one: the
        # first half of a frame at the end of the newest segment.
        newest = _segments(data_dir)[-1]
        intact_size = os.path.getsize(newest)
        torn = struct.pack("<II", 64, 0) + b"torn-half-of-a-record"
        with open(newest, "ab") as f:
            f.write(torn)

        server.start()
        info = _info(server.port)
        assert int(info["loading_truncated_bytes"]) == len(torn)
        assert float(info["loading_time_sec"]) >= 0
        assert int(info["loading_recovered_records"]) > 0
        assert os.path.getsize(newest) == intact_size  # the torn frame was cut off
        check = ch.verify(server.port, logs)
        assert (check.lost, check.wrong, check.extra_keys) == (0, 0, 0), check.problems

        r = ch.client(server.port)
        try:
            assert r.set("after:crash", "still-writable") is True
            assert r.incr("after:counter") == 1
            assert r.get("after:crash") == b"still-writable"
        finally:
            r.close()

        # Those writes are acknowledged too: they survive the next SIGKILL.
        server.kill("server")
        server.start()
        info = _info(server.port)
        assert int(info["loading_truncated_bytes"]) >= 0
        r = ch.client(server.port)
        try:
            assert r.get("after:crash") == b"still-writable"
            assert r.get("after:counter") == b"1"
            assert r.set("after:second", "ok") is True
        finally:
            r.close()
        check = ch.verify(server.port, logs)
        assert (check.lost, check.wrong) == (0, 0), check.problems
    finally:
        server.close()


def test_sigkill_during_bgsave_leaves_no_tmp_snapshot_loaded(data_dir: str) -> None:
    keys = 200_000
    server = ch.ServerProcess(data_dir, "everysec")
    try:
        server.start()
        r = ch.client(server.port, timeout=30)
        try:
            for b in range(keys // 5000):
                r.mset({f"k:{b}:{i}": f"value-{b}-{i}-" + "x" * 100 for i in range(5000)})
            assert r.dbsize() == keys
            assert r.bgsave()
        finally:
            r.close()
        # Wait until the forked child has written part of its temporary file, then kill
        # the whole process group (server and child) with SIGKILL.
        deadline = time.monotonic() + 20
        tmp: list[str] = []
        while time.monotonic() < deadline:
            tmp = glob.glob(os.path.join(data_dir, "snapshot-*.tmp"))
            if tmp and os.path.getsize(tmp[0]) > 0:
                break
            time.sleep(0.002)
        assert tmp, "the BGSAVE child never wrote its temporary file"
        assert server.proc is not None
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        time.sleep(0.1)  # let the kernel finish tearing down the child
        left = glob.glob(os.path.join(data_dir, "snapshot-*.tmp"))
        assert left, "the snapshot finished before the kill; make the dataset bigger"
        assert not glob.glob(os.path.join(data_dir, "snapshot-*.tgx")), os.listdir(data_dir)

        server.start()
        assert not glob.glob(os.path.join(data_dir, "*.tmp")), os.listdir(data_dir)
        r = ch.client(server.port, timeout=30)
        try:
            assert r.dbsize() == keys
            for b, i in [(0, 0), (17, 4321), (keys // 5000 - 1, 4999)]:
                assert r.get(f"k:{b}:{i}") == f"value-{b}-{i}-".encode() + b"x" * 100
            assert r.set("after:bgsave-crash", "1") is True
            # And the next snapshot works and compacts the log.
            assert r.bgsave()
            deadline = time.monotonic() + 30
            while int(r.info("persistence")["rdb_bgsave_in_progress"]):
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert r.info("persistence")["rdb_last_bgsave_status"] == "ok"
        finally:
            r.close()
        snapshots = glob.glob(os.path.join(data_dir, "snapshot-*.tgx"))
        assert len(snapshots) == 1, os.listdir(data_dir)

        server.kill("group")
        server.start()
        r = ch.client(server.port, timeout=30)
        try:
            assert r.dbsize() == keys + 1
            assert r.get("after:bgsave-crash") == b"1"
        finally:
            r.close()
    finally:
        server.close()


def test_write_that_fails_to_reach_the_log_is_not_acknowledged(data_dir: str) -> None:
    """A full disk, modelled by RLIMIT_FSIZE (Python ignores SIGXFSZ, so write() fails
    with EFBIG): a SET whose record cannot be written must not get +OK."""
    import resource
    import subprocess

    import redis

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    port = ch.free_port()
    argv = [sys.executable, "-m", "tokenginx.cli.server_main", "--port", str(port)]
    argv += ["--bind", ch.HOST, "--data-dir", data_dir, "--fsync", "always"]
    argv += ["--log-level", "error"]
    proc = subprocess.Popen(
        argv,
        cwd=os.path.dirname(data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=small_files,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not ch._ping(port):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        r = ch.client(port)
        try:
            assert r.set("small", "fits") is True
            try:
                acked = r.set("big", "B" * 5000) is True  # its record cannot be written
            except redis.ResponseError:
                acked = False
        finally:
            r.close()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    server = ch.ServerProcess(data_dir, "always")
    try:
        server.start()
        r = ch.client(server.port)
        try:
            assert r.get("small") == b"fits"
            survived = r.get("big") is not None
        finally:
            r.close()
    finally:
        server.close()
    assert survived or not acked, "SET big was acknowledged, then lost after SIGKILL"
