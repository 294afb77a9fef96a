"""The embedded keyspace: dicts in this process, Redis 7 expiry semantics.

Each database keeps ``data`` (key → value) and ``expires`` (key → deadline in Unix
ms). Expiry is *lazy* (every read checks the deadline, so an expired key is never
seen) plus *active*: deadlines are also filed in coarse time buckets (128 ms) kept in
a min-heap, so the periodic cycle finds due keys without scanning anything and stops
when its time budget is spent (see :meth:`MemoryKeyspace.active_expire_cycle`).

Every change goes through :meth:`Database.changed`, the one place that invalidates
WATCHers, counts ``dirty`` writes, adjusts the memory estimate and emits the keyspace
event.
"""

from __future__ import annotations

import heapq
import itertools
import random
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from tokenginx.clock import MsClock, system_ms
from tokenginx.errors import CommandError, OutOfMemoryError, WrongTypeError
from tokenginx.storage import events as ev
from tokenginx.storage.events import EventBus
from tokenginx.storage.glob import Matcher, compile_glob
from tokenginx.storage.persistence import records

# Memory estimates, in bytes, of CPython objects (64-bit): a bytes object is a 33-byte
# header plus its payload, rounded by the allocator; a dict/set slot with its share of
# the hash table costs about 40 bytes.
_BYTES_OVERHEAD = 33
_SLOT = 40
_BUCKET_SHIFT = 7  # expiry bucket = 128 ms
_SCAN_SNAPSHOTS = 8
_SCAN_SNAPSHOT_IDLE_S = 300.0


_STRING_OVERHEAD = 2 * _BYTES_OVERHEAD + _SLOT


def string_size(key: bytes, value: bytes) -> int:
    return _STRING_OVERHEAD + len(key) + len(value)


def field_size(name: bytes, value: bytes) -> int:
    return 2 * _BYTES_OVERHEAD + len(name) + len(value) + _SLOT


def member_size(member: bytes) -> int:
    return _BYTES_OVERHEAD + len(member) + _SLOT


def value_size(key: bytes, value: bytes | dict | set) -> int:
    t = type(value)
    if t is bytes:
        return string_size(key, value)
    base = _BYTES_OVERHEAD + len(key) + _SLOT + 64
    if t is dict:
        return base + sum(field_size(f, v) for f, v in value.items())
    return base + sum(member_size(m) for m in value)


TYPE_NAMES = {bytes: "string", dict: "hash", set: "set"}


class _ScanList:
    """The keys SCAN cursors walk: the key list when the first of them started, with
    each key created since appended (deleted keys stay and are skipped)."""

    __slots__ = ("keys", "last_used")

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = keys
        self.last_used = time.monotonic()


class Database:
    __slots__ = (
        "id",
        "ks",
        "data",
        "expires",
        "_buckets",
        "_live",
        "_heap",
        "watchers",
        "_scans",
        "_scan_current",
        "_scan_ids",
        "used",
    )

    def __init__(self, index: int, keyspace: MemoryKeyspace) -> None:
        self.id = index
        self.ks = keyspace
        self.data: dict[bytes, bytes | dict | set] = {}
        self.expires: dict[bytes, int] = {}
        self._buckets: dict[int, list[bytes]] = {}
        self._live: dict[int, int] = {}
        self._heap: list[int] = []
        # key -> set of watching clients (objects with a ``dirty_cas`` attribute)
        self.watchers: dict[bytes, set] = {}
        self._scans: OrderedDict[int, _ScanList] = OrderedDict()
        self._scan_current = 0  # the list new scans join
        self._scan_ids = itertools.count(1)
        self.used = 0

    # -- reads -----------------------------------------------------------------------
    def lookup(self, key: bytes) -> bytes | dict | set | None:
        v = self.data.get(key)
        if v is not None and self.expires:
            when = self.expires.get(key)
            if when is not None and when <= self.ks.clock():
                self._expire(key)
                return None
        return v

    def get_string(self, key: bytes) -> bytes | None:
        v = self.data.get(key)
        if v is None:
            self.ks.misses += 1
            return None
        # An empty ``expires`` (a cache without TTLs) costs no second hash lookup.
        when = self.expires.get(key) if self.expires else None
        if when is not None and when <= self.ks.clock():
            self._expire(key)
            self.ks.misses += 1
            return None
        if type(v) is not bytes:
            raise WrongTypeError()
        self.ks.hits += 1
        return v

    def get_hash(self, key: bytes) -> dict[bytes, bytes] | None:
        v = self.lookup(key)
        if v is None:
            self.ks.misses += 1
            return None
        if type(v) is not dict:
            raise WrongTypeError()
        self.ks.hits += 1
        return v

    def get_set(self, key: bytes) -> set[bytes] | None:
        v = self.lookup(key)
        if v is None:
            self.ks.misses += 1
            return None
        if type(v) is not set:
            raise WrongTypeError()
        self.ks.hits += 1
        return v

    def exists(self, key: bytes) -> bool:
        return self.lookup(key) is not None

    def type_of(self, key: bytes) -> str:
        v = self.lookup(key)
        return "none" if v is None else TYPE_NAMES[type(v)]

    def pttl(self, key: bytes) -> int:
        """Remaining ms; -2 if the key does not exist, -1 if it has no expiry."""
        if self.lookup(key) is None:
            return -2
        when = self.expires.get(key)
        if when is None:
            return -1
        return max(when - self.ks.clock(), 0)

    def expire_at_ms(self, key: bytes) -> int | None:
        return self.expires.get(key)

    def size(self) -> int:
        return len(self.data)

    def random_key(self) -> bytes | None:
        # Dicts have no random access; islice skips at C speed. Bounded retries so a
        # database full of expired-but-unreclaimed keys cannot loop forever.
        for _ in range(100):
            n = len(self.data)
            if n == 0:
                return None
            key = next(itertools.islice(self.data, random.randrange(n), None))
            if self.lookup(key) is not None:
                return key
        return None

    def keys(self, pattern: bytes) -> list[bytes]:
        match = compile_glob(pattern)
        now = self.ks.clock()
        expires = self.expires
        out = []
        for k in list(self.data):
            if match(k):
                when = expires.get(k)
                if when is not None and when <= now:
                    continue
                out.append(k)
        return out

    def scan(
        self, cursor: int, count: int, match: Matcher | None, type_name: str | None
    ) -> tuple[int, list[bytes]]:
        """Cursor iteration with SCAN's guarantee: a key present for the whole scan is
        returned. Scans walk a shared :class:`_ScanList` (the key list when it was
        started, plus every key added since), so concurrent scans cost one list, a
        new scan costs O(count), and rehashing and deletes never make us skip a key."""
        snap_id, pos = cursor >> 32, cursor & 0xFFFFFFFF
        now_s = time.monotonic()
        scans = self._scans
        entry = scans.get(snap_id) if snap_id else None
        if entry is None:
            entry = scans.get(self._scan_current)
            if entry is None or len(entry.keys) > 2 * len(self.data) + 1024:
                if not scans and len(self.data) <= pos + count:
                    return 0, self._filter_scan(list(self.data)[pos:], match, type_name)
                entry = _ScanList(list(self.data))
                snap_id = next(self._scan_ids) % 0xFFFFFFFF + 1
                scans[snap_id] = entry
                self._scan_current = snap_id
                while len(scans) > _SCAN_SNAPSHOTS:
                    self.ks.retire(scans.popitem(last=False)[1].keys)
            else:
                snap_id = self._scan_current
        entry.last_used = now_s
        scans.move_to_end(snap_id)
        for sid in [s for s, e in scans.items() if now_s - e.last_used > _SCAN_SNAPSHOT_IDLE_S]:
            self.ks.retire(scans.pop(sid).keys)
        keys = entry.keys
        chunk = keys[pos : pos + count]
        next_pos = pos + count
        result = self._filter_scan(chunk, match, type_name)
        return ((snap_id << 32) | next_pos if next_pos < len(keys) else 0), result

    def _scan_append(self, key: bytes) -> None:
        """A new key: every live scan list gets it (only called while scans exist)."""
        for entry in self._scans.values():
            entry.keys.append(key)

    def _filter_scan(
        self, chunk: list[bytes], matcher: Matcher | None, type_name: str | None
    ) -> list[bytes]:
        out = []
        for k in chunk:
            v = self.lookup(k)
            if v is None:
                continue
            if matcher is not None and not matcher(k):
                continue
            if type_name is not None and TYPE_NAMES[type(v)] != type_name:
                continue
            out.append(k)
        return out

    # -- writes ----------------------------------------------------------------------
    def set_string(
        self,
        key: bytes,
        value: bytes,
        expire_at: int | None = None,
        keep_ttl: bool = False,
        event: str = "set",
    ) -> None:
        """SET semantics: replaces any value of any type; clears the TTL unless kept.

        The hottest write path: ``changed()`` is inlined here on purpose."""
        data = self.data
        ks = self.ks
        old = data.get(key)
        if old is None:
            if len(key) > ks.max_key_bytes:
                raise key_too_large(ks.max_key_bytes)
            delta = _STRING_OVERHEAD + len(key) + len(value)
            if self._scans:
                self._scan_append(key)
        elif type(old) is bytes:
            delta = len(value) - len(old)
        else:
            delta = string_size(key, value) - value_size(key, old)
        data[key] = value
        if expire_at is not None:
            self._file_expire(key, expire_at)
        elif not keep_ttl and key in self.expires:
            self._unfile_expire(key)
        self.used += delta
        ks.used += delta
        if self.watchers:
            self.touch(key)
        ks.dirty += 1
        if ks.journal is not None:
            ks.journal.mark(self.id, key)
        if ks.events.active:
            if old is None:  # Redis signals "new" (class n) before the command's event
                ks.events.emit(self.id, key, "new", ev.NEW)
            ks.events.emit(self.id, key, event, ev.STRING)
            if expire_at is not None:
                ks.events.emit(self.id, key, "expire", ev.GENERIC)

    def put(self, key: bytes, value: bytes | dict | set, expire_at: int | None = None) -> None:
        """Store ``value`` whole (RESTORE/COPY/…), replacing what was there."""
        old = self.data.get(key)
        if old is None and len(key) > self.ks.max_key_bytes:
            raise key_too_large(self.ks.max_key_bytes)
        delta = value_size(key, value) - (0 if old is None else value_size(key, old))
        if old is None and self._scans:
            self._scan_append(key)
        self.data[key] = value
        if expire_at is not None:
            self._file_expire(key, expire_at)
        elif key in self.expires:
            self._unfile_expire(key)
        self.used += delta
        self.ks.used += delta

    def hash_for_write(self, key: bytes) -> dict[bytes, bytes]:
        """The hash at ``key``, created empty if missing. Callers report changes."""
        v = self.lookup(key)
        if v is None:
            if len(key) > self.ks.max_key_bytes:
                raise key_too_large(self.ks.max_key_bytes)
            if self._scans:
                self._scan_append(key)
            v = self.data[key] = {}
            self._account(_BYTES_OVERHEAD + len(key) + _SLOT + 64)
        elif type(v) is not dict:
            raise WrongTypeError()
        return v

    def set_for_write(self, key: bytes) -> set[bytes]:
        v = self.lookup(key)
        if v is None:
            if len(key) > self.ks.max_key_bytes:
                raise key_too_large(self.ks.max_key_bytes)
            if self._scans:
                self._scan_append(key)
            v = self.data[key] = set()
            self._account(_BYTES_OVERHEAD + len(key) + _SLOT + 64)
        elif type(v) is not set:
            raise WrongTypeError()
        return v

    def _account(self, delta: int) -> None:
        self.used += delta
        self.ks.used += delta

    def changed(self, key: bytes, event: str, kind: str, size_delta: int = 0) -> None:
        """Record a change to ``key``: WATCH, dirty counter, memory, event."""
        if size_delta:
            self.used += size_delta
            self.ks.used += size_delta
        if self.watchers:
            self.touch(key)
        ks = self.ks
        ks.dirty += 1
        # Expiry needs no record: the deadline is already in the log.
        if ks.journal is not None and kind != ev.EXPIRED:
            ks.journal.mark(self.id, key)
        if ks.events.active:
            ks.events.emit(self.id, key, event, kind)

    def touch(self, key: bytes) -> None:
        clients = self.watchers.get(key)
        if clients:
            for c in clients:
                c.dirty_cas = True

    def touch_all(self, replaced_with: Database | None = None) -> None:
        """FLUSHDB/FLUSHALL/SWAPDB: a watched key is touched if it existed here or exists
        in ``replaced_with`` (what SWAPDB brings in); a key that never existed is not
        (Redis 7's touchAllWatchedKeysInDb)."""
        other = replaced_with.data if replaced_with is not None else {}
        for key, clients in self.watchers.items():
            if key in self.data or key in other:
                for c in clients:
                    c.dirty_cas = True

    def delete(self, key: bytes) -> bool:
        if self.lookup(key) is None:
            return False
        self._remove(key)
        self.changed(key, "del", ev.GENERIC)
        return True

    def delete_if_empty(self, key: bytes) -> bool:
        """Redis never keeps an empty hash or set: drop the key once it empties."""
        v = self.data.get(key)
        if v is not None and type(v) is not bytes and not v:
            self._remove(key)
            self.changed(key, "del", ev.GENERIC)
            return True
        return False

    def _remove(self, key: bytes) -> None:
        if key in self.expires:
            self._unfile_expire(key)
        self._drop_value(key)

    def _drop_value(self, key: bytes) -> None:
        v = self.data.pop(key)
        size = value_size(key, v)
        self.used -= size
        self.ks.used -= size

    def set_expire(self, key: bytes, at_ms: int) -> None:
        """Give an existing key a deadline; a deadline in the past deletes it."""
        if at_ms <= self.ks.clock():
            self._remove(key)
            # Redis emits "del" for an EXPIRE that deletes at once.
            self.changed(key, "del", ev.GENERIC)
            return
        self._file_expire(key, at_ms)
        self.changed(key, "expire", ev.GENERIC)

    def persist(self, key: bytes) -> bool:
        if self.lookup(key) is None or key not in self.expires:
            return False
        self._unfile_expire(key)
        self.changed(key, "persist", ev.GENERIC)
        return True

    def rename(self, src: bytes, dst: bytes) -> None:
        """Move ``src`` (which must exist) to ``dst``, keeping its deadline."""
        value = self.data[src]
        when = self.expires.get(src)
        self._remove(src)
        if self.lookup(dst) is not None:
            self._remove(dst)
        self.put(dst, value, when)
        self.changed(src, "rename_from", ev.GENERIC)
        self.changed(dst, "rename_to", ev.GENERIC)

    def flush(self) -> None:
        if self.ks.journal is not None:
            self.ks.journal.barrier(records.encode_flushdb(self.id))
        self.touch_all()
        self.data = {}
        self.expires = {}
        self._buckets = {}
        self._live = {}
        self._heap = []
        self._scans.clear()
        self.ks.used -= self.used
        self.used = 0
        self.ks.dirty += 1

    # -- expiry ----------------------------------------------------------------------
    # A bucket is a plain list of keys (8 bytes per entry, where a set would cost
    # 30-60): removing a key from its bucket only decrements the bucket's live count,
    # and the stale entry is skipped when the bucket is reclaimed or compacted once
    # more than half of it is stale. A sliding-session refresh therefore costs O(1)
    # and leaves at most as much garbage as there are live keys.
    def _file_expire(self, key: bytes, when: int) -> None:
        expires = self.expires
        old = expires.get(key)
        bid = when >> _BUCKET_SHIFT
        expires[key] = when
        if old is not None:
            if old >> _BUCKET_SHIFT == bid:
                return  # still filed in the right bucket
            self._unbucket(old >> _BUCKET_SHIFT)
        bucket = self._buckets.get(bid)
        if bucket is None:
            bucket = self._buckets[bid] = []
            self._live[bid] = 0
            heapq.heappush(self._heap, bid)
        bucket.append(key)
        self._live[bid] += 1

    def _unfile_expire(self, key: bytes) -> None:
        when = self.expires.pop(key)
        self._unbucket(when >> _BUCKET_SHIFT)

    def _unbucket(self, bid: int) -> None:
        live = self._live.get(bid)
        if live is None:
            return
        live -= 1
        if live <= 0:
            del self._buckets[bid]  # its heap entry is dropped lazily
            del self._live[bid]
            return
        self._live[bid] = live
        bucket = self._buckets[bid]
        if len(bucket) > 64 and live * 2 < len(bucket):
            expires = self.expires
            kept = [k for k in dict.fromkeys(bucket) if expires.get(k, -1) >> _BUCKET_SHIFT == bid]
            bucket[:] = kept
            self._live[bid] = len(kept)

    def _expire(self, key: bytes) -> None:
        self._remove(key)
        self.ks.expired_keys += 1
        self.changed(key, "expired", ev.EXPIRED)

    def expire_due(self, now: int, deadline_ns: int) -> tuple[int, bool]:
        """Reclaim keys whose deadline passed, until ``deadline_ns`` (perf_counter_ns).

        Only buckets that closed before ``now`` are taken: every key still filed in
        them is due, so no time is spent looking at keys that are not. Keys of the
        bucket in progress are reclaimed at most 128 ms late (reads never see them:
        expiry is also checked on every access). Returns (keys reclaimed, whether due
        keys remain).
        """
        heap, buckets, live, expires = self._heap, self._buckets, self._live, self.expires
        now_bid = now >> _BUCKET_SHIFT
        done = 0
        clock = time.perf_counter_ns
        while heap and heap[0] < now_bid:
            bid = heap[0]
            bucket = buckets.get(bid)
            if bucket is None:
                heapq.heappop(heap)
                continue
            while bucket:
                key = bucket.pop()
                when = expires.get(key)
                if when is None or when >> _BUCKET_SHIFT != bid:
                    continue  # stale: deleted or refiled elsewhere
                live[bid] -= 1
                del expires[key]
                self._drop_value(key)
                self.ks.expired_keys += 1
                self.changed(key, "expired", ev.EXPIRED)
                done += 1
                if done & 31 == 0 and clock() >= deadline_ns:
                    self._drop_if_empty(bid)
                    return done, True
                if buckets.get(bid) is not bucket:
                    break  # a listener flushed or refiled this database
            self._drop_if_empty(bid)
            if heap and heap[0] == bid:
                heapq.heappop(heap)
        return done, False

    def _drop_if_empty(self, bid: int) -> None:
        bucket = self._buckets.get(bid)
        if bucket is not None and (not bucket or self._live.get(bid, 0) <= 0):
            del self._buckets[bid]
            self._live.pop(bid, None)

    def soonest_expiring(self) -> tuple[int, bytes] | None:
        """(deadline, key) of a key in the earliest non-empty bucket (for eviction)."""
        heap, buckets, expires = self._heap, self._buckets, self.expires
        while heap:
            bid = heap[0]
            bucket = buckets.get(bid)
            if bucket is not None:
                for key in bucket:
                    when = expires.get(key)
                    if when is not None and when >> _BUCKET_SHIFT == bid:
                        return when, key
                del buckets[bid]
                self._live.pop(bid, None)
            heapq.heappop(heap)
        return None


def key_too_large(limit: int) -> CommandError:
    return CommandError(f"ERR key is too large (max {limit} bytes)")


class MemoryKeyspace:
    """All databases of the embedded store plus their shared counters."""

    def __init__(
        self,
        databases: int = 16,
        clock: MsClock = system_ms,
        max_key_bytes: int = 64 * 1024,
        max_memory: int = 0,
        eviction_policy: str = "noeviction",
    ) -> None:
        self.clock = clock
        self.events = EventBus()
        self.max_key_bytes = max_key_bytes
        self.max_memory = max_memory
        self.eviction_policy = eviction_policy
        self.used = 0
        self.dirty = 0
        self.hits = 0
        self.misses = 0
        self.expired_keys = 0
        self.evicted_keys = 0
        self.expire_cycle_keys = 0
        # The write-ahead log (storage.persistence.journal.Journal) when persistence
        # is on: every change marks its key there.
        self.journal: Any = None
        # Large lists (finished SCAN snapshots) freed a slice at a time by the cycle,
        # so dropping a 1M-key snapshot never costs one request several ms.
        self._retired: list[list[bytes]] = []
        self.databases = [Database(i, self) for i in range(databases)]
        # What the empty keyspace itself takes: its databases' tables.
        self.overhead = sum(
            sys.getsizeof(d) + sum(sys.getsizeof(getattr(d, a)) for a in ("data", "expires", "watchers"))
            for d in self.databases
        )

    def db(self, index: int) -> Database:
        return self.databases[index]

    def on_change(self, listener: Callable[[ev.KeyEvent], None]) -> Callable[[], None]:
        return self.events.subscribe(listener)

    def swap(self, a: int, b: int) -> None:
        """SWAPDB: exchange contents; clients keep their db index (Redis semantics)."""
        if self.journal is not None:
            self.journal.barrier(records.encode_swapdb(a, b))
        da, db_ = self.databases[a], self.databases[b]
        da.touch_all(db_)
        db_.touch_all(da)
        for attr in ("data", "expires", "_buckets", "_live", "_heap", "used"):
            va, vb = getattr(da, attr), getattr(db_, attr)
            setattr(da, attr, vb)
            setattr(db_, attr, va)
        da._scans.clear()
        db_._scans.clear()
        # Keys now in ``da`` that WATCH clients of ``da`` see changed: already touched.
        self.dirty += 1

    def flush_all(self) -> None:
        journal, self.journal = self.journal, None
        if journal is not None:
            journal.barrier(records.encode_flushall())
        try:
            for d in self.databases:
                d.flush()
        finally:
            self.journal = journal

    def used_memory(self) -> int:
        """The dataset estimate plus the keyspace's fixed overhead (as Redis's
        ``used_memory`` never reads 0, so ``maxmemory 1`` refuses the first write)."""
        return self.used + self.overhead

    def total_keys(self) -> int:
        return sum(len(d.data) for d in self.databases)

    def keys_with_expiry(self) -> int:
        return sum(len(d.expires) for d in self.databases)

    def retire(self, big: list[bytes]) -> None:
        if len(big) > 50_000:
            self._retired.append(big)

    def _free_retired(self) -> None:
        while self._retired:
            big = self._retired[-1]
            del big[-50_000:]
            if big:
                return
            self._retired.pop()

    # -- active expiry -------------------------------------------------------------
    def active_expire_cycle(self, budget_ms: float) -> bool:
        """One bounded pass over all databases. Returns True if due keys remain
        (the caller should run again soon instead of waiting a full period)."""
        if self._retired:
            self._free_retired()
        deadline = time.perf_counter_ns() + int(budget_ms * 1_000_000)
        now = self.clock()
        backlog = False
        for d in self.databases:
            if not d._heap:
                continue
            n, more = d.expire_due(now, deadline)
            self.expire_cycle_keys += n
            if more:
                backlog = True
                break
        return backlog

    # -- maxmemory -----------------------------------------------------------------
    def ensure_memory(self) -> None:
        """Called before a command that may grow memory (Redis's ``denyoom``)."""
        if not self.max_memory or self.used + self.overhead <= self.max_memory:
            return
        if self.eviction_policy == "volatile-ttl":
            self._evict_soonest_expiring()
            if self.used + self.overhead <= self.max_memory:
                return
        raise OutOfMemoryError()

    def _evict_soonest_expiring(self) -> None:
        for _ in range(1000):
            if self.used + self.overhead <= self.max_memory:
                return
            best: tuple[int, bytes, Database] | None = None
            for d in self.databases:
                found = d.soonest_expiring()
                if found is not None and (best is None or found[0] < best[0]):
                    best = (found[0], found[1], d)
            if best is None:
                return
            _, key, d = best
            d._remove(key)
            self.evicted_keys += 1
            d.changed(key, "evicted", ev.EVICTED)
