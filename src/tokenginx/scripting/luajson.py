"""``cjson.encode`` / ``cjson.decode`` for scripts, with lua-cjson 2.1's observable
behaviour (redis/deps/lua/src/lua_cjson.c).

The Lua wrappers in the prelude call these with Lua values (lupa objects, bytes,
numbers) and the script's current settings (:class:`Config`, kept per Lua runtime by
the prelude's ``cjson.encode_max_depth`` & co.), and turn a returned error message
into a Lua error. What scripts can see, and is kept here:

* numbers are written with ``%.<precision>g`` (14 digits by default); NaN/Inf are
  refused, written as ``nan``/``inf`` or as ``null`` (``encode_invalid_numbers``);
* ``/`` is escaped as ``\\/``; bytes ≥ 0x80 pass through unchanged;
* a table whose keys are all positive integers is an array (holes become ``null``);
  too sparse an array is refused or written as an object (``encode_sparse_array``);
  an empty table is ``{}``;
* decoding is lua-cjson's own tokenizer: numbers are read by ``strtod`` (so with
  ``decode_invalid_numbers`` on, the default, ``+1``, ``0x10``, ``012``, ``inf`` and
  ``nan`` are numbers), a NUL byte ends the text, ``null`` decodes to the
  ``cjson.null`` sentinel;
* nesting is limited by the configured depth and, as in Redis, by the Lua C stack
  (LUAI_MAXCSTACK slots for the C function), with lua-cjson's error texts.

Both directions are iterative: deep nesting never reaches Python's recursion limit.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lupa.lua51 import lua_type

# lua_checkstack() refuses when a C function's frame would exceed this many slots.
LUAI_MAXCSTACK = 8000


@dataclass(frozen=True)
class Config:
    """lua-cjson's json_config_t (the parts that change what scripts see)."""

    encode_max_depth: int = 1000
    encode_number_precision: int = 14
    encode_invalid_numbers: int = 0  # 0 refuse, 1 "nan"/"inf", 2 "null"
    encode_sparse_convert: bool = False
    encode_sparse_ratio: int = 2
    encode_sparse_safe: int = 10
    decode_max_depth: int = 1000
    decode_invalid_numbers: bool = True


DEFAULT = Config()

_ESCAPES = {i: b"\\u%04x" % i for i in (*range(0x20), 0x7F)}
_ESCAPES.update(
    {
        0x08: b"\\b",
        0x09: b"\\t",
        0x0A: b"\\n",
        0x0C: b"\\f",
        0x0D: b"\\r",
        0x22: b'\\"',
        0x5C: b"\\\\",
        0x2F: b"\\/",
    }
)
_TRANSLATE = [_ESCAPES.get(i, bytes([i])) for i in range(256)]


class _EncodeError(Exception):
    pass


def _number(v: float, cfg: Config) -> bytes:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        if cfg.encode_invalid_numbers == 0:
            raise _EncodeError("Cannot serialise number: must not be NaN or Inf")
        if cfg.encode_invalid_numbers == 2:
            return b"null"
        if math.isnan(v):
            return b"nan"  # never "-nan"
    return b"%.*g" % (cfg.encode_number_precision, v)


def _string(s: bytes) -> bytes:
    return b'"' + b"".join([_TRANSLATE[c] for c in s]) + b'"'


def _type_name(v: Any) -> str:
    t = lua_type(v)
    return t if t is not None else "userdata"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _Key:
    """A pending object key on the encoder's work stack."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key


class _Value:
    """A pending value: ``depth`` tables enclose it, using ``slots`` Lua stack slots."""

    __slots__ = ("value", "depth", "slots")

    def __init__(self, value: Any, depth: int, slots: int) -> None:
        self.value, self.depth, self.slots = value, depth, slots


def encode(
    value: Any, is_null: Callable[[Any], bool], cfg: Config = DEFAULT
) -> tuple[bool, bytes | str]:
    """``(True, json)`` or ``(False, message)``."""
    out: list[bytes] = []
    work: list[Any] = [_Value(value, 0, 1)]  # json_encode's frame holds its argument
    try:
        while work:
            item = work.pop()
            if isinstance(item, bytes):
                out.append(item)
            elif isinstance(item, _Key):
                k = item.key
                if _is_number(k):
                    out.append(b'"' + _number(k, cfg) + b'":')
                elif isinstance(k, bytes):
                    out.append(_string(k) + b":")
                else:
                    raise _EncodeError(
                        f"Cannot serialise {_type_name(k)}: table key must be a number or string"
                    )
            else:
                _encode_value(item, out, work, is_null, cfg)
    except _EncodeError as e:
        return False, str(e)
    return True, b"".join(out)


def _encode_value(
    item: _Value, out: list[bytes], work: list[Any], is_null: Callable[[Any], bool], cfg: Config
) -> None:
    v = item.value
    if v is None:
        out.append(b"null")
    elif v is True:
        out.append(b"true")
    elif v is False:
        out.append(b"false")
    elif _is_number(v):
        out.append(_number(v, cfg))
    elif isinstance(v, bytes):
        out.append(_string(v))
    elif lua_type(v) == "table":
        depth = item.depth + 1
        # json_check_encode_depth: the depth setting, then lua_checkstack(l, 3).
        if depth > cfg.encode_max_depth or item.slots + 3 > LUAI_MAXCSTACK:
            raise _EncodeError(f"Cannot serialise, excessive nesting ({depth})")
        items = list(v.items())
        length = _array_length(items, cfg)
        if length > 0:
            values = dict(items)
            out.append(b"[")
            work.append(b"]")
            for i in range(length, 0, -1):  # lua_rawgeti: one slot
                work.append(_Value(values.get(i), depth, item.slots + 1))
                if i > 1:
                    work.append(b",")
            return
        out.append(b"{")
        work.append(b"}")
        for n in range(len(items) - 1, -1, -1):  # lua_next: key and value
            k, x = items[n]
            work.append(_Value(x, depth, item.slots + 2))
            work.append(_Key(k))
            if n > 0:
                work.append(b",")
    elif lua_type(v) == "userdata" and is_null(v):
        out.append(b"null")
    else:
        raise _EncodeError(f"Cannot serialise {_type_name(v)}: type not supported")


def _array_length(items: list[tuple[Any, Any]], cfg: Config) -> int:
    """lua_array_length: the array's length, or -1 for an object."""
    max_index = 0
    for k, _ in items:
        if _is_number(k) and k >= 1 and (math.isinf(k) or math.floor(k) == k):
            if k > max_index:
                # C's (int) of a double: out of range (inf too) is INT_MIN on x86-64.
                max_index = int(k) if k < 2**31 else -(2**31)
        else:
            return -1
    if (
        cfg.encode_sparse_ratio > 0
        and max_index > len(items) * cfg.encode_sparse_ratio
        and max_index > cfg.encode_sparse_safe
    ):
        if not cfg.encode_sparse_convert:
            raise _EncodeError("Cannot serialise table: excessively sparse array")
        return -1
    return max_index


# -- decoding ------------------------------------------------------------------------------
class _DecodeError(Exception):
    pass


_WS = re.compile(rb"[ \t\n\r]*")
_PLAIN_STRING = re.compile(rb'"([^"\\\x00]*)"')
# What glibc's strtod reads: hexadecimal, decimal, inf[inity], nan[(chars)].
_STRTOD = re.compile(
    rb"[+-]?(?:"
    rb"0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
    rb"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    rb"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?"
    rb"|[nN][aA][nN](?:\([0-9A-Za-z_]*\))?"
    rb")"
)
_ESCAPE_CHARS = {
    ord('"'): b'"',
    ord("\\"): b"\\",
    ord("/"): b"/",
    ord("b"): b"\b",
    ord("t"): b"\t",
    ord("n"): b"\n",
    ord("f"): b"\f",
    ord("r"): b"\r",
}
_SINGLE = {
    ord("{"): "T_OBJ_BEGIN",
    ord("}"): "T_OBJ_END",
    ord("["): "T_ARR_BEGIN",
    ord("]"): "T_ARR_END",
    ord(","): "T_COMMA",
    ord(":"): "T_COLON",
}
_UNKNOWN = frozenset(b'fiInNt"+-0123456789')

# A token: (type, 0-based index, value). Errors are ("T_ERROR", index, reason).
_Token = tuple[str, int, Any]


def _strtod(text: bytes) -> float:
    if text.lstrip(b"+-")[:2] in (b"0x", b"0X"):
        try:
            return float.fromhex(text.decode())
        except OverflowError:  # strtod gives HUGE_VAL
            return -math.inf if text.startswith(b"-") else math.inf
    low = text.lower()
    if b"nan" in low:
        return -math.nan if low.startswith(b"-") else math.nan
    return float(text)


def _is_invalid_number(data: bytes, pos: int) -> bool:
    """json_is_invalid_number: a "number" strict JSON refuses (+, hex, leading zero,
    inf, nan)."""
    p = pos
    c = data[p] if p < len(data) else 0
    if c == 0x2B:  # '+'
        return True
    if c == 0x2D:  # '-'
        p += 1
        c = data[p] if p < len(data) else 0
    if c == 0x30:  # '0'
        c2 = data[p + 1] if p + 1 < len(data) else 0
        return (c2 | 0x20) == 0x78 or 0x30 <= c2 <= 0x39
    if c <= 0x39:
        return False
    head = data[p : p + 3].lower()
    return head in (b"inf", b"nan")


class _Parser:
    def __init__(self, data: bytes, cfg: Config) -> None:
        end = data.find(b"\x00")
        self.data = data if end < 0 else data[:end]  # a NUL is T_END
        self.pos = 0
        self.cfg = cfg

    def token(self) -> _Token:
        data = self.data
        pos = _WS.match(data, self.pos).end()  # type: ignore[union-attr]
        self.pos = pos
        if pos >= len(data):
            return ("T_END", pos, None)
        c = data[pos]
        single = _SINGLE.get(c)
        if single is not None:
            self.pos = pos + 1
            return (single, pos, None)
        if c not in _UNKNOWN:
            return ("T_ERROR", pos, "invalid token")
        if c == 0x22:  # '"'
            return self.string(pos)
        if c == 0x2D or 0x30 <= c <= 0x39:
            if not self.cfg.decode_invalid_numbers and _is_invalid_number(data, pos):
                return ("T_ERROR", pos, "invalid number")
            return self.number(pos)
        if data.startswith(b"true", pos):
            self.pos = pos + 4
            return ("T_BOOLEAN", pos, True)
        if data.startswith(b"false", pos):
            self.pos = pos + 5
            return ("T_BOOLEAN", pos, False)
        if data.startswith(b"null", pos):
            self.pos = pos + 4
            return ("T_NULL", pos, None)
        if self.cfg.decode_invalid_numbers and _is_invalid_number(data, pos):
            return self.number(pos)
        return ("T_ERROR", pos, "invalid token")

    def number(self, pos: int) -> _Token:
        m = _STRTOD.match(self.data, pos)
        if m is None:
            return ("T_ERROR", pos, "invalid number")
        self.pos = m.end()
        return ("T_NUMBER", pos, _strtod(m.group()))

    def string(self, start: int) -> _Token:
        data = self.data
        m = _PLAIN_STRING.match(data, start)
        if m is not None:
            self.pos = m.end()
            return ("T_STRING", start, m.group(1))
        parts: list[bytes] = []
        p = start + 1
        n = len(data)
        while True:
            q = p
            while q < n and data[q] != 0x22 and data[q] != 0x5C:
                q += 1
            parts.append(data[p:q])
            p = q
            if p >= n:
                self.pos = p
                return ("T_ERROR", p, "unexpected end of string")
            if data[p] == 0x22:
                self.pos = p + 1
                return ("T_STRING", start, b"".join(parts))
            esc = data[p + 1] if p + 1 < n else 0
            if esc == 0x75:  # 'u'
                got = _unicode_escape(data, p)
                if got is None:
                    self.pos = p
                    return ("T_ERROR", p, "invalid unicode escape code")
                parts.append(got[0])
                p += got[1]
                continue
            char = _ESCAPE_CHARS.get(esc)
            if char is None:
                self.pos = p
                return ("T_ERROR", p, "invalid escape code")
            parts.append(char)
            p += 2


def _hex4(data: bytes, p: int) -> int:
    digits = data[p : p + 4]
    if len(digits) < 4 or not all(c in b"0123456789abcdefABCDEF" for c in digits):
        return -1
    return int(digits, 16)


def _unicode_escape(data: bytes, p: int) -> tuple[bytes, int] | None:
    """json_append_unicode_escape: (UTF-8 bytes, escape length) or None."""
    code = _hex4(data, p + 2)
    if code < 0:
        return None
    length = 6
    if code & 0xF800 == 0xD800:
        if code & 0x400:
            return None
        if data[p + 6 : p + 8] != b"\\u":
            return None
        low = _hex4(data, p + 8)
        if low < 0 or low & 0xFC00 != 0xDC00:
            return None
        code = (((code & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000
        length = 12
    return chr(code).encode("utf-8", "surrogatepass"), length


def decode(
    data: bytes, new_table: Callable[[Any], Any], null: Any, cfg: Config = DEFAULT
) -> tuple[bool, Any]:
    """``(True, lua value)`` or ``(False, message)``. ``new_table`` builds a Lua table."""
    if len(data) >= 2 and (data[0] == 0 or data[1] == 0):
        return False, "JSON parser does not support UTF-16 or UTF-32"
    if b"\x00" not in data and _SURROGATE_ESCAPE.search(data) is None:
        fast = _fast_decode(data, new_table, null, cfg)
        if fast is not _FALLBACK:
            return True, fast
    try:
        return True, _decode(_Parser(data, cfg), new_table, null)
    except _DecodeError as e:
        return False, str(e)


# json.loads (C) agrees with lua-cjson on every text it accepts, except: a NUL ends
# lua-cjson's text, lone surrogate escapes are errors there, NaN/Infinity depend on
# decode_invalid_numbers, and nesting limits. Texts with a NUL or a surrogate escape
# take the tokenizer; so does anything json.loads refuses or nests too deeply, which
# also gives lua-cjson's error text.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_FALLBACK: Any = object()
_CONSTANTS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# Nesting that always fits the Lua stack (an object level takes 2 slots, 3 to enter).
_SAFE_DEPTH = (LUAI_MAXCSTACK - 2) // 2


class _Fallback(Exception):
    pass


def _fast_decode(data: bytes, new_table: Callable[[Any], Any], null: Any, cfg: Config) -> Any:
    def constant(name: str) -> float:
        if not cfg.decode_invalid_numbers:
            raise _Fallback
        return _CONSTANTS[name]

    limit = min(cfg.decode_max_depth, _SAFE_DEPTH)

    def conv(v: Any, depth: int) -> Any:
        if isinstance(v, str):
            return v.encode("utf-8", "surrogateescape")
        if v is None:
            return null
        if isinstance(v, (bool, float)):
            return v
        if depth >= limit:
            raise _Fallback
        if isinstance(v, list):
            return new_table([conv(x, depth + 1) for x in v])
        return new_table(
            {k.encode("utf-8", "surrogateescape"): conv(x, depth + 1) for k, x in v.items()}
        )

    try:
        parsed = json.loads(
            data.decode("utf-8", "surrogateescape"),
            strict=False,
            parse_int=float,
            parse_constant=constant,
        )
        return conv(parsed, 0)
    except (ValueError, RecursionError, _Fallback):
        return _FALLBACK


def _expected(what: str, token: _Token) -> _DecodeError:
    found = token[2] if token[0] == "T_ERROR" else token[0]
    return _DecodeError(f"Expected {what} but found {found} at character {token[1] + 1}")


def _decode(parser: _Parser, new_table: Callable[[Any], Any], null: Any) -> Any:
    # Open containers: [is_object, items (list or dict), pending key]. ``slots`` is
    # what json_decode's frame holds on the Lua stack (its argument, then a table per
    # array and a table and key per object being filled).
    stack: list[list[Any]] = []
    slots = 1
    max_depth = parser.cfg.decode_max_depth
    token = parser.token()
    while True:
        # Here ``token`` starts a value (json_process_value).
        kind = token[0]
        if kind == "T_OBJ_BEGIN" or kind == "T_ARR_BEGIN":
            is_object = kind == "T_OBJ_BEGIN"
            need = 3 if is_object else 2
            depth = len(stack) + 1
            if depth > max_depth or slots + need > LUAI_MAXCSTACK:
                raise _DecodeError(
                    f"Found too many nested data structures ({depth}) at character {parser.pos}"
                )
            token = parser.token()
            end = "T_OBJ_END" if is_object else "T_ARR_END"
            if token[0] == end:
                value = new_table({} if is_object else [])
            else:
                if is_object:
                    if token[0] != "T_STRING":
                        raise _expected("object key string", token)
                    key = token[2]
                    token = parser.token()
                    if token[0] != "T_COLON":
                        raise _expected("colon", token)
                    stack.append([True, {}, key])
                    slots += 2
                else:
                    stack.append([False, [], None])
                    slots += 1
                if is_object:
                    token = parser.token()
                continue
        elif kind == "T_STRING" or kind == "T_NUMBER" or kind == "T_BOOLEAN":
            value = token[2]
        elif kind == "T_NULL":
            value = null
        else:
            raise _expected("value", token)
        # A value is complete: store it, then close as many containers as end here.
        while True:
            if not stack:
                token = parser.token()
                if token[0] != "T_END":
                    raise _expected("the end", token)
                return value
            top = stack[-1]
            if top[0]:
                top[1][top[2]] = value
            else:
                top[1].append(value)
            token = parser.token()
            if token[0] == ("T_OBJ_END" if top[0] else "T_ARR_END"):
                stack.pop()
                slots -= 2 if top[0] else 1
                value = new_table(top[1])
                continue
            if token[0] != "T_COMMA":
                raise _expected("comma or object end" if top[0] else "comma or array end", token)
            token = parser.token()
            if top[0]:
                if token[0] != "T_STRING":
                    raise _expected("object key string", token)
                top[2] = token[2]
                token = parser.token()
                if token[0] != "T_COLON":
                    raise _expected("colon", token)
                token = parser.token()
            break
