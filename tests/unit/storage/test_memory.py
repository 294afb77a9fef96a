"""The embedded keyspace: Redis 7 expiry semantics with an injected clock."""

from __future__ import annotations

import time

import pytest

from tokenginx.clock import ManualClock
from tokenginx.errors import OutOfMemoryError, WrongTypeError
from tokenginx.storage.memory import MemoryKeyspace


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ks(clock: ManualClock) -> MemoryKeyspace:
    return MemoryKeyspace(clock=clock)


def test_ttl_codes_follow_redis(ks, clock):
    db = ks.db(0)
    assert db.pttl(b"missing") == -2
    db.set_string(b"k", b"v")
    assert db.pttl(b"k") == -1
    db.set_string(b"t", b"v", expire_at=clock() + 1500)
    assert db.pttl(b"t") == 1500


def test_expired_key_is_invisible_before_reclaim(ks, clock):
    db = ks.db(0)
    db.set_string(b"k", b"v", expire_at=clock() + 10)
    clock.advance(10)
    assert db.get_string(b"k") is None
    assert db.size() == 0  # lazily reclaimed by the read
    assert ks.expired_keys == 1


def test_set_clears_ttl_unless_kept(ks, clock):
    db = ks.db(0)
    db.set_string(b"k", b"v", expire_at=clock() + 1000)
    db.set_string(b"k", b"w", keep_ttl=True)
    assert db.pttl(b"k") == 1000
    db.set_string(b"k", b"x")
    assert db.pttl(b"k") == -1


def test_set_expire_in_the_past_deletes(ks, clock):
    db = ks.db(0)
    db.set_string(b"k", b"v")
    db.set_expire(b"k", clock() - 1)
    assert db.lookup(b"k") is None


def test_wrong_type(ks):
    db = ks.db(0)
    db.hash_for_write(b"h")[b"f"] = b"v"
    with pytest.raises(WrongTypeError):
        db.get_string(b"h")


def test_active_cycle_reclaims_without_reads(ks, clock):
    db = ks.db(0)
    for i in range(1000):
        db.set_string(b"k%d" % i, b"v", expire_at=clock() + 100 + i)
    db.set_string(b"forever", b"v")
    clock.advance(10_000)
    while ks.active_expire_cycle(budget_ms=50):
        pass
    assert db.size() == 1
    assert ks.expired_keys == 1000


def test_active_cycle_leaves_future_keys(ks, clock):
    db = ks.db(0)
    db.set_string(b"soon", b"v", expire_at=clock() + 50)
    db.set_string(b"later", b"v", expire_at=clock() + 60_000)
    clock.advance(1000)
    ks.active_expire_cycle(budget_ms=50)
    assert db.lookup(b"later") == b"v"
    assert b"soon" not in db.data


def test_refreshed_ttl_is_not_expired_at_old_deadline(ks, clock):
    db = ks.db(0)
    db.set_string(b"s", b"v", expire_at=clock() + 100)
    db.set_expire(b"s", clock() + 100_000)  # sliding session refresh
    clock.advance(5_000)
    ks.active_expire_cycle(budget_ms=50)
    assert db.lookup(b"s") == b"v"


def test_one_cycle_is_bounded_by_its_budget(clock):
    ks = MemoryKeyspace(clock=clock)
    db = ks.db(0)
    n = 200_000
    deadline = clock() + 1000
    for i in range(n):
        db.set_string(b"k%d" % i, b"v", expire_at=deadline)
    clock.advance(2000)
    t0 = time.perf_counter()
    more = ks.active_expire_cycle(budget_ms=2)
    elapsed_ms = (time.perf_counter() - t0) * 1000
    assert more, "a 2 ms slice cannot reclaim 200k keys"
    assert elapsed_ms < 50, elapsed_ms  # generous: the point is no full pass in one go
    cycles = 1
    while ks.active_expire_cycle(budget_ms=2):
        cycles += 1
    assert db.size() == 0
    assert cycles > 1


def test_memory_estimate_tracks_writes_and_deletes(ks):
    db = ks.db(0)
    empty = ks.used_memory()
    assert empty == ks.overhead > 0  # the empty keyspace's own tables
    db.set_string(b"k", b"v" * 100)
    grown = ks.used_memory()
    assert grown > empty + 100
    db.set_string(b"k", b"v" * 200)
    assert ks.used_memory() == grown + 100
    db.delete(b"k")
    assert ks.used_memory() == empty


def test_maxmemory_refuses_the_first_write_on_an_empty_keyspace(ks):
    ks.max_memory = 1
    with pytest.raises(OutOfMemoryError):
        ks.ensure_memory()
    ks.max_memory = ks.overhead
    ks.ensure_memory()


def test_scan_returns_every_stable_key_despite_deletes(ks):
    db = ks.db(0)
    for i in range(1000):
        db.set_string(b"k%d" % i, b"v")
    seen: list[bytes] = []
    cursor = 0
    deleted = set()
    while True:
        cursor, keys = db.scan(cursor, 37, None, None)
        seen.extend(keys)
        # delete some keys not yet seen, and add new ones, between pages
        for i in range(0, 1000, 97):
            k = b"k%d" % i
            if k not in seen and k not in deleted:
                db.delete(k)
                deleted.add(k)
                break
        db.set_string(b"new%d" % len(seen), b"v")
        if cursor == 0:
            break
    stable = {b"k%d" % i for i in range(1000)} - deleted
    assert stable <= set(seen)
    assert len(seen) == len(set(seen))


def test_swap_and_flush(ks):
    ks.db(0).set_string(b"a", b"1")
    ks.db(1).set_string(b"b", b"2")
    ks.swap(0, 1)
    assert ks.db(0).lookup(b"b") == b"2"
    assert ks.db(1).lookup(b"a") == b"1"
    ks.flush_all()
    assert ks.total_keys() == 0
    assert ks.used_memory() == ks.overhead


def test_events_are_emitted(ks, clock):
    events = []
    ks.on_change(lambda e: events.append((e.db, e.key, e.event)))
    db = ks.db(0)
    db.set_string(b"k", b"v", expire_at=clock() + 5)
    clock.advance(5)
    db.lookup(b"k")
    assert events == [(0, b"k", "new"), (0, b"k", "set"), (0, b"k", "expire"), (0, b"k", "expired")]


def test_volatile_ttl_eviction(clock):
    ks = MemoryKeyspace(clock=clock, max_memory=1, eviction_policy="volatile-ttl")
    db = ks.db(0)
    db.set_string(b"soon", b"v" * 100, expire_at=clock() + 1000)
    db.set_string(b"late", b"v" * 100, expire_at=clock() + 9000)
    ks.max_memory = ks.used_memory() - 1
    ks.ensure_memory()
    assert db.lookup(b"soon") is None and db.lookup(b"late") is not None
    assert ks.evicted_keys == 1


def test_sliding_refresh_leaves_bounded_garbage(ks, clock):
    db = ks.db(0)
    for i in range(100):
        db.set_string(b"s%d" % i, b"v", expire_at=clock() + 1000)
    for _ in range(200):  # every session refreshed 200 times, each into a new bucket
        clock.advance(200)
        for i in range(100):
            db.set_expire(b"s%d" % i, clock() + 1000)
    filed = sum(len(b) for b in db._buckets.values())
    assert filed <= 2 * len(db.expires) + 64 * len(db._buckets)
    clock.advance(5000)
    while ks.active_expire_cycle(budget_ms=50):
        pass
    assert db.size() == 0 and not db._buckets


def test_cycle_does_not_walk_keys_that_are_not_due_yet(clock):
    """Regression: the bucket holding a common deadline opens up to 128 ms early; the
    cycle must not walk its (not yet due) keys one by one in a single slice."""
    ks = MemoryKeyspace(clock=clock)
    db = ks.db(0)
    base = (clock() >> 7 << 7) + 128  # start of the next bucket
    for i in range(200_000):
        db.set_string(b"k%d" % i, b"v", expire_at=base + 100)
    clock.now = base + 50  # inside the bucket, before the deadline
    t0 = time.perf_counter()
    assert ks.active_expire_cycle(budget_ms=1) is False
    assert (time.perf_counter() - t0) * 1000 < 5
    assert db.size() == 200_000
    clock.now = base + 128  # the bucket has closed: everything in it is due
    while ks.active_expire_cycle(budget_ms=5):
        pass
    assert db.size() == 0


def _full_scan(db, count=7, first=None):
    cursor, seen = 0, []
    while True:
        cursor, keys = db.scan(cursor, count, None, None)
        seen.extend(keys)
        if first is not None:
            first()
            first = None
        if cursor == 0:
            return seen


def test_concurrent_scans_share_one_key_list(ks):
    db = ks.db(0)
    for i in range(1000):
        db.set_string(b"k%d" % i, b"v")
    cursors = [db.scan(0, 10, None, None)[0] for _ in range(20)]
    assert all(cursors) and len(db._scans) == 1  # twenty scans, one list
    # Keys created during a scan are in the list it walks; keys present throughout are
    # all returned.
    seen = _full_scan(db, first=lambda: [db.set_string(b"new%d" % i, b"v") for i in range(50)])
    assert {b"k%d" % i for i in range(1000)} <= set(seen)
    assert len(db._scans) == 1


def test_the_shared_list_is_renewed_when_mostly_deleted_keys(ks):
    db = ks.db(0)
    for i in range(3000):
        db.set_string(b"k%d" % i, b"v")
    db.scan(0, 10, None, None)
    for i in range(2990):
        db.delete(b"k%d" % i)
    for i in range(500):
        db.set_string(b"n%d" % i, b"v")  # appended: the list is now over 2x the keyspace
    first_list = db._scans[db._scan_current]
    db.scan(0, 10, None, None)
    assert db._scans[db._scan_current] is not first_list
    assert len(db._scans) == 2
