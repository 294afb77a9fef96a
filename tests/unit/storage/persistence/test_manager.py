"""Persistence in process: journal → files → recovery, with a hand-moved clock.

The journal's ``schedule`` only records callbacks, so every test decides itself when an
event-loop iteration ends (``journal.commit()``).
"""

from __future__ import annotations

import copy
import errno
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GateHarness
from tokenginx.clock import ManualClock
from tokenginx.config import Config
from tokenginx.errors import CommandError, ExecAbortError
from tokenginx.replies import QUEUED
from tokenginx.storage.memory import MemoryKeyspace
from tokenginx.storage.persistence import journal as jmod
from tokenginx.storage.persistence import records as rec
from tokenginx.storage.persistence.journal import Journal
from tokenginx.storage.persistence.manager import Persistence, RecoveryError, RecoveryReport


# -- helpers -----------------------------------------------------------------------------
class Env:
    """One data directory, opened and reopened like a server would across restarts."""

    def __init__(self, directory: Path, clock: ManualClock) -> None:
        self.dir = directory
        self.clock = clock
        self.scheduled: list[Callable[[], None]] = []

    def open(
        self, keyspace: MemoryKeyspace | None = None, **kw: Any
    ) -> tuple[Persistence, Journal]:
        ks = keyspace if keyspace is not None else MemoryKeyspace(clock=self.clock)
        p = Persistence(ks, str(self.dir), fsync=kw.pop("fsync", "no"), **kw)
        p.recover()
        return p, p.start(self.scheduled.append)

    def reload(self, **kw: Any) -> tuple[MemoryKeyspace, RecoveryReport]:
        ks = MemoryKeyspace(clock=self.clock)
        report = Persistence(ks, str(self.dir), **kw).recover()
        return ks, report

    def files(self, prefix: str = "") -> list[str]:
        return sorted(n for n in os.listdir(self.dir) if n.startswith(prefix))

    def last_segment(self) -> Path:
        return self.dir / self.files("log-")[-1]


def dump(ks: MemoryKeyspace) -> dict[int, dict[bytes, tuple[Any, int | None]]]:
    """Every live key of every database with its deadline."""
    now = ks.clock()
    out: dict[int, dict[bytes, tuple[Any, int | None]]] = {}
    for db in ks.databases:
        keys = {}
        for k, v in db.data.items():
            when = db.expires.get(k)
            if when is not None and when <= now:
                continue
            keys[k] = (copy.copy(v), when)
        if keys:
            out[db.id] = keys
    return out


def frame_offsets(data: bytes) -> list[int]:
    pos, out = rec.HEADER_SIZE, []
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        out.append(pos)
        pos += 8 + length
    return out


def attach(h: GateHarness, directory: Path, **kw: Any) -> tuple[Persistence, Journal]:
    """Give an in-process server a running journal, as ``_start_persistence`` does."""
    p = Persistence(h.state.keyspace, str(directory), fsync=kw.pop("fsync", "no"), **kw)
    p.recover()
    j = p.start(lambda cb: None)
    j.on_error_change = h.gate.update_guard
    h.state.persistence = p
    return p, j


class FailingOs:
    """``os`` as the journal sees it, on a disk with ``room`` bytes left: writes are
    short once the room runs out, then fail with ENOSPC (like a real full disk)."""

    def __init__(self, room: int = 0, ftruncate_fails: bool = False) -> None:
        self.room = room
        self.failures = 0
        self.ftruncate_fails = ftruncate_fails

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        if self.room <= 0:
            self.failures += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        n = os.write(fd, bytes(data[: self.room]))
        self.room -= n
        return n

    def ftruncate(self, fd: int, length: int) -> None:
        if self.ftruncate_fails:
            raise OSError(errno.EIO, "Input/output error")
        os.ftruncate(fd, length)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def env(tmp_path: Path, clock: ManualClock) -> Env:
    return Env(tmp_path / "data", clock)


# -- the journal's contract ----------------------------------------------------------------
def test_commit_is_scheduled_once_per_iteration(env):
    p, j = env.open()
    db = p.keyspace.db(0)
    db.set_string(b"a", b"1")
    db.set_string(b"b", b"2")
    assert env.scheduled == [j.commit]
    assert j.pending
    j.commit()
    assert not j.pending
    db.set_string(b"c", b"3")
    assert env.scheduled == [j.commit, j.commit]
    p.close(final_snapshot=False)


def test_replies_are_released_only_after_the_write(env):
    p, j = env.open()
    seg = env.last_segment()
    size0 = seg.stat().st_size
    seen: list[tuple[str | None, int]] = []
    p.keyspace.db(0).set_string(b"k", b"v" * 100)
    j.after_commit(lambda error: seen.append((error, seg.stat().st_size)))
    assert seen == []
    j.commit()
    assert len(seen) == 1
    error, size = seen[0]
    assert error is None and size > size0 + 100
    p.close(final_snapshot=False)


def test_start_opens_a_new_segment_and_never_appends(env):
    p, j = env.open()
    p.keyspace.db(0).set_string(b"k", b"v")
    p.close(final_snapshot=False)
    assert env.files() == ["log-0000000001.tgx"]
    before = (env.dir / "log-0000000001.tgx").read_bytes()
    p2, j2 = env.open()
    assert j2.seq == 2
    p2.keyspace.db(0).set_string(b"k2", b"v")
    p2.close(final_snapshot=False)
    assert (env.dir / "log-0000000001.tgx").read_bytes() == before
    assert env.files() == ["log-0000000001.tgx", "log-0000000002.tgx"]


# -- round trips ---------------------------------------------------------------------------
def _fill(ks: MemoryKeyspace, now: int) -> None:
    db0, db1, db15 = ks.db(0), ks.db(1), ks.db(15)
    db0.set_string(b"plain", b"v")
    db0.set_string(b"", b"")
    db0.set_string(b"\x00bin\xff", bytes(range(256)))
    db0.set_string(b"ttl", b"t", expire_at=now + 60_000)
    h = db1.hash_for_write(b"h")
    h.update({b"f%d" % i: b"v%d" % i for i in range(5000)})
    h[b""] = b""
    db1.changed(b"h", "hset", "h")
    s = db15.set_for_write(b"s")
    s.update({b"m%d" % i for i in range(5000)} | {b""})
    db15.changed(b"s", "sadd", "s")
    db15.set_expire(b"s", now + 123_456)


@pytest.mark.parametrize("final_snapshot", [False, True])
def test_roundtrip_every_type(env, clock, final_snapshot):
    p, j = env.open()
    _fill(p.keyspace, clock())
    j.commit()
    expected = dump(p.keyspace)
    p.close(final_snapshot=final_snapshot)
    ks, report = env.reload()
    assert dump(ks) == expected
    assert ks.db(0).expires[b"ttl"] == clock() + 60_000
    assert (report.snapshot is not None) == final_snapshot


def test_close_flushes_what_was_never_committed(env):
    p, j = env.open()
    p.keyspace.db(0).set_string(b"k", b"v")
    p.close(final_snapshot=False)  # no commit: the end of the last iteration never came
    ks, _ = env.reload()
    assert ks.db(0).data == {b"k": b"v"}


@pytest.mark.parametrize("via_snapshot", [False, True])
def test_expiry_across_restart(env, clock, via_snapshot):
    p, j = env.open()
    db = p.keyspace.db(0)
    t0 = clock()
    db.set_string(b"short", b"1", expire_at=t0 + 1_000)
    db.set_string(b"long", b"2", expire_at=t0 + 10_000)
    db.set_string(b"forever", b"3")
    h = db.hash_for_write(b"h")
    h[b"f"] = b"v"
    db.changed(b"h", "hset", "h")
    db.set_expire(b"h", t0 + 2_000)
    j.commit()
    if via_snapshot:
        p.save()
    p.close(final_snapshot=False)
    clock.advance(5_000)  # "while down": short and h die, long does not
    ks, _ = env.reload()
    d = ks.db(0)
    assert set(d.data) == {b"long", b"forever"}
    assert d.expires == {b"long": t0 + 10_000}  # the exact deadline, not a new TTL
    assert d.pttl(b"long") == 5_000
    assert d.lookup(b"short") is None and d.lookup(b"h") is None


def test_key_expired_while_running_stays_dead(env, clock):
    p, j = env.open()
    db = p.keyspace.db(0)
    db.set_string(b"k", b"v", expire_at=clock() + 100)
    j.commit()
    clock.advance(200)
    assert p.keyspace.active_expire_cycle(10) is False
    assert db.size() == 0
    assert not j.pending  # expiry writes no record: the deadline is in the log
    p.close(final_snapshot=False)
    ks, _ = env.reload()
    assert ks.total_keys() == 0


def test_key_recreated_after_expiry_survives(env, clock):
    p, j = env.open()
    db = p.keyspace.db(0)
    db.set_string(b"k", b"old", expire_at=clock() + 100)
    j.commit()
    clock.advance(200)
    assert db.get_string(b"k") is None
    db.set_string(b"k", b"new")
    j.commit()
    p.close(final_snapshot=False)
    ks, _ = env.reload()
    assert ks.db(0).data == {b"k": b"new"} and ks.db(0).expires == {}


def test_database_operations_via_database_methods(env, clock):
    p, j = env.open()
    ks = p.keyspace
    t = clock()
    ks.db(0).set_string(b"a", b"1")
    ks.db(0).set_string(b"b", b"2", expire_at=t + 50_000)
    ks.db(1).set_string(b"c", b"3")
    j.commit()
    ks.swap(0, 1)  # db0: c ; db1: a, b
    ks.db(0).set_string(b"after-swap", b"x")
    ks.db(1).rename(b"b", b"b2")  # keeps its deadline
    ks.db(1).persist(b"b2")
    ks.db(1).set_expire(b"a", t + 70_000)
    j.commit()
    ks.db(2).set_string(b"gone", b"1")
    ks.db(2).flush()
    ks.db(2).set_string(b"kept", b"1")
    ks.db(1).delete(b"a")
    expected = dump(ks)
    j.commit()
    p.close(final_snapshot=False)
    got, _ = env.reload()
    assert dump(got) == expected
    assert expected == {
        0: {b"c": (b"3", None), b"after-swap": (b"x", None)},
        1: {b"b2": (b"2", None)},
        2: {b"kept": (b"1", None)},
    }
    # FLUSHALL, then new writes: only those come back.
    p, j = env.open(MemoryKeyspace(clock=clock))
    assert dump(p.keyspace) == expected
    p.keyspace.db(3).set_string(b"doomed", b"1")
    p.keyspace.flush_all()
    p.keyspace.db(4).set_string(b"new", b"1")
    p.close(final_snapshot=False)
    got, _ = env.reload()
    assert dump(got) == {4: {b"new": (b"1", None)}}


COMMANDS: list[tuple[Any, ...]] = [
    ("SET", "a", "1"),
    ("SET", "b", "2"),
    ("SET", "c", "3", "EX", "100"),
    ("SET", "", ""),
    ("SET", b"\x00bin", b"\xff\x00"),
    ("HSET", "h", "f", "v", "g", "w"),
    ("SADD", "s", "x", "y", "z"),
    ("INCR", "counter"),
    ("INCRBY", "counter", "41"),
    ("APPEND", "a", "-appended"),
    ("SETRANGE", "b", "3", "xyz"),
    ("EXPIRE", "a", "50"),
    ("PERSIST", "c"),
    ("PEXPIRE", "b", "777"),
    ("RENAME", "b", "b2"),
    ("RENAME", "h", "h2"),
    ("RENAMENX", "s", "s2"),
    ("HDEL", "h2", "g"),
    ("SREM", "s2", "z"),
    ("SET", "gone", "1"),
    ("DEL", "gone"),
    ("SET", "expired-now", "1"),
    ("EXPIRE", "expired-now", "-1"),
    ("SET", "getex", "1", "EX", "10"),
    ("GETEX", "getex", "PERSIST"),
    ("SET", "getdel", "1"),
    ("GETDEL", "getdel"),
    ("SADD", "u1", "1", "2"),
    ("SADD", "u2", "2", "3"),
    ("SUNIONSTORE", "u3", "u1", "u2"),
    ("SMOVE", "u1", "u2", "1"),
    ("COPY", "h2", "h-copy", "DB", "5"),
    ("SELECT", "1"),
    ("SET", "one", "1"),
    ("HSET", "oneh", "f", "v"),
    ("SELECT", "0"),
    ("SWAPDB", "0", "1"),
    ("SET", "in-db0-after-swap", "1"),
    ("SELECT", "1"),
    ("SET", "in-db1-after-swap", "1"),
    ("DEL", "counter"),
    ("SELECT", "2"),
    ("SET", "two", "2"),
    ("FLUSHDB",),
    ("SET", "two-after-flush", "2"),
    ("SELECT", "3"),
    ("SET", "three", "3"),
    ("SWAPDB", "3", "4"),
    ("SWAPDB", "3", "4"),
    ("SWAPDB", "3", "4"),
    ("SELECT", "0"),
]


@pytest.mark.parametrize("commit", ["each", "end", "never"])
@pytest.mark.parametrize("final_snapshot", [False, True])
def test_real_commands_recover_to_the_live_state(tmp_path, commit, final_snapshot):
    h = GateHarness(Config())
    p, j = attach(h, tmp_path)
    for argv in COMMANDS:
        h.ok(*argv)
        if commit == "each":
            j.commit()
    if commit == "end":
        j.commit()
    expected = dump(h.state.keyspace)
    assert expected[4] == {b"three": (b"3", None)}
    assert b"one" in expected[0] and b"in-db0-after-swap" in expected[0]
    p.close(final_snapshot=final_snapshot)
    ks = MemoryKeyspace(clock=h.clock)
    Persistence(ks, str(tmp_path)).recover()
    assert dump(ks) == expected


def test_flushall_command_then_writes(tmp_path):
    h = GateHarness(Config())
    p, j = attach(h, tmp_path)
    for argv in [
        ("SET", "a", "1"),
        ("SELECT", "7"),
        ("SET", "b", "2"),
        ("FLUSHALL",),
        ("SET", "c", "3"),
        ("SELECT", "0"),
        ("HSET", "h", "f", "v"),
    ]:
        h.ok(*argv)
    j.commit()
    p.close(final_snapshot=False)
    ks = MemoryKeyspace(clock=h.clock)
    Persistence(ks, str(tmp_path)).recover()
    assert dump(ks) == {7: {b"c": (b"3", None)}, 0: {b"h": ({b"f": b"v"}, None)}}


def test_expire_command_deadline_survives_restart(tmp_path):
    h = GateHarness(Config())
    p, j = attach(h, tmp_path)
    h.ok("SET", "session", "data")
    h.ok("PEXPIRE", "session", "30000")
    h.ok("SET", "short", "data", "PX", "1000")
    j.commit()
    deadline = h.state.keyspace.db(0).expires[b"session"]
    p.close(final_snapshot=False)
    h.clock.advance(10_000)
    ks = MemoryKeyspace(clock=h.clock)
    Persistence(ks, str(tmp_path)).recover()
    assert ks.db(0).expires == {b"session": deadline}
    assert ks.db(0).pttl(b"session") == 20_000


# -- snapshots and the log -------------------------------------------------------------------
def test_save_compacts_and_later_segments_are_replayed(env):
    p, j = env.open()
    db = p.keyspace.db(0)
    for i in range(100):
        db.set_string(b"k%d" % i, b"v%d" % i)
    j.commit()
    assert env.files() == ["log-0000000001.tgx"]
    p.save()
    assert env.files() == ["log-0000000002.tgx", "snapshot-0000000002.tgx"]
    for i in range(50, 150):
        db.set_string(b"k%d" % i, b"new%d" % i)
    db.delete(b"k0")
    p.keyspace.swap(0, 1)
    j.commit()
    p.save()  # the older snapshot and its segments go
    assert env.files() == ["log-0000000003.tgx", "snapshot-0000000003.tgx"]
    p.keyspace.db(1).set_string(b"after-second-save", b"1")
    expected = dump(p.keyspace)
    p.close(final_snapshot=False)
    ks, report = env.reload()
    assert dump(ks) == expected
    assert report.snapshot == "snapshot-0000000003.tgx"
    assert report.snapshot_keys == 149
    assert report.segments == 1 and report.records == 1
    assert p.status.saves == 2 and p.status.last_status == "ok"


def test_snapshot_skips_keys_already_expired(env, clock):
    p, j = env.open()
    db = p.keyspace.db(0)
    db.set_string(b"dead", b"1", expire_at=clock() + 10)
    db.set_string(b"alive", b"1", expire_at=clock() + 10_000)
    j.commit()
    clock.advance(20)  # dead is due but not reclaimed yet
    p.save()
    p.close(final_snapshot=False)
    ks, report = env.reload()
    assert report.snapshot_keys == 1
    assert set(ks.db(0).data) == {b"alive"}


def test_bgsave_snapshot_plus_writes_made_meanwhile(env):
    p, j = env.open()
    db = p.keyspace.db(0)
    for i in range(1000):
        db.set_string(b"k%d" % i, b"before")
    j.commit()
    assert p.bgsave() is True
    assert p.bgsave() is False  # one at a time
    for i in range(500, 1500):
        db.set_string(b"k%d" % i, b"during")
    j.commit()
    deadline = time.monotonic() + 10
    while p.saving and time.monotonic() < deadline:
        p.poll_child()
        time.sleep(0.01)
    assert not p.saving
    assert p.status.last_status == "ok" and p.status.saves == 1
    assert env.files() == ["log-0000000002.tgx", "snapshot-0000000002.tgx"]
    expected = dump(p.keyspace)
    p.close(final_snapshot=False)
    ks, report = env.reload()
    assert report.snapshot_keys == 1000  # the image of the fork's instant
    assert dump(ks) == expected


def test_crash_before_snapshot_rename_is_ignored(env):
    p, j = env.open()
    p.keyspace.db(0).set_string(b"k", b"v")
    p.save()
    p.keyspace.db(0).set_string(b"k2", b"v2")
    p.close(final_snapshot=False)
    # A later snapshot that crashed before its rename: half written, never complete.
    tmp = env.dir / "snapshot-0000000003.tmp"
    tmp.write_bytes(rec.encode_header(rec.SNAPSHOT_MAGIC, 3, 0, rec.PlainText()) + b"\x01\x02")
    ks, report = env.reload()
    assert report.snapshot == "snapshot-0000000002.tgx"
    assert ks.db(0).data == {b"k": b"v", b"k2": b"v2"}
    assert not tmp.exists()


def test_corrupted_snapshot_body(env):
    p, j = env.open()
    for i in range(3000):
        p.keyspace.db(0).set_string(b"k%d" % i, b"v" * 20)
    p.save()
    p.close(final_snapshot=False)
    snap = env.dir / "snapshot-0000000002.tgx"
    data = bytearray(snap.read_bytes())
    offsets = frame_offsets(bytes(data))
    assert len(offsets) == 4  # bulk frames of 1024, 1024 and 952 keys + END
    data[offsets[1] + 12] ^= 0xFF
    snap.write_bytes(bytes(data))
    with pytest.raises(RecoveryError, match="persistence.repair"):
        env.reload()
    ks, report = env.reload(repair=True)
    # Repair keeps what is provable: the frames before and after the damaged one.
    assert ks.total_keys() == 3000 - 1024
    assert ks.db(0).lookup(b"k0") is not None and ks.db(0).lookup(b"k2999") is not None
    assert len(report.dropped) == 1 and "snapshot-0000000002.tgx" in report.dropped[0]
    assert "skipped" in report.dropped[0]


def test_snapshot_without_end_record_is_refused(env):
    p, j = env.open()
    for i in range(3):
        p.keyspace.db(0).set_string(b"k%d" % i, b"v")
    p.save()
    p.close(final_snapshot=False)
    snap = env.dir / "snapshot-0000000002.tgx"
    data = snap.read_bytes()
    snap.write_bytes(data[: frame_offsets(data)[-1]])  # cut the END record off
    with pytest.raises(RecoveryError, match="no valid end record"):
        env.reload()
    ks, report = env.reload(repair=True)
    assert ks.total_keys() == 3 and report.dropped


def test_corrupted_snapshot_header(env):
    p, j = env.open()
    p.keyspace.db(0).set_string(b"k", b"v")
    p.save()
    p.keyspace.db(0).set_string(b"k2", b"v2")  # in log-2, after the snapshot
    p.close(final_snapshot=False)
    snap = env.dir / "snapshot-0000000002.tgx"
    data = bytearray(snap.read_bytes())
    data[3] ^= 0x01
    snap.write_bytes(bytes(data))
    with pytest.raises(RecoveryError, match="persistence.repair") as exc:
        env.reload()
    assert "snapshot-0000000002.tgx" in str(exc.value)
    assert snap.read_bytes() == bytes(data)
    ks, report = env.reload(repair=True)
    assert report.dropped and "snapshot-0000000002.tgx" in report.dropped[0]
    assert ks.db(0).data == {b"k2": b"v2"}  # the segments after it still replay


# -- damage in the log -----------------------------------------------------------------
def _three_keys(env: Env) -> Path:
    p, j = env.open()
    db = p.keyspace.db(0)
    for name in (b"first", b"second", b"third"):
        db.set_string(name, name * 10)
        j.commit()
    p.close(final_snapshot=False)
    return env.last_segment()


def test_torn_tail_is_truncated(env):
    seg = _three_keys(env)
    good = seg.stat().st_size
    half = rec.frame(rec.encode_value(0, b"fourth", b"x" * 100, None))[:60]
    with open(seg, "ab") as f:
        f.write(half)
    ks, report = env.reload()
    assert set(ks.db(0).data) == {b"first", b"second", b"third"}
    assert report.truncated_bytes == len(half) and report.truncated_records == 1
    assert report.records == 3 and not report.dropped
    assert seg.stat().st_size == good  # cut for good: the next start is clean
    _, again = env.reload()
    assert again.truncated_bytes == 0


def test_torn_frame_header_is_truncated(env):
    seg = _three_keys(env)
    with open(seg, "ab") as f:
        f.write(b"\x20\x00\x00")
    ks, report = env.reload()
    assert ks.total_keys() == 3 and report.truncated_bytes == 3


def test_segment_cut_inside_its_header_is_truncated(env):
    _three_keys(env)
    (env.dir / "log-0000000002.tgx").write_bytes(rec.LOG_MAGIC[:5])  # crash while creating
    ks, report = env.reload()
    assert ks.total_keys() == 3 and report.truncated_bytes == 5
    p, j = env.open()
    assert j.seq == 3
    p.close(final_snapshot=False)


def test_damaged_segment_header_is_refused(env):
    _three_keys(env)
    seg = env.dir / "log-0000000001.tgx"
    data = bytearray(seg.read_bytes())
    data[0] ^= 0x01
    seg.write_bytes(bytes(data))
    with pytest.raises(RecoveryError, match="log-0000000001.tgx"):
        env.reload()


def test_bit_flip_in_the_middle_needs_repair(env):
    seg = _three_keys(env)
    data = bytearray(seg.read_bytes())
    offsets = frame_offsets(bytes(data))
    assert len(offsets) == 3
    data[offsets[1] + 20] ^= 0x01
    seg.write_bytes(bytes(data))
    with pytest.raises(RecoveryError, match="persistence.repair") as exc:
        env.reload()
    assert "log-0000000001.tgx" in str(exc.value) and "valid records after it" in str(exc.value)
    assert seg.read_bytes() == bytes(data)  # a refused start changes nothing
    ks, report = env.reload(repair=True)
    assert set(ks.db(0).data) == {b"first", b"third"}  # the record after the damage is kept
    assert report.records == 2
    assert len(report.dropped) == 1
    dropped = report.dropped[0]
    assert "log-0000000001.tgx" in dropped and f"byte {offsets[1]}" in dropped
    assert f"skipped {offsets[2] - offsets[1]} bytes" in dropped


def test_damaged_length_field_in_the_middle_needs_repair(env):
    seg = _three_keys(env)
    data = bytearray(seg.read_bytes())
    offsets = frame_offsets(bytes(data))
    data[offsets[0] + 3] = 0x7F  # a huge length: looks like a frame running past the end
    seg.write_bytes(bytes(data))
    with pytest.raises(RecoveryError, match="persistence.repair"):
        env.reload()
    ks, report = env.reload(repair=True)
    # The damaged record is lost; what follows it may be kept or dropped (the length
    # that would lead there cannot be trusted), but nothing else may appear.
    assert b"first" not in ks.db(0).data
    assert set(ks.db(0).data) <= {b"second", b"third"}
    assert report.dropped and "log-0000000001.tgx" in report.dropped[0]


def test_damage_in_an_older_segment_with_later_segments(env):
    _three_keys(env)
    p, j = env.open()
    p.keyspace.db(0).set_string(b"fourth", b"4")
    p.close(final_snapshot=False)
    seg = env.dir / "log-0000000001.tgx"
    data = bytearray(seg.read_bytes())
    data[frame_offsets(bytes(data))[0] + 20] ^= 0x01
    seg.write_bytes(bytes(data))
    with pytest.raises(RecoveryError):
        env.reload()
    ks, report = env.reload(repair=True)
    assert set(ks.db(0).data) == {b"second", b"third", b"fourth"}
    assert report.segments == 2


def _blob_with_embedded_frames() -> bytes:
    """A value a client may store: it holds bytes that are valid frames themselves."""
    embedded = rec.frame(rec.encode_flushall()) + rec.frame(
        rec.encode_value(9, b"injected", b"evil", None)
    )
    return b"A" * 16 + embedded + b"B" * 200


def test_torn_tail_whose_payload_embeds_frames_is_still_a_torn_tail(env):
    p, j = env.open()
    p.keyspace.db(0).set_string(b"ok", b"1")
    j.commit()
    p.keyspace.db(0).set_string(b"blob", _blob_with_embedded_frames())
    j.commit()
    p.close(final_snapshot=False)
    seg = env.last_segment()
    data = seg.read_bytes()
    seg.write_bytes(data[:-100])  # the crash cut the last frame after the embedded bytes
    ks, report = env.reload()
    assert dump(ks) == {0: {b"ok": (b"1", None)}}
    assert report.truncated_records == 1 and not report.dropped


def test_repair_never_replays_frames_found_inside_a_value(env):
    p, j = env.open()
    db = p.keyspace.db(0)
    for key, value in ((b"ok1", b"1"), (b"blob", _blob_with_embedded_frames()), (b"ok2", b"2")):
        db.set_string(key, value)
        j.commit()
    p.close(final_snapshot=False)
    seg = env.last_segment()
    data = bytearray(seg.read_bytes())
    offsets = frame_offsets(bytes(data))
    assert len(offsets) == 3
    data[offsets[1] + 8 + 16] ^= 0x01  # inside the blob's key, before the embedded frames
    seg.write_bytes(bytes(data))
    with pytest.raises(RecoveryError):
        env.reload()
    ks, report = env.reload(repair=True)
    assert ks.db(9).size() == 0  # no injected key ...
    assert b"ok1" in ks.db(0).data  # ... and no injected FLUSHALL
    assert set(ks.db(0).data) <= {b"ok1", b"ok2"}
    assert report.dropped


def test_record_for_a_database_beyond_the_configured_count(env, clock):
    p, j = env.open()
    p.keyspace.db(10).set_string(b"k", b"v")
    p.close(final_snapshot=False)
    with pytest.raises(RecoveryError, match="server.databases is 4"):
        Persistence(MemoryKeyspace(databases=4, clock=clock), str(env.dir)).recover()
    ks = MemoryKeyspace(databases=4, clock=clock)
    report = Persistence(ks, str(env.dir), repair=True).recover()
    assert ks.total_keys() == 0 and "database 10" in report.dropped[0]


# -- write errors --------------------------------------------------------------------------
def test_write_error_sets_misconf_and_retry_lands_pending_frames(tmp_path, monkeypatch):
    h = GateHarness(Config())
    p, j = attach(h, tmp_path)
    h.ok("SET", "before", "1")
    j.commit()
    failing = FailingOs(room=0)
    monkeypatch.setattr(jmod, "os", failing)
    h.ok("SET", "pending", "1")
    h.ok("HSET", "pending-h", "f", "v")
    j.commit()
    assert j.error == "No space left on device"
    assert j.buffer  # the frames are kept
    err = h.err("SET", "refused", "1")
    assert err.startswith("MISCONF") and "No space left on device" in err
    assert h.err("DEL", "before").startswith("MISCONF")
    assert h.ok("GET", "before") == b"1"  # reads go on
    info = bytes(h.ok("INFO", "persistence")).decode()
    assert "aof_last_write_status:err" in info
    assert "aof_last_write_error:No space left on device" in info
    j.retry()  # still failing: still in error, frames still kept
    assert j.error is not None and j.buffer
    monkeypatch.setattr(jmod, "os", os)
    j.retry()
    assert j.error is None and not j.buffer
    assert h.ok("SET", "after", "1") == b"OK"
    assert "aof_last_write_status:ok" in bytes(h.ok("INFO", "persistence")).decode()
    j.commit()
    p.close(final_snapshot=False)
    ks = MemoryKeyspace(clock=h.clock)
    Persistence(ks, str(tmp_path)).recover()
    assert set(ks.db(0).data) == {b"before", b"pending", b"pending-h", b"after"}


@pytest.mark.parametrize("ftruncate_fails", [False, True])
def test_short_write_then_retry_loses_and_duplicates_nothing(env, monkeypatch, ftruncate_fails):
    p, j = env.open()
    db = p.keyspace.db(0)
    db.set_string(b"a", b"1")
    j.commit()
    db.set_string(b"b", b"2" * 100)
    db.set_string(b"c", b"3" * 100)
    failing = FailingOs(room=50, ftruncate_fails=ftruncate_fails)  # half of b's frame fits
    monkeypatch.setattr(jmod, "os", failing)
    j.commit()
    assert j.error is not None
    j.retry()  # still no room
    assert j.error is not None
    monkeypatch.setattr(jmod, "os", os)
    j.retry()
    assert j.error is None and not j.buffer
    db.set_string(b"d", b"4")
    j.commit()
    p.close(final_snapshot=False)
    ks, report = env.reload()
    assert ks.db(0).data == {b"a": b"1", b"b": b"2" * 100, b"c": b"3" * 100, b"d": b"4"}
    assert not report.dropped
    assert report.records == 4  # every record exactly once


def test_rotate_refuses_while_the_log_cannot_be_written(env, monkeypatch):
    p, j = env.open()
    p.keyspace.db(0).set_string(b"a", b"1")
    monkeypatch.setattr(jmod, "os", FailingOs(room=0))
    with pytest.raises(OSError, match="cannot write the log"):
        p.save()
    assert p.should_snapshot() is False
    monkeypatch.setattr(jmod, "os", os)
    j.retry()
    p.save()
    p.close(final_snapshot=False)
    ks, _ = env.reload()
    assert ks.db(0).data == {b"a": b"1"}


def test_short_write_after_swapdb_is_not_replayed_twice(env, monkeypatch):
    p, j = env.open()
    ks = p.keyspace
    ks.db(0).set_string(b"k", b"v")
    ks.swap(0, 1)  # barrier: k's frame and the SWAPDB frame are in the buffer now
    room = len(j.buffer)
    ks.db(0).set_string(b"big", b"x" * 1000)
    monkeypatch.setattr(jmod, "os", FailingOs(room=room + 10))
    j.commit()
    assert j.error is not None
    monkeypatch.setattr(jmod, "os", os)
    j.retry()
    assert j.error is None
    expected = dump(ks)
    assert expected == {0: {b"big": (b"x" * 1000, None)}, 1: {b"k": (b"v", None)}}
    p.close(final_snapshot=False)
    got, _ = env.reload()
    assert dump(got) == expected  # a double replay would put k in db0 and db1


def test_retry_on_a_full_disk_does_not_leak_descriptors(env, monkeypatch):
    p, j = env.open()
    p.keyspace.db(0).set_string(b"k", b"v" * 100)
    failing = FailingOs(room=10)
    monkeypatch.setattr(jmod, "os", failing)
    j.commit()
    assert j.error is not None
    fds = open_fds()
    for _ in range(20):  # the server's cron retries ten times a second
        j.retry()
    leaked = open_fds() - fds
    monkeypatch.setattr(jmod, "os", os)
    j.retry()
    p.close(final_snapshot=False)
    assert leaked <= 1


@pytest.mark.parametrize("fsync", ["always", "no"])
def test_waiting_replies_learn_that_the_write_failed(env, monkeypatch, fsync):
    """A change that is not in the log is never acknowledged: the waiting callbacks
    get the error (the server turns it into MISCONF), and later ones None again."""
    p, j = env.open(fsync=fsync)
    p.keyspace.db(0).set_string(b"k", b"v")
    released: list[str | None] = []
    j.after_commit(released.append)
    monkeypatch.setattr(jmod, "os", FailingOs(room=0))
    j.commit()
    assert released == ["No space left on device"]
    monkeypatch.setattr(jmod, "os", os)
    j.retry()
    assert j.error is None
    p.keyspace.db(0).set_string(b"k2", b"v")
    j.after_commit(released.append)
    j.commit()
    assert released == ["No space left on device", None]
    p.close(final_snapshot=False)
    ks, _ = env.reload()
    assert set(ks.db(0).data) == {b"k", b"k2"}  # k landed with the retry


# -- commands ----------------------------------------------------------------------------------
def test_save_bgsave_lastsave_commands(tmp_path):
    h = GateHarness(Config())
    assert h.err("SAVE").startswith("ERR persistence is disabled")
    p, j = attach(h, tmp_path)
    h.ok("SET", "k", "v")
    j.commit()
    assert h.ok("SAVE") == b"OK"
    assert abs(h.ok("LASTSAVE") - time.time()) < 5
    assert h.ok("BGSAVE") == b"Background saving started"
    assert h.err("BGSAVE") == "ERR Background save already in progress"
    assert h.err("SAVE") == "ERR Background save already in progress"
    assert h.err("BGSAVE", "NOW") == "ERR syntax error"
    _wait_child(p)
    assert h.ok("BGREWRITEAOF") == b"Background append only file rewriting started"
    _wait_child(p)
    assert p.status.saves == 3
    p.close(final_snapshot=False)


def _wait_child(p: Persistence) -> None:
    deadline = time.monotonic() + 10
    while p.saving and time.monotonic() < deadline:
        p.poll_child()
        time.sleep(0.01)
    assert not p.saving


def test_bgsave_schedule_runs_after_the_current_save(tmp_path):
    h = GateHarness(Config())
    p, j = attach(h, tmp_path)
    h.ok("SET", "k", "v")
    j.commit()
    assert h.ok("BGSAVE") == b"Background saving started"
    assert h.ok("BGSAVE", "SCHEDULE") == b"Background saving scheduled"
    _wait_child(p)
    for _ in range(5):  # the cron that would start it
        h.server._persistence_cron()
        _wait_child(p)
    saves = p.status.saves
    p.close(final_snapshot=False)
    assert saves == 2


def test_misconf_refuses_writes_inside_exec_too(tmp_path, monkeypatch):
    h = GateHarness(Config())
    p, j = attach(h, tmp_path)
    monkeypatch.setattr(jmod, "os", FailingOs(room=0))
    h.ok("SET", "k", "v")
    j.commit()
    assert j.error is not None
    # As Redis: the write is refused when queued, and EXEC discards the transaction.
    h.ok("MULTI")
    assert h.call("GET", "k") == QUEUED
    queued = h.call("SET", "k2", "v")
    assert isinstance(queued, CommandError) and queued.message.startswith("MISCONF")
    aborted = h.call("EXEC")
    assert isinstance(aborted, ExecAbortError)
    assert aborted.message == "EXECABORT Transaction discarded because of previous errors."
    # A read-only transaction still runs.
    h.ok("MULTI")
    h.call("GET", "k")
    assert h.ok("EXEC") == [b"v"]
    monkeypatch.setattr(jmod, "os", os)
    j.retry()
    p.close(final_snapshot=False)


# -- start-up refuses files that cannot reproduce the last state --------------------------------
def _three_restarts(env: Env) -> None:
    """A snapshot, then three log segments after it, each with keys."""
    p, j = env.open()
    for i in range(10):
        p.keyspace.db(0).set_string(b"s%d" % i, b"v")
    j.commit()
    p.save()
    p.close(final_snapshot=False)
    for r in range(3):
        p, j = env.open()
        p.keyspace.db(0).set_string(b"r%d" % r, b"v")
        j.commit()
        p.close(final_snapshot=False)


def test_a_missing_snapshot_is_refused_not_read_as_empty(env):
    _three_restarts(env)
    for snap in env.files("snapshot-"):
        os.unlink(env.dir / snap)
    with pytest.raises(RecoveryError, match="snapshot that held everything before it is missing"):
        env.reload()
    ks, report = env.reload(repair=True)
    assert ks.db(0).lookup(b"r2") == b"v" and "missing" in report.dropped[0]


def test_a_missing_segment_in_the_middle_is_refused(env):
    _three_restarts(env)
    segments = env.files("log-")
    assert len(segments) >= 3
    os.unlink(env.dir / segments[1])
    with pytest.raises(RecoveryError, match="cannot reproduce the last state.*are missing"):
        env.reload()


def test_an_older_segment_cut_into_its_header_is_refused(env):
    _three_restarts(env)
    segments = env.files("log-")
    older = env.dir / segments[0]
    older.write_bytes(older.read_bytes()[:10])
    with pytest.raises(RecoveryError, match="not the newest segment"):
        env.reload()
    ks, report = env.reload(repair=True)
    assert ks.db(0).lookup(b"r2") == b"v"
    assert any("skipped it" in d for d in report.dropped)


def test_the_newest_segment_cut_into_its_header_is_a_crash_while_creating_it(env):
    _three_restarts(env)
    newest = env.last_segment()
    newest.write_bytes(newest.read_bytes()[:10])
    ks, report = env.reload()  # no repair needed
    assert ks.db(0).lookup(b"r1") == b"v" and report.truncated_bytes == 10
