"""Encode handler replies (see :mod:`tokenginx.replies`) as RESP2 or RESP3 bytes."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tokenginx.errors import CommandError
from tokenginx.replies import NULL_ARRAY, Push, Replies, Status, Verbatim

_OK = b"+OK\r\n"
_NULL2 = b"$-1\r\n"
_NULL_ARRAY2 = b"*-1\r\n"
_NULL3 = b"_\r\n"
_CACHED_STATUS: dict[bytes, bytes] = {}
_SMALL_INTS = [b":%d\r\n" % i for i in range(-1, 1024)]


def _error(e: CommandError) -> bytes:
    # A CR or LF inside an error would break framing (Redis replaces them with spaces).
    msg = e.message.replace("\r", " ").replace("\n", " ")
    return b"-" + msg.encode("utf-8", "replace") + b"\r\n"


def _status(v: bytes) -> bytes:
    enc = _CACHED_STATUS.get(v)
    if enc is None:
        enc = b"+" + bytes(v).replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"
        if len(_CACHED_STATUS) < 256:
            _CACHED_STATUS[bytes(v)] = enc
    return enc


def _double_text(v: float) -> bytes:
    if math.isinf(v):
        return b"inf" if v > 0 else b"-inf"
    if math.isnan(v):
        return b"nan"
    if v == int(v) and abs(v) < 1e17:
        return b"%d" % int(v)
    return repr(v).encode()


def encode_resp2(v: Any) -> bytes:
    t = type(v)
    if t is bytes:
        return b"$%d\r\n%b\r\n" % (len(v), v)
    if t is Status:
        return _OK if v == b"OK" else _status(v)
    if t is int:
        if -1 <= v < 1023:
            return _SMALL_INTS[v + 1]
        return b":%d\r\n" % v
    if v is None:
        return _NULL2
    if t is list or t is tuple or t is Push:
        return b"".join([b"*%d\r\n" % len(v), *map(encode_resp2, v)])
    if t is str:
        b = v.encode("utf-8", "surrogateescape")
        return b"$%d\r\n%b\r\n" % (len(b), b)
    if isinstance(v, CommandError):
        return _error(v)
    if t is bool:
        return b":1\r\n" if v else b":0\r\n"
    if t is float:
        s = _double_text(v)
        return b"$%d\r\n%b\r\n" % (len(s), s)
    if t is dict:
        parts = [b"*%d\r\n" % (2 * len(v))]
        for k, val in v.items():
            parts.append(encode_resp2(k))
            parts.append(encode_resp2(val))
        return b"".join(parts)
    if t is set or t is frozenset:
        return b"".join([b"*%d\r\n" % len(v), *map(encode_resp2, v)])
    if t is Verbatim or isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        return b"$%d\r\n%b\r\n" % (len(b), b)
    if v is NULL_ARRAY:
        return _NULL_ARRAY2
    if t is Replies:
        return b"".join(map(encode_resp2, v))
    if isinstance(v, int):
        return b":%d\r\n" % int(v)
    raise TypeError(f"cannot encode {t.__name__} as RESP")


def encode_resp3(v: Any) -> bytes:
    t = type(v)
    if t is bytes:
        return b"$%d\r\n%b\r\n" % (len(v), v)
    if t is Status:
        return _OK if v == b"OK" else _status(v)
    if t is int:
        if -1 <= v < 1023:
            return _SMALL_INTS[v + 1]
        return b":%d\r\n" % v
    if v is None or v is NULL_ARRAY:
        return _NULL3
    if t is list or t is tuple:
        return b"".join([b"*%d\r\n" % len(v), *map(encode_resp3, v)])
    if t is str:
        b = v.encode("utf-8", "surrogateescape")
        return b"$%d\r\n%b\r\n" % (len(b), b)
    if isinstance(v, CommandError):
        return _error(v)
    if t is bool:
        return b"#t\r\n" if v else b"#f\r\n"
    if t is float:
        return b",%b\r\n" % _double_text(v)
    if t is dict:
        parts = [b"%%%d\r\n" % len(v)]
        for k, val in v.items():
            parts.append(encode_resp3(k))
            parts.append(encode_resp3(val))
        return b"".join(parts)
    if t is set or t is frozenset:
        return b"".join([b"~%d\r\n" % len(v), *map(encode_resp3, v)])
    if t is Push:
        return b"".join([b">%d\r\n" % len(v), *map(encode_resp3, v)])
    if t is Verbatim:
        return b"=%d\r\ntxt:%b\r\n" % (len(v) + 4, bytes(v))
    if t is Replies:
        return b"".join(map(encode_resp3, v))
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        return b"$%d\r\n%b\r\n" % (len(b), b)
    if isinstance(v, int):
        return b":%d\r\n" % int(v)
    raise TypeError(f"cannot encode {t.__name__} as RESP")


Encoder = Callable[[Any], bytes]


def encoder_for(protocol: int) -> Encoder:
    return encode_resp3 if protocol == 3 else encode_resp2
