"""Bulk snapshot frames: round trip, validation, and loading into a keyspace."""

import pytest

from tokenginx.clock import ManualClock
from tokenginx.storage.memory import MemoryKeyspace
from tokenginx.storage.persistence import records as rec
from tokenginx.storage.persistence.manager import apply_record


def test_bulk_round_trip():
    keys = [b"a", b"", b"\x00\xff" * 100]
    values = [b"1", b"", b"x" * 70000]
    for deadlines in (None, [1, 2, -3]):
        got = rec.decode_payload(rec.encode_bulk(2, keys, values, deadlines))
        assert got == (rec.OP_BULK, 2, keys, values, deadlines)
    assert rec.decode_payload(rec.encode_bulk(0, [], [], None)) == (rec.OP_BULK, 0, [], [], None)


@pytest.mark.parametrize("cut", [1, 5, 12, 20, -1])
def test_truncated_or_padded_bulk_is_corrupt(cut):
    payload = rec.encode_bulk(0, [b"ab", b"c"], [b"1", b"22"], [5, 6])
    bad = payload[:cut] if cut > 0 else payload + b"!"
    with pytest.raises(rec.CorruptRecord):
        rec.decode_payload(bad)


def test_apply_bulk_skips_expired_and_files_deadlines():
    clock = ManualClock()
    ks = MemoryKeyspace(clock=clock)
    now = clock()
    record = rec.decode_payload(
        rec.encode_bulk(0, [b"old", b"new"], [b"x", b"y"], [now - 1, now + 5000])
    )
    apply_record(ks, record, now)
    db = ks.db(0)
    assert db.lookup(b"old") is None
    assert db.lookup(b"new") == b"y" and db.pttl(b"new") == 5000
    reference = MemoryKeyspace(clock=clock)
    reference.db(0).set_string(b"new", b"y", expire_at=now + 5000)
    assert ks.used_memory() == reference.used_memory()


def test_apply_bulk_over_existing_keys_replaces_them():
    ks = MemoryKeyspace(clock=ManualClock())
    ks.db(0).set_string(b"k", b"old")
    apply_record(ks, rec.decode_payload(rec.encode_bulk(0, [b"k"], [b"new"], None)), 0)
    assert ks.db(0).lookup(b"k") == b"new"
