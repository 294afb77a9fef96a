"""Persistence of the embedded store: recovery at start, the journal, snapshots.

Files in the data directory::

    snapshot-<base>.tgx   a complete image of the keyspace; <base> is the first log
                          segment whose records are NOT in it
    log-<seq>.tgx         log segments, replayed in order after the snapshot

Start-up loads the newest snapshot and replays every segment numbered ``>= base``.
A snapshot is written to a temporary file and renamed into place only when complete,
so a crash mid-snapshot leaves the previous snapshot and all its segments intact.
``BGSAVE`` forks: the child writes the image of the moment of the fork while the
parent goes on serving (the log switches to a new segment at that moment); once the
child succeeds the older snapshot and segments are deleted (log compaction).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tokenginx.storage.memory import MemoryKeyspace, string_size
from tokenginx.storage.persistence import records as rec
from tokenginx.storage.persistence.journal import Journal, fsync_dir, segment_name

log = logging.getLogger("tokenginx.persistence")

_SNAPSHOT_RE = re.compile(r"snapshot-(\d{10})\.tgx\Z")
_SEGMENT_RE = re.compile(r"log-(\d{10})\.tgx\Z")


class RecoveryError(Exception):
    """The data directory holds damage that start-up will not silently skip."""


@dataclass
class RecoveryReport:
    snapshot: str | None = None
    snapshot_keys: int = 0
    segments: int = 0
    records: int = 0
    truncated_bytes: int = 0
    truncated_records: int = 0
    dropped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    last_seq: int = 0


@dataclass
class SaveStatus:
    last_save: int = 0  # unix seconds of the last successful snapshot
    last_status: str = "ok"
    last_duration_s: float = -1.0
    child_pid: int = 0
    child_started: float = 0.0
    child_base: int = 0
    snapshot_size: int = 0
    saves: int = 0
    scheduled: bool = False  # BGSAVE SCHEDULE while one was running


class Persistence:
    def __init__(
        self,
        keyspace: MemoryKeyspace,
        directory: str,
        fsync: str = "everysec",
        repair: bool = False,
        sealer: rec.Sealer | None = None,
        clock_ms: Callable[[], int] | None = None,
        snapshot_min_log_bytes: int = 64 * 1024 * 1024,
        snapshot_growth_ratio: float = 1.0,
    ) -> None:
        self.keyspace = keyspace
        self.directory = directory
        self.fsync = fsync
        self.repair = repair
        self.sealer = sealer or rec.PlainText()
        self.clock_ms = clock_ms or keyspace.clock
        self.snapshot_min_log_bytes = snapshot_min_log_bytes
        self.snapshot_growth_ratio = snapshot_growth_ratio
        self.journal: Journal | None = None
        self.status = SaveStatus(last_save=int(time.time()))
        self.report = RecoveryReport()

    # -- start-up ------------------------------------------------------------------------
    def recover(self) -> RecoveryReport:
        """Load the newest snapshot and replay the log after it into the keyspace."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        for name in os.listdir(self.directory):
            if name.startswith("snapshot-") and name.endswith(".tmp"):
                # Left by a snapshot that crashed before its rename: never complete.
                os.unlink(os.path.join(self.directory, name))
        t0 = time.monotonic()
        report = self.report = RecoveryReport()
        snapshots, segments = self._list_files()
        base = 0
        if snapshots:
            base, name = snapshots[-1]
            report.snapshot = name
            report.snapshot_keys = self._load_snapshot(os.path.join(self.directory, name), report)
            self.status.snapshot_size = os.path.getsize(os.path.join(self.directory, name))
            self.status.last_save = int(os.path.getmtime(os.path.join(self.directory, name)))
        report.last_seq = base - 1 if base else 0
        live = [(seq, name) for seq, name in segments if seq >= base]
        self._check_chain(base, bool(snapshots), live, report)
        for i, (seq, name) in enumerate(live):
            self._replay_segment(os.path.join(self.directory, name), report,
                                 newest=i == len(live) - 1)
            report.segments += 1
            report.last_seq = max(report.last_seq, seq)
        report.seconds = time.monotonic() - t0
        self.report = report
        log.info(
            "recovered %d keys in %.2fs",
            self.keyspace.total_keys(),
            report.seconds,
            extra={
                "event": "recovered",
                "snapshot": report.snapshot,
                "segments": report.segments,
                "records": report.records,
            },
        )
        return report

    def start(self, schedule: Callable[[Callable[[], None]], None]) -> Journal:
        """Open a fresh log segment (never append to a recovered file) and start logging."""
        seq = self.report.last_seq + 1
        self.journal = Journal(
            self.directory, seq, self.fsync, self.keyspace, self.sealer, schedule, self.clock_ms
        )
        self.keyspace.journal = self.journal
        return self.journal

    def _list_files(self) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
        snapshots, segments = [], []
        for name in os.listdir(self.directory):
            if m := _SNAPSHOT_RE.match(name):
                snapshots.append((int(m.group(1)), name))
            elif m := _SEGMENT_RE.match(name):
                segments.append((int(m.group(1)), name))
        return sorted(snapshots), sorted(segments)

    def _check_chain(self, base: int, have_snapshot: bool, live: list[tuple[int, str]],
                     report: RecoveryReport) -> None:
        """The files must be able to reproduce the last state: the log segments after
        the snapshot (or, without one, from the very first segment, 1) numbered without
        a gap. A missing snapshot or segment is refused, never read as "no data"."""
        expected = base if have_snapshot else 1
        problems = []
        if live and live[0][0] != expected:
            if have_snapshot:
                problems.append(
                    f"log segments {segment_name(expected)} to {segment_name(live[0][0] - 1)} "
                    f"are missing (the snapshot covers the log up to {segment_name(expected)})"
                )
            else:
                problems.append(
                    f"no snapshot, and the log starts at {live[0][1]}: the snapshot that held "
                    f"everything before it is missing"
                )
        for (a, _), (b, _name) in zip(live, live[1:]):
            if b != a + 1:
                problems.append(f"log segments {segment_name(a + 1)} to {segment_name(b - 1)} are missing")
        if not problems:
            return
        msg = f"data directory {self.directory} cannot reproduce the last state: " + "; ".join(
            problems
        )
        if not self.repair:
            raise RecoveryError(msg + " (restore the missing files, or set persistence.repair: "
                                "true to start from what is there)")
        report.dropped.append(msg + "; started from what is there")
        log.warning(msg, extra={"event": "repair"})

    def _load_snapshot(self, path: str, report: RecoveryReport) -> int:
        try:
            _, data = rec.read_file(path, rec.SNAPSHOT_MAGIC, self.sealer)
        except rec.CorruptRecord as e:
            msg = f"snapshot {os.path.basename(path)} is unreadable: {e}"
            if not self.repair:
                raise RecoveryError(msg + " (set persistence.repair: true to start without it)") from None
            report.dropped.append(msg + "; started without it")
            log.warning(msg, extra={"event": "repair"})
            return 0
        count = 0
        ended = False
        damaged = False
        now = self.clock_ms()
        view = memoryview(data)
        pos = rec.HEADER_SIZE
        while True:
            scan = rec.ScanResult(good_end=pos, records=0)
            for record in rec.iter_frames(view, pos, self.sealer, scan):
                if record[0] == rec.OP_END:
                    ended = record[1] == count or damaged
                    break
                self._apply(record, now)
                count += len(record[2]) if record[0] == rec.OP_BULK else 1
            if ended or scan.bad_offset is None:
                break
            problem = scan.error or "bad frame"
            msg = f"snapshot {os.path.basename(path)} is damaged at byte {scan.bad_offset}: {problem}"
            if not self.repair:
                raise RecoveryError(msg + " (set persistence.repair: true to load what is valid)")
            damaged = True
            if scan.skip_to is not None and scan.resyncable:
                # Valid frames follow: skip only the damaged one and keep the rest.
                report.dropped.append(f"{msg}: skipped {scan.skip_to - scan.bad_offset} bytes")
                log.warning("%s: skipped the damaged frame", msg, extra={"event": "repair"})
                pos = scan.skip_to
                continue
            report.dropped.append(msg + f"; kept the {count} keys before it")
            log.warning(msg, extra={"event": "repair", "kept": count})
            return count
        if not ended:
            msg = f"snapshot {os.path.basename(path)} has no valid end record"
            if not self.repair:
                raise RecoveryError(msg + " (set persistence.repair: true to load what is valid)")
            report.dropped.append(msg + f"; kept the {count} keys in it")
            log.warning(msg, extra={"event": "repair", "kept": count})
        return count

    def _replay_segment(self, path: str, report: RecoveryReport, newest: bool = True) -> None:
        try:
            _, data = rec.read_file(path, rec.LOG_MAGIC, self.sealer)
        except rec.CorruptRecord as e:
            size = os.path.getsize(path)
            name = os.path.basename(path)
            if newest and size < rec.HEADER_SIZE:
                # The newest segment, shorter than its header: the crash came while
                # creating it, before any record could be written after the header.
                self._truncate(path, 0, size, 0, report)
                return
            msg = f"log segment {name} is unreadable: {e}" + (
                "" if newest else " (it is not the newest segment: a crash cannot explain it)")
            if not self.repair:
                raise RecoveryError(msg + " (set persistence.repair: true to skip it)") from None
            report.dropped.append(msg + "; skipped it")
            log.warning(msg, extra={"event": "repair"})
            return
        view = memoryview(data)
        pos = rec.HEADER_SIZE
        now = self.clock_ms()
        while True:
            scan = rec.ScanResult(good_end=pos, records=0)
            for record in rec.iter_frames(view, pos, self.sealer, scan):
                self._apply(record, now)
            report.records += scan.records
            if scan.bad_offset is None:
                return
            name = os.path.basename(path)
            if scan.torn and not scan.resyncable:
                # A torn tail: the crash interrupted the last write. Drop it.
                self._truncate(path, scan.good_end, len(data), 1, report)
                return
            msg = (
                f"log segment {name} is damaged at byte {scan.bad_offset} ({scan.error})"
                + (" with valid records after it" if scan.resyncable else "")
            )
            if not self.repair:
                raise RecoveryError(msg + " (set persistence.repair: true to skip the damage)")
            if scan.skip_to is None or not scan.resyncable:
                # Nothing proves where the next record starts: reading on would risk
                # interpreting stored values as records.
                report.dropped.append(f"{msg}: dropped the {len(data) - scan.bad_offset} bytes from there")
                log.warning("%s: dropped the rest of the segment", msg, extra={"event": "repair"})
                self._truncate(path, scan.bad_offset, len(data), 0, report)
                return
            report.dropped.append(f"{msg}: skipped {scan.skip_to - scan.bad_offset} bytes")
            log.warning("%s: skipped %d bytes", msg, scan.skip_to - scan.bad_offset, extra={"event": "repair"})
            pos = scan.skip_to

    def _truncate(self, path: str, good_end: int, size: int, records: int, report: RecoveryReport) -> None:
        dropped = size - good_end
        log.warning(
            "log %s ends with an incomplete record (crash during a write): truncated %d bytes, %d record(s)",
            os.path.basename(path),
            dropped,
            records,
            extra={"event": "torn_tail", "bytes": dropped, "records": records},
        )
        with open(path, "r+b") as f:
            f.truncate(good_end)
            f.flush()
            os.fsync(f.fileno())
        report.truncated_bytes += dropped
        report.truncated_records += records

    def _apply(self, record: rec.Record, now: int) -> None:
        dbs = len(self.keyspace.databases)
        if record[0] not in (rec.OP_FLUSHALL, rec.OP_END) and (
            record[1] >= dbs or (record[0] == rec.OP_SWAPDB and record[2] >= dbs)
        ):
            msg = (
                f"the data holds database {max(record[1:3] if record[0] == rec.OP_SWAPDB else record[1:2])}"
                f" but server.databases is {dbs}"
            )
            if not self.repair:
                raise RecoveryError(msg + " (raise server.databases, or set persistence.repair: true to drop it)")
            if msg not in self.report.dropped:
                self.report.dropped.append(msg)
                log.warning("%s: its records are dropped", msg, extra={"event": "repair"})
            return
        apply_record(self.keyspace, record, now)

    # -- snapshots -------------------------------------------------------------------------
    @property
    def saving(self) -> bool:
        return self.status.child_pid != 0

    def save(self) -> None:
        """SAVE: write a snapshot now, in this process (blocks, as Redis's SAVE does)."""
        base = self._begin_snapshot()
        t0 = time.monotonic()
        try:
            write_snapshot(self.keyspace, self.directory, base, self.sealer, self.clock_ms())
        except OSError:
            self.status.last_status = "err"
            raise
        self._finish_snapshot(base, time.monotonic() - t0)

    def bgsave(self) -> bool:
        """BGSAVE: fork a child that writes the snapshot. False if one is running."""
        if self.saving:
            return False
        base = self._begin_snapshot()
        gc.collect(0)
        pid = os.fork()
        if pid == 0:  # child: write the image of this instant, then leave at once
            code = 1
            try:
                import signal

                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                # Drop inherited sockets and files: a client the parent closes must
                # see its connection end now, not when this child exits.
                os.closerange(3, _max_fd())
                gc.disable()  # no GC passes touching (and copying) every page
                write_snapshot(self.keyspace, self.directory, base, self.sealer, self.clock_ms())
                code = 0
            except BaseException:  # noqa: BLE001 - the child must never return
                pass
            os._exit(code)
        self.status.child_pid = pid
        self.status.child_started = time.monotonic()
        self.status.child_base = base
        log.info("background snapshot started", extra={"event": "bgsave_start", "pid": pid})
        return True

    def poll_child(self) -> None:
        """Reap a finished BGSAVE child (called from the server's timer)."""
        pid = self.status.child_pid
        if not pid:
            return
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            # Already reaped by someone else (a process embedding the server may run its
            # own SIGCHLD reaper): the child renames its file only after writing all of
            # it, so the finished snapshot's presence is its exit status.
            written = os.path.exists(os.path.join(self.directory, snapshot_name(self.status.child_base)))
            done, status = pid, 0 if written else 1 << 8
        if not done:
            return
        self.status.child_pid = 0
        duration = time.monotonic() - self.status.child_started
        try:
            self._child_done(status, duration)
        finally:
            if self.status.scheduled:
                self.status.scheduled = False
                self.bgsave()

    def _child_done(self, status: int, duration: float) -> None:
        if os.waitstatus_to_exitcode(status) == 0:
            self._finish_snapshot(self.status.child_base, duration, background=True)
        else:
            self.status.last_status = "err"
            log.error("background snapshot failed", extra={"event": "bgsave_failed", "status": status})
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, _tmp_name(self.status.child_base)))

    def _begin_snapshot(self) -> int:
        journal = self.journal
        if journal is None:
            raise OSError("persistence is not running")
        base = journal.seq + 1
        journal.rotate(base)  # everything before this instant is in segments < base
        return base

    def _finish_snapshot(self, base: int, duration: float, background: bool = False) -> None:
        fsync_dir(self.directory)
        snapshots, segments = self._list_files()
        stale = [
            os.path.join(self.directory, name)
            for seq, name in snapshots + segments
            if seq < base
        ]
        if background:
            # Unlinking a file of hundreds of MB takes tens of ms: not on the event loop.
            # A crash before it is done only leaves files that recovery ignores (< base).
            threading.Thread(target=_remove_files, args=(stale, self.directory), daemon=True).start()
        else:
            _remove_files(stale, self.directory)
        path = os.path.join(self.directory, snapshot_name(base))
        self.status.snapshot_size = os.path.getsize(path)
        self.status.last_save = int(time.time())
        self.status.last_status = "ok"
        self.status.last_duration_s = duration
        self.status.saves += 1
        if self.journal is not None:
            self.journal.total_since_snapshot = 0
        self.keyspace.dirty = 0
        log.info(
            "snapshot written in %.2fs",
            duration,
            extra={"event": "snapshot", "file": snapshot_name(base), "bytes": self.status.snapshot_size},
        )

    def should_snapshot(self) -> bool:
        """Log compaction trigger: the log since the last snapshot outgrew both the
        minimum size and ``growth_ratio`` times the snapshot."""
        j = self.journal
        if j is None or self.saving or j.error is not None:
            return False
        grown = j.total_since_snapshot
        return grown >= self.snapshot_min_log_bytes and grown >= self.snapshot_growth_ratio * self.status.snapshot_size

    def close(self, final_snapshot: bool) -> None:
        if self.saving:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.status.child_pid, 0)
            self.poll_child()
        if self.journal is None:
            return
        if final_snapshot and self.journal.error is None:
            try:
                self.save()
            except OSError as e:
                log.error("snapshot at shutdown failed: %s", e, extra={"event": "snapshot_failed"})
        self.journal.close()
        self.keyspace.journal = None
        self.journal = None


def _remove_files(paths: list[str], directory: str) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
    with contextlib.suppress(OSError):
        fsync_dir(directory)


def _max_fd() -> int:
    try:
        return min(os.sysconf("SC_OPEN_MAX"), 1 << 20)
    except (OSError, ValueError):
        return 65536


def snapshot_name(base: int) -> str:
    return f"snapshot-{base:010d}.tgx"


def _tmp_name(base: int) -> str:
    return f"snapshot-{base:010d}.tmp"


_BULK_KEYS = 1024


def write_snapshot(keyspace: MemoryKeyspace, directory: str, base: int, sealer: rec.Sealer, now: int) -> None:
    """Write every live key to ``snapshot-<base>.tgx`` (atomically: tmp + rename):
    strings in bulk frames of up to 1024 keys (keys with and without a deadline
    apart), hashes and sets one record each."""
    tmp = os.path.join(directory, _tmp_name(base))
    count = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb", buffering=1 << 20) as f:
        f.write(rec.encode_header(rec.SNAPSHOT_MAGIC, base, now, sealer))
        frame, seal, bulk = rec.frame, sealer.seal, rec.encode_bulk
        for db in keyspace.databases:
            expires = db.expires
            plain_k: list[bytes] = []
            plain_v: list = []
            ttl_k: list[bytes] = []
            ttl_v: list = []
            ttl_d: list[int] = []
            for key, value in db.data.items():
                when = expires.get(key)
                if type(value) is not bytes:  # hashes and sets: one record each
                    if when is None or when > now:
                        f.write(frame(seal(rec.encode_value(db.id, key, value, when))))
                        count += 1
                    continue
                if when is None:
                    plain_k.append(key)
                    plain_v.append(value)
                    if len(plain_k) == _BULK_KEYS:
                        f.write(frame(seal(bulk(db.id, plain_k, plain_v, None))))
                        count += len(plain_k)
                        plain_k, plain_v = [], []
                elif when > now:
                    ttl_k.append(key)
                    ttl_v.append(value)
                    ttl_d.append(when)
                    if len(ttl_k) == _BULK_KEYS:
                        f.write(frame(seal(bulk(db.id, ttl_k, ttl_v, ttl_d))))
                        count += len(ttl_k)
                        ttl_k, ttl_v, ttl_d = [], [], []
            if plain_k:
                f.write(frame(seal(bulk(db.id, plain_k, plain_v, None))))
                count += len(plain_k)
            if ttl_k:
                f.write(frame(seal(bulk(db.id, ttl_k, ttl_v, ttl_d))))
                count += len(ttl_k)
        f.write(frame(seal(rec.encode_end(count))))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(directory, snapshot_name(base)))


def _apply_bulk(keyspace: MemoryKeyspace, record: rec.Record, now: int) -> None:
    _, db_index, keys, values, deadlines = record
    db = keyspace.databases[db_index]
    if deadlines is not None:
        live = [i for i, d in enumerate(deadlines) if d > now]
        if len(live) != len(keys):
            keys = [keys[i] for i in live]
            values = [values[i] for i in live]
            deadlines = [deadlines[i] for i in live]
    data = db.data
    if any(k in data for k in keys):
        for i, key in enumerate(keys):  # rare: keys already present, go key by key
            db.put(key, values[i], None if deadlines is None else deadlines[i])
        return
    data.update(zip(keys, values))
    size = sum(map(len, keys)) + sum(map(len, values)) + string_size(b"", b"") * len(keys)
    db.used += size
    keyspace.used += size
    if deadlines is not None:
        file_expire = db._file_expire
        for key, when in zip(keys, deadlines):
            file_expire(key, when)


def apply_record(keyspace: MemoryKeyspace, record: rec.Record, now: int) -> None:
    """Replay one record into the keyspace (no events, no journal: this is loading)."""
    op = record[0]
    if op == rec.OP_BULK:
        _apply_bulk(keyspace, record, now)
        return
    if op in (rec.OP_STR, rec.OP_HASH, rec.OP_SET):
        _, db_index, key, value, deadline = record
        db = keyspace.databases[db_index]
        if deadline is not None and deadline <= now:
            if key in db.data:
                db._remove(key)
            return
        if op == rec.OP_STR and key not in db.data:
            # The common case when loading: a new string key (put() does more).
            db.data[key] = value
            size = string_size(key, value)
            db.used += size
            keyspace.used += size
            if deadline is not None:
                db._file_expire(key, deadline)
            return
        db.put(key, value, deadline)
    elif op == rec.OP_DEL:
        db = keyspace.databases[record[1]]
        if record[2] in db.data:
            db._remove(record[2])
    elif op == rec.OP_FLUSHDB:
        keyspace.databases[record[1]].flush()
    elif op == rec.OP_FLUSHALL:
        for db in keyspace.databases:
            db.flush()
    elif op == rec.OP_SWAPDB:
        keyspace.swap(record[1], record[2])


__all__ = ["Persistence", "RecoveryError", "apply_record", "segment_name", "snapshot_name"]
