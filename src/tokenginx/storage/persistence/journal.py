"""The write-ahead log: which keys changed, written before any reply is sent.

Commands only *mark* keys (``mark(db, key)``); at the end of each event-loop
iteration the journal encodes the current state of every marked key, appends the
frames to the current segment with one ``write`` (group commit: every connection
served in that iteration shares it), fsyncs when the policy is ``always``, and only
then releases the replies that were waiting (see :meth:`Journal.after_commit`). So a
write has reached the kernel before it is acknowledged — a process crash cannot lose
it — and with ``always`` it has reached the disk. When the write fails, the waiting
clients get ``-MISCONF`` instead of their replies.

``everysec`` fsyncs from a background thread once a second; ``no`` leaves it to the
kernel. A failed write or fsync (disk full, EIO) puts the journal in an error state:
the gate then refuses writes with ``-MISCONF`` while reads go on, the unwritten
frames are kept, and the cron retries until a write succeeds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from tokenginx.storage.persistence import records as rec

if TYPE_CHECKING:
    from tokenginx.storage.memory import MemoryKeyspace

log = logging.getLogger("tokenginx.persistence")

FSYNC_POLICIES = ("always", "everysec", "no")


def segment_name(seq: int) -> str:
    return f"log-{seq:010d}.tgx"


class Journal:
    def __init__(
        self,
        directory: str,
        seq: int,
        policy: str,
        keyspace: MemoryKeyspace,
        sealer: rec.Sealer,
        schedule: Callable[[Callable[[], None]], None],
        clock_ms: Callable[[], int],
    ) -> None:
        self.directory = directory
        self.policy = policy
        self.keyspace = keyspace
        self.sealer = sealer
        self._schedule = schedule
        self._clock_ms = clock_ms
        self.dirty: dict[tuple[int, bytes], None] = {}
        self.buffer = bytearray()  # framed records not yet written
        self._waiting: list[Callable[[str | None], None]] = []
        self._scheduled = False
        self.error: str | None = None
        self.on_error_change: Callable[[], None] | None = None
        self.seq = seq
        self.size = 0  # bytes in the current segment
        self.total_since_snapshot = 0
        self.records_written = 0
        self._lock = threading.Lock()  # guards fd swaps against the fsync thread
        self._unsynced = False
        self._torn = False  # a write failed halfway: continue in a fresh segment
        self._fd = self._open_segment(seq)
        self._stop = threading.Event()
        self._fsync_thread: threading.Thread | None = None
        if policy == "everysec":
            self._fsync_thread = threading.Thread(
                target=self._fsync_every_second, name="tokenginx-fsync", daemon=True
            )
            self._fsync_thread.start()

    # -- recording ---------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        return bool(self.dirty or self.buffer)

    def mark(self, db: int, key: bytes) -> None:
        self.dirty[(db, key)] = None
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self.commit)

    def barrier(self, payload: bytes) -> None:
        """A database-wide record (FLUSHDB, SWAPDB…): ordered after every key change
        made before it."""
        self._encode_dirty()
        self.buffer += rec.frame(self.sealer.seal(payload))
        self.records_written += 1
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self.commit)

    def after_commit(self, callback: Callable[[str | None], None]) -> None:
        """Call ``callback(None)`` (write replies) once everything recorded so far is in
        the kernel (and on disk with ``always``), or ``callback(error)`` if that write
        failed: the caller must then not acknowledge those changes."""
        self._waiting.append(callback)
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self.commit)

    def _encode_dirty(self) -> None:
        """Append one frame per marked key: its current state, or its deletion. The
        string case is inlined (this runs once per write)."""
        if not self.dirty:
            return
        dbs = self.keyspace.databases
        seal = self.sealer.seal if self.sealer.sealed else None
        buf = self.buffer
        keyed, u32, frame_head, crc32 = rec.KEYED.pack, rec.U32.pack, rec.FRAME.pack, zlib.crc32
        for db_index, key in self.dirty:
            db = dbs[db_index]
            value = db.data.get(key)
            if value is None:
                payload = rec.encode_del(db_index, key)
            elif type(value) is bytes:
                payload = b"".join(
                    (
                        keyed(rec.OP_STR, db_index, db.expires.get(key) or 0, len(key)),
                        key,
                        u32(len(value)),
                        value,
                    )
                )
            else:
                payload = rec.encode_value(db_index, key, value, db.expires.get(key))
            if seal is not None:
                payload = seal(payload)
            buf += frame_head(len(payload), crc32(payload))
            buf += payload
        self.records_written += len(self.dirty)
        self.dirty.clear()

    # -- committing ----------------------------------------------------------------------
    def commit(self) -> None:
        self._scheduled = False
        self._encode_dirty()
        if self.buffer and not self._write_buffer():
            self._release(self.error)  # the frames stay buffered for the retry
            return
        self._release(None)

    def _release(self, error: str | None) -> None:
        waiting, self._waiting = self._waiting, []
        for callback in waiting:
            callback(error)

    def _write_buffer(self) -> bool:
        if self._torn:
            try:
                self._switch_segment(self.seq + 1)
            except OSError as e:
                self._set_error(f"{e.strerror or e}")
                return False
            self._torn = False
        data = bytes(self.buffer)
        written = 0
        try:
            view = memoryview(data)
            while written < len(data):
                written += os.write(self._fd, view[written:])
            if self.policy == "always":
                os.fsync(self._fd)
            else:
                self._unsynced = True
        except OSError as e:
            # Keep the whole buffer. If part of it reached the file, continue in a new
            # segment: the old one then ends in a torn frame that recovery truncates,
            # and frames written twice are harmless (records are states, not deltas).
            if written:
                # Whole frames that made it stay written (never write a record twice:
                # SWAPDB is not idempotent); cut off the torn rest if the disk lets us,
                # else continue in a new segment so it stays at the end of this one.
                complete = _whole_frames(data, written)
                del self.buffer[:complete]
                self.size += complete
                self.total_since_snapshot += complete
                if written > complete:
                    try:
                        os.ftruncate(self._fd, self.size)
                    except OSError:
                        self._torn = True
            self._set_error(f"{e.strerror or e}")
            return False
        del self.buffer[: len(data)]
        self.size += len(data)
        self.total_since_snapshot += len(data)
        if self.error is not None:
            log.warning("persistence recovered: writes are accepted again", extra={"event": "persistence_ok"})
            self._set_error(None)
        return True

    def retry(self) -> None:
        """Called by the cron while in error: try the pending frames again."""
        if self.error is not None:
            self._encode_dirty()
            if self.buffer:
                if self._write_buffer():
                    self._release(None)
            else:
                try:
                    os.fsync(self._fd)
                    self._set_error(None)
                except OSError as e:
                    self._set_error(f"{e.strerror or e}")

    def _set_error(self, error: str | None) -> None:
        if error is not None and self.error is None:
            log.error("persistence write failed, refusing writes: %s", error, extra={"event": "persistence_error"})
        self.error = error
        if self.on_error_change is not None:
            self.on_error_change()

    # -- segments ------------------------------------------------------------------------
    def _open_segment(self, seq: int) -> int:
        path = os.path.join(self.directory, segment_name(seq))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        header = rec.encode_header(rec.LOG_MAGIC, seq, self._clock_ms(), self.sealer)
        try:
            if os.write(fd, header) != len(header):
                raise OSError(28, "No space left on device")
            os.fsync(fd)
            fsync_dir(self.directory)
        except OSError:
            os.close(fd)
            raise
        self.size = len(header)
        return fd

    def rotate(self, new_seq: int) -> None:
        """Write what is pending, then continue in segment ``new_seq`` (the old one is
        fsynced and closed). Raises OSError if the pending frames cannot be written."""
        self._encode_dirty()
        if self.buffer and not self._write_buffer():
            raise OSError(f"cannot write the log: {self.error}")
        self._switch_segment(new_seq)

    def _switch_segment(self, new_seq: int) -> None:
        with self._lock:
            old = self._fd
            os.fsync(old)
            self._fd = self._open_segment(new_seq)
            self.seq = new_seq
            self._unsynced = False
        os.close(old)

    def sync(self) -> None:
        with self._lock:
            os.fsync(self._fd)
            self._unsynced = False

    def _fsync_every_second(self) -> None:
        while not self._stop.wait(1.0):
            if not self._unsynced:
                continue
            try:
                with self._lock:
                    self._unsynced = False
                    os.fsync(self._fd)
            except OSError as e:
                log.error("background fsync failed: %s", e.strerror or e)

    def close(self) -> None:
        self._stop.set()
        try:
            self.commit()
            self.sync()
        except OSError as e:
            log.error("final journal flush failed: %s", e.strerror or e)
        if self._fsync_thread is not None:
            self._fsync_thread.join(timeout=2)
        os.close(self._fd)


def _whole_frames(data: bytes, written: int) -> int:
    """How many leading bytes of ``data`` (a run of frames) are whole frames within
    the first ``written`` bytes."""
    pos = 0
    while pos + 8 <= written:
        length = int.from_bytes(data[pos : pos + 4], "little")
        if pos + 8 + length > written:
            break
        pos += 8 + length
    return pos


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def now_ms() -> int:
    return time.time_ns() // 1_000_000
