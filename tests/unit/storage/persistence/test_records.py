"""The on-disk record codec: payloads, file headers and frame scanning."""

from __future__ import annotations

import struct
import zlib

import pytest

from tokenginx.storage.persistence import records as rec

PLAIN = rec.PlainText()
HEADER_STRUCT = struct.Struct("<8sHHQq")


def _roundtrip(payload: bytes) -> rec.Record:
    return rec.decode_payload(payload)


# -- payloads --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "value"),
    [
        (b"k", b"v"),
        (b"", b""),
        (b"\x00\xff\r\n", bytes(range(256))),
        (b"big", b"x" * 1_000_000),
    ],
)
@pytest.mark.parametrize("deadline", [None, 1, 1_700_000_123_456, 2**62])
def test_string_roundtrip(key, value, deadline):
    decoded = _roundtrip(rec.encode_value(3, key, value, deadline))
    assert decoded == (rec.OP_STR, 3, key, value, deadline)
    assert type(decoded[3]) is bytes


@pytest.mark.parametrize(
    "value",
    [
        {},
        {b"": b""},
        {b"f": b"v", b"\x00": b"\xff" * 300, b"empty": b""},
        {f"field-{i}".encode(): (b"%d" % i) * (i % 7) for i in range(20_000)},
    ],
)
def test_hash_roundtrip(value):
    decoded = _roundtrip(rec.encode_value(15, b"h\x00", value, 1_700_000_000_001))
    assert decoded == (rec.OP_HASH, 15, b"h\x00", value, 1_700_000_000_001)
    assert type(decoded[3]) is dict


@pytest.mark.parametrize(
    "value",
    [
        set(),
        {b""},
        {b"a", b"\x00\x01", b"\r\n" * 50},
        {b"m%d" % i for i in range(20_000)},
    ],
)
def test_set_roundtrip(value):
    decoded = _roundtrip(rec.encode_value(0, b"s", value, None))
    assert decoded == (rec.OP_SET, 0, b"s", value, None)
    assert type(decoded[3]) is set


@pytest.mark.parametrize("key", [b"", b"k", b"\x00" * 1000])
def test_del_roundtrip(key):
    assert _roundtrip(rec.encode_del(65535, key)) == (rec.OP_DEL, 65535, key)


def test_database_wide_records_roundtrip():
    assert _roundtrip(rec.encode_flushdb(7)) == (rec.OP_FLUSHDB, 7)
    assert _roundtrip(rec.encode_flushall()) == (rec.OP_FLUSHALL,)
    assert _roundtrip(rec.encode_swapdb(0, 15)) == (rec.OP_SWAPDB, 0, 15)
    assert _roundtrip(rec.encode_end(0)) == (rec.OP_END, 0)
    assert _roundtrip(rec.encode_end(2**40)) == (rec.OP_END, 2**40)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00",
        b"\x63garbage",
        rec.encode_value(0, b"key", b"value", None)[:-1],  # short value
        rec.encode_value(0, b"key", b"value", None) + b"x",  # trailing bytes
        rec.encode_value(0, b"h", {b"f": b"v"}, None)[:-2],
        rec.encode_value(0, b"s", {b"m1", b"m2"}, None)[:-1],
        rec.encode_del(0, b"key")[:-1],
        rec.encode_flushdb(0)[:-1],
        rec.encode_flushall() + b"\x00",
        rec.encode_swapdb(0, 1)[:-1],
        rec.encode_end(5)[:-1],
    ],
)
def test_malformed_payloads_raise_corrupt_record(payload):
    with pytest.raises(rec.CorruptRecord):
        rec.decode_payload(payload)


# -- headers ---------------------------------------------------------------------------
def test_header_roundtrip():
    data = rec.encode_header(rec.LOG_MAGIC, 42, 1_700_000_000_000, PLAIN)
    assert len(data) == rec.HEADER_SIZE
    h = rec.decode_header(data + b"frames follow", rec.LOG_MAGIC)
    assert h == rec.Header(rec.LOG_MAGIC, rec.FORMAT_VERSION, 0, 42, 1_700_000_000_000)


def test_header_sealed_flag():
    class Sealed(rec.PlainText):
        sealed = True

    data = rec.encode_header(rec.SNAPSHOT_MAGIC, 1, 0, Sealed())
    assert rec.decode_header(data, rec.SNAPSHOT_MAGIC).flags & rec.FLAG_SEALED


def _header_with(magic: bytes, version: int) -> bytes:
    head = HEADER_STRUCT.pack(magic, version, 0, 1, 0)
    return head + struct.pack("<I", zlib.crc32(head))


def test_header_bad_magic():
    with pytest.raises(rec.CorruptRecord, match="not a TokenginX data file"):
        rec.decode_header(_header_with(b"REDIS001", rec.FORMAT_VERSION), rec.LOG_MAGIC)
    # A snapshot is not a log and vice versa.
    snap = rec.encode_header(rec.SNAPSHOT_MAGIC, 1, 0, PLAIN)
    with pytest.raises(rec.CorruptRecord, match="magic"):
        rec.decode_header(snap, rec.LOG_MAGIC)


def test_header_newer_version_is_refused():
    with pytest.raises(rec.CorruptRecord, match="newer"):
        rec.decode_header(_header_with(rec.LOG_MAGIC, rec.FORMAT_VERSION + 1), rec.LOG_MAGIC)


@pytest.mark.parametrize("byte", range(rec.HEADER_SIZE))
def test_header_any_flipped_bit_is_detected(byte):
    data = bytearray(rec.encode_header(rec.LOG_MAGIC, 9, 123, PLAIN))
    data[byte] ^= 0x10
    with pytest.raises(rec.CorruptRecord):
        rec.decode_header(bytes(data), rec.LOG_MAGIC)


def test_header_too_short():
    with pytest.raises(rec.CorruptRecord, match="shorter"):
        rec.decode_header(rec.encode_header(rec.LOG_MAGIC, 1, 0, PLAIN)[:-1], rec.LOG_MAGIC)


# -- frames ----------------------------------------------------------------------------
PAYLOADS = [
    rec.encode_value(0, b"a", b"1", None),
    rec.encode_value(1, b"h", {b"f": b"v"}, 1_700_000_000_000),
    rec.encode_value(2, b"s", {b"x", b"y"}, None),
    rec.encode_del(0, b"a"),
    rec.encode_flushdb(3),
    rec.encode_swapdb(1, 2),
    rec.encode_flushall(),
    rec.encode_value(0, b"last", b"z" * 100, None),
]


def _file(payloads=PAYLOADS) -> tuple[bytes, list[int]]:
    """Header + frames, and the offset of each frame."""
    data = bytearray(rec.encode_header(rec.LOG_MAGIC, 1, 0, PLAIN))
    offsets = []
    for p in payloads:
        offsets.append(len(data))
        data += rec.frame(p)
    return bytes(data), offsets


def _scan(data: bytes) -> tuple[list[rec.Record], rec.ScanResult]:
    scan = rec.ScanResult(good_end=rec.HEADER_SIZE, records=0)
    out = list(rec.iter_frames(memoryview(data), rec.HEADER_SIZE, PLAIN, scan))
    return out, scan


def test_iter_frames_reads_every_record():
    data, _ = _file()
    records, scan = _scan(data)
    assert records == [rec.decode_payload(p) for p in PAYLOADS]
    assert scan.bad_offset is None
    assert scan.records == len(PAYLOADS)
    assert scan.good_end == len(data)


def test_iter_frames_empty_file():
    data, _ = _file([])
    records, scan = _scan(data)
    assert records == [] and scan.bad_offset is None and scan.good_end == rec.HEADER_SIZE


@pytest.mark.parametrize("cut", [1, 4, 7, 8, 9, 50, 108])
def test_torn_tail_stops_and_is_not_resyncable(cut):
    data, offsets = _file()
    last = offsets[-1]
    torn = data[: last + cut]  # every cut leaves the last frame (131 bytes) partial
    records, scan = _scan(torn)
    assert records == [rec.decode_payload(p) for p in PAYLOADS[:-1]]
    assert scan.bad_offset == last
    assert scan.good_end == last
    assert "truncated" in scan.error
    assert scan.resyncable is False


@pytest.mark.parametrize("where", ["length", "crc", "payload"])
def test_flipped_bit_in_the_middle_is_resyncable(where):
    data, offsets = _file()
    bad = offsets[2]
    pos = {"length": bad + 2, "crc": bad + 5, "payload": bad + 12}[where]
    damaged = bytearray(data)
    damaged[pos] ^= 0x04
    records, scan = _scan(bytes(damaged))
    assert records == [rec.decode_payload(p) for p in PAYLOADS[:2]]
    assert scan.bad_offset == bad
    assert scan.good_end == bad
    assert scan.resyncable is True
    if where != "length":
        assert scan.error == "checksum mismatch"
    assert rec.next_good_frame(memoryview(bytes(damaged)), bad + 1) == offsets[3]


def test_flipped_bit_in_the_last_frame_is_not_resyncable():
    data, offsets = _file()
    damaged = bytearray(data)
    damaged[-3] ^= 0x01
    records, scan = _scan(bytes(damaged))
    assert len(records) == len(PAYLOADS) - 1
    assert scan.bad_offset == offsets[-1]
    assert scan.error == "checksum mismatch"
    assert scan.resyncable is False


def test_valid_checksum_with_garbage_payload_is_reported():
    data, offsets = _file(PAYLOADS[:2] + [b"\x63nonsense"] + PAYLOADS[2:])
    records, scan = _scan(data)
    assert len(records) == 2
    assert scan.bad_offset == offsets[2]
    assert "unknown record type" in scan.error
    assert scan.resyncable is True


def test_zero_filled_tail_is_a_torn_tail():
    # After a power loss the file may be extended with zeros past the last write.
    data, _ = _file()
    records, scan = _scan(data + bytes(4096))
    assert len(records) == len(PAYLOADS)
    assert scan.bad_offset == len(data)
    assert scan.resyncable is False


def test_next_good_frame():
    data, offsets = _file()
    view = memoryview(data)
    assert rec.next_good_frame(view, rec.HEADER_SIZE) == offsets[0]
    for i, off in enumerate(offsets[:-1]):
        assert rec.next_good_frame(view, off) == off
        assert rec.next_good_frame(view, off + 1) == offsets[i + 1]
    assert rec.next_good_frame(view, offsets[-1] + 1) == -1
    assert rec.next_good_frame(view, len(data)) == -1
    # The window bounds the search.
    assert rec.next_good_frame(view, offsets[0] + 1, window=2) == -1
    assert (
        rec.next_good_frame(view, offsets[0] + 1, window=offsets[1] - offsets[0] + 8) == offsets[1]
    )


def test_next_good_frame_skips_zero_length_frames():
    assert rec.next_good_frame(memoryview(bytes(64)), 0) == -1


def test_read_file(tmp_path):
    data, _ = _file()
    path = tmp_path / "log-0000000001.tgx"
    path.write_bytes(data)
    header, raw = rec.read_file(str(path), rec.LOG_MAGIC, PLAIN)
    assert header.base == 1 and raw == data
    with pytest.raises(rec.CorruptRecord):
        rec.read_file(str(path), rec.SNAPSHOT_MAGIC, PLAIN)


def test_sealer_is_applied_on_read():
    class Xor:
        sealed = True

        def seal(self, payload: bytes) -> bytes:
            return bytes(b ^ 0x5A for b in payload)

        def open(self, sealed: bytes) -> bytes:
            return bytes(b ^ 0x5A for b in sealed)

    sealer = Xor()
    data = rec.encode_header(rec.LOG_MAGIC, 1, 0, sealer) + b"".join(
        rec.frame(sealer.seal(p)) for p in PAYLOADS
    )
    scan = rec.ScanResult(good_end=rec.HEADER_SIZE, records=0)
    out = list(rec.iter_frames(memoryview(data), rec.HEADER_SIZE, sealer, scan))
    assert out == [rec.decode_payload(p) for p in PAYLOADS]
    # Read without the key, the same frames are garbage, not silently wrong data.
    _, plain_scan = _scan(data)
    assert plain_scan.bad_offset == rec.HEADER_SIZE
