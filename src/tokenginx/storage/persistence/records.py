"""On-disk records: one codec for the write-ahead log and for snapshots.

A data file is a header followed by framed records::

    header  = magic(8) version(u16) flags(u16) base(u64) created_ms(i64) crc32(u32)
    frame   = length(u32) crc32(u32) payload(length bytes)
    payload = op(u8) body            (sealed by a Sealer when encryption is on)

Records describe the *resulting state* of a key (``STR``/``HASH``/``SET`` with its
absolute deadline in Unix ms, or ``DEL``), plus the database-wide operations
``FLUSHDB``, ``FLUSHALL`` and ``SWAPDB``. Replaying them in order rebuilds the
keyspace whatever command produced them (scripts and transactions included), and a
key whose deadline passed while the server was down stays dead. ``version`` lets a
later format migrate old files; ``flags`` bit 0 says the payloads are sealed.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Protocol

LOG_MAGIC = b"TGXLOG\r\n"
SNAPSHOT_MAGIC = b"TGXSNP\r\n"
FORMAT_VERSION = 1
FLAG_SEALED = 1

OP_STR = 1
OP_HASH = 2
OP_SET = 3
OP_DEL = 4
OP_FLUSHDB = 5
OP_FLUSHALL = 6
OP_SWAPDB = 7
OP_END = 8
OP_BULK = 9  # snapshots: many string keys of one database in one frame

_HEADER = struct.Struct("<8sHHQq")
HEADER_SIZE = _HEADER.size + 4
_FRAME = struct.Struct("<II")
_KEYED = struct.Struct("<BHqI")  # op, db, deadline, key length
_U32 = struct.Struct("<I")
_DEL = struct.Struct("<BHI")
_FLUSHDB = struct.Struct("<BH")
_SWAPDB = struct.Struct("<BHH")
_END = struct.Struct("<BQ")
MAX_RECORD = 1 << 31
# Public for the journal's inlined string encoding.
KEYED, U32, FRAME = _KEYED, _U32, _FRAME


class Sealer(Protocol):
    """The at-rest encryption seam: ``seal`` runs on every payload written, ``open``
    on every payload read. The security release plugs AES-256-GCM / SM4-GCM in here."""

    sealed: bool

    def seal(self, payload: bytes) -> bytes: ...
    def open(self, sealed: bytes) -> bytes: ...


class PlainText:
    sealed = False

    def seal(self, payload: bytes) -> bytes:
        return payload

    def open(self, sealed: bytes) -> bytes:
        return sealed


class CorruptRecord(Exception):
    """A frame whose length or checksum does not hold, or whose payload is garbage."""


@dataclass(frozen=True)
class Header:
    magic: bytes
    version: int
    flags: int
    base: int
    created_ms: int


def encode_header(magic: bytes, base: int, created_ms: int, sealer: Sealer) -> bytes:
    flags = FLAG_SEALED if sealer.sealed else 0
    head = _HEADER.pack(magic, FORMAT_VERSION, flags, base, created_ms)
    return head + _U32.pack(zlib.crc32(head))


def decode_header(data: bytes, magic: bytes) -> Header:
    if len(data) < HEADER_SIZE:
        raise CorruptRecord("file shorter than its header")
    head = data[: _HEADER.size]
    (crc,) = _U32.unpack_from(data, _HEADER.size)
    if zlib.crc32(head) != crc:
        raise CorruptRecord("header checksum mismatch")
    m, version, flags, base, created = _HEADER.unpack(head)
    if m != magic:
        raise CorruptRecord(f"not a TokenginX data file (magic {m!r})")
    if version > FORMAT_VERSION:
        raise CorruptRecord(f"format version {version} is newer than this server ({FORMAT_VERSION})")
    return Header(m, version, flags, base, created)


def frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


# -- payloads ---------------------------------------------------------------------------
def encode_value(db: int, key: bytes, value: bytes | dict | set, deadline: int | None) -> bytes:
    d = deadline or 0
    t = type(value)
    if t is bytes:
        return b"".join((_KEYED.pack(OP_STR, db, d, len(key)), key, _U32.pack(len(value)), value))  # type: ignore[arg-type]
    parts = [b""]
    if t is dict:
        parts[0] = _KEYED.pack(OP_HASH, db, d, len(key))
        parts.append(key)
        parts.append(_U32.pack(len(value)))
        for f, v in value.items():  # type: ignore[union-attr]
            parts += (_U32.pack(len(f)), f, _U32.pack(len(v)), v)
    else:
        parts[0] = _KEYED.pack(OP_SET, db, d, len(key))
        parts.append(key)
        parts.append(_U32.pack(len(value)))
        for m in value:  # type: ignore[union-attr]
            parts += (_U32.pack(len(m)), m)
    return b"".join(parts)


def encode_del(db: int, key: bytes) -> bytes:
    return _DEL.pack(OP_DEL, db, len(key)) + key


def encode_flushdb(db: int) -> bytes:
    return _FLUSHDB.pack(OP_FLUSHDB, db)


def encode_flushall() -> bytes:
    return bytes((OP_FLUSHALL,))


def encode_swapdb(a: int, b: int) -> bytes:
    return _SWAPDB.pack(OP_SWAPDB, a, b)


_BULK_HEAD = struct.Struct("<BHIB")  # op, db, count, has_deadlines


def _le(a: array) -> bytes:
    if sys.byteorder != "little":
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def encode_bulk(db: int, keys: list[bytes], values: list[bytes], deadlines: list[int] | None) -> bytes:
    """Many *string* keys of one database::

        op db count has_deadlines | key lengths (u32 each) | value lengths (u32 each)
        | deadlines (i64 each, if any) | keys, concatenated | values, concatenated

    Loading it is mostly C work (array parsing, slicing, ``dict.update``), which is
    what makes a snapshot restart fast; the layout is ours, so it never depends on the
    Python version."""
    parts = [
        _BULK_HEAD.pack(OP_BULK, db, len(keys), 1 if deadlines is not None else 0),
        _le(array("I", map(len, keys))),
        _le(array("I", map(len, values))),
    ]
    if deadlines is not None:
        parts.append(_le(array("q", deadlines)))
    parts.append(b"".join(keys))
    parts.append(b"".join(values))
    return b"".join(parts)


def _from_le(typecode: str, data: bytes) -> array:
    a = array(typecode)
    a.frombytes(data)
    if sys.byteorder != "little":
        a.byteswap()
    return a


def _split(blob: bytes, lengths: array) -> list[bytes]:
    ends = list(accumulate(lengths))
    return [blob[a:b] for a, b in zip([0, *ends[:-1]], ends)] if ends else []


def encode_end(count: int) -> bytes:
    return _END.pack(OP_END, count)


Record = tuple  # (op, ...) as produced by decode_payload


def decode_payload(p: bytes) -> Record:
    """``(OP_STR|OP_HASH|OP_SET, db, key, value, deadline_or_None)``, ``(OP_DEL, db,
    key)``, ``(OP_FLUSHDB, db)``, ``(OP_FLUSHALL,)``, ``(OP_SWAPDB, a, b)`` or
    ``(OP_END, count)``. Raises :class:`CorruptRecord` on anything malformed."""
    try:
        op = p[0]
        if op in (OP_STR, OP_HASH, OP_SET):
            _, db, deadline, klen = _KEYED.unpack_from(p, 0)
            pos = _KEYED.size
            key = p[pos : pos + klen]
            pos += klen
            (n,) = _U32.unpack_from(p, pos)
            pos += 4
            if op == OP_STR:
                value: bytes | dict | set = p[pos : pos + n]
                pos += n
            elif op == OP_HASH:
                h = {}
                for _ in range(n):
                    (fl,) = _U32.unpack_from(p, pos)
                    f = p[pos + 4 : pos + 4 + fl]
                    pos += 4 + fl
                    (vl,) = _U32.unpack_from(p, pos)
                    h[f] = p[pos + 4 : pos + 4 + vl]
                    pos += 4 + vl
                value = h
            else:
                s = set()
                for _ in range(n):
                    (ml,) = _U32.unpack_from(p, pos)
                    s.add(p[pos + 4 : pos + 4 + ml])
                    pos += 4 + ml
                value = s
            if pos != len(p) or len(key) != klen:
                raise CorruptRecord("record length does not match its content")
            return (op, db, key, value, deadline or None)
        if op == OP_DEL:
            _, db, klen = _DEL.unpack_from(p, 0)
            key = p[_DEL.size :]
            if len(key) != klen:
                raise CorruptRecord("record length does not match its content")
            return (OP_DEL, db, key)
        if op == OP_FLUSHDB:
            return (OP_FLUSHDB, _FLUSHDB.unpack(p)[1])
        if op == OP_FLUSHALL and len(p) == 1:
            return (OP_FLUSHALL,)
        if op == OP_SWAPDB:
            _, a, b = _SWAPDB.unpack(p)
            return (OP_SWAPDB, a, b)
        if op == OP_END:
            return (OP_END, _END.unpack(p)[1])
        if op == OP_BULK:
            return _decode_bulk(p)
    except (struct.error, IndexError):
        raise CorruptRecord("truncated record payload") from None
    raise CorruptRecord(f"unknown record type {p[0] if p else None}")


def _decode_bulk(p: bytes) -> Record:
    try:
        _, db, n, has_deadlines = _BULK_HEAD.unpack_from(p, 0)
        pos = _BULK_HEAD.size
        klens = _from_le("I", p[pos : pos + 4 * n])
        pos += 4 * n
        vlens = _from_le("I", p[pos : pos + 4 * n])
        pos += 4 * n
        deadlines = None
        if has_deadlines:
            deadlines = _from_le("q", p[pos : pos + 8 * n]).tolist()
            pos += 8 * n
    except (struct.error, ValueError):
        raise CorruptRecord("bad bulk record") from None
    ksize, vsize = sum(klens), sum(vlens)
    if len(klens) != n or len(vlens) != n or pos + ksize + vsize != len(p):
        raise CorruptRecord("bulk record length does not match its content")
    keys = _split(p[pos : pos + ksize], klens)
    values = _split(p[pos + ksize :], vlens)
    return (OP_BULK, db, keys, values, deadlines)


@dataclass
class ScanResult:
    """What reading a file found: records up to ``good_end`` are valid."""

    good_end: int
    records: int
    bad_offset: int | None = None  # where the first bad frame starts
    error: str = ""
    # The bad frame runs past the end of the file, or only zeros follow: what a crash
    # during a write (or a power loss) leaves behind.
    torn: bool = False
    # Valid frames follow the bad one all the way to the end of the file: damage in
    # the middle rather than a torn tail.
    resyncable: bool = False
    # Where reading can safely go on (the end of the damaged frame, proven by its
    # length and the frames after it), for repair.
    skip_to: int | None = None


def iter_frames(data: memoryview, start: int, sealer: Sealer, scan: ScanResult) -> Iterator[Record]:
    """Yield the decoded records of ``data[start:]``; stop at the first bad frame and
    describe it in ``scan``."""
    pos = start
    end = len(data)
    unpack = _FRAME.unpack_from
    crc32 = zlib.crc32
    opener = sealer.open if sealer.sealed else None
    while pos < end:
        if end - pos < _FRAME.size:
            _describe(scan, data, pos, "truncated frame header", torn=True)
            return
        length, crc = unpack(data, pos)
        body_start = pos + _FRAME.size
        if length > MAX_RECORD or body_start + length > end:
            _describe(scan, data, pos, "truncated frame", torn=True)
            return
        payload = data[body_start : body_start + length]
        if crc32(payload) != crc:
            _describe(scan, data, pos, "checksum mismatch", torn=False, skip_to=body_start + length)
            return
        try:
            record = decode_payload(opener(bytes(payload)) if opener else bytes(payload))
        except CorruptRecord as e:
            _describe(scan, data, pos, str(e), torn=False, skip_to=body_start + length)
            return
        pos = body_start + length
        scan.good_end = pos
        scan.records += 1
        yield record


def _describe(
    scan: ScanResult, data: memoryview, pos: int, error: str, torn: bool, skip_to: int | None = None
) -> None:
    scan.bad_offset, scan.error = pos, error
    if not any(data[pos:]):  # only zeros to the end: a power loss extended the file
        scan.torn, scan.resyncable, scan.skip_to = True, False, None
        return
    if not torn:  # the frame fits in the file but its checksum or content is bad
        scan.skip_to = skip_to
        scan.resyncable = skip_to is not None and skip_to < len(data) and _chain_from(data, skip_to)
        # A bad last frame is what a crash leaves when the file grew before its data
        # reached the disk: a torn tail too.
        scan.torn = not scan.resyncable
        return
    # The frame runs past the end of the file. Either a crash tore it (the common
    # case), or its length field was damaged in the middle of the log. Only in the
    # second case does its payload, up to the next valid frame, still match its
    # checksum; anything else found inside a torn frame is just stored data.
    scan.torn = True
    scan.skip_to = None
    if len(data) - pos >= _FRAME.size:
        _, crc = _FRAME.unpack_from(data, pos)
        nxt = next_good_frame(data, pos + _FRAME.size, 1 << 20)
        if nxt >= 0 and zlib.crc32(data[pos + _FRAME.size : nxt]) == crc and _chain_from(data, nxt):
            scan.resyncable, scan.skip_to = True, nxt
            scan.error = "damaged length field"


def _chain_from(data: memoryview, pos: int) -> bool:
    """Do valid frames run from ``pos`` to the end of the file (possibly ending in a
    torn frame)?"""
    end = len(data)
    unpack = _FRAME.unpack_from
    while pos + _FRAME.size <= end:
        length, crc = unpack(data, pos)
        if pos + _FRAME.size + length > end:
            return True
        if zlib.crc32(data[pos + 8 : pos + 8 + length]) != crc:
            return False
        pos += _FRAME.size + length
    return pos == end


def next_good_frame(data: memoryview, pos: int, window: int | None = None) -> int:
    """Offset of the first valid frame at or after ``pos`` (``-1`` if none within
    ``window`` bytes). A torn tail has none after it; a flipped bit in the middle of a
    log does."""
    end = len(data) if window is None else min(len(data), pos + window)
    unpack = _FRAME.unpack_from
    crc32 = zlib.crc32
    for p in range(pos, end - _FRAME.size):
        length, crc = unpack(data, p)
        if 0 < length <= len(data) - p - _FRAME.size and crc32(data[p + 8 : p + 8 + length]) == crc:
            return p
    return -1


def read_file(path: str, magic: bytes, sealer: Sealer) -> tuple[Header, bytes]:
    with open(path, "rb") as f:
        data = f.read()
    return decode_header(data, magic), data
