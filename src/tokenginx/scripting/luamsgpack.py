"""``cmsgpack.pack`` / ``cmsgpack.unpack*`` for scripts, with lua-cmsgpack's behaviour.

This is Redis 7's ``deps/lua/src/lua_cmsgpack.c`` (lua-cmsgpack 0.4.0 with Redis's
security fixes) redone in Python. The Lua wrappers in the prelude check the arguments,
call these with Lua values (lupa objects, bytes, numbers) and raise the returned error
message. What scripts can see, and what is kept here:

* a table is an array when its keys are exactly ``1..n`` (an empty table is an empty
  array), otherwise a map in ``next`` order; tables nested deeper than
  :data:`MAX_NESTING` are written as nil; functions, userdata, threads are nil;
* a number with an integral value in int64 range is the smallest integer type (``-0``
  is ``0``); any other number is a float 32 when that is lossless, else a float 64;
* strings are fixstr / str 8 / str 16 / str 32 (``0xd9``-``0xdb``, never bin types),
  and decoding accepts only those: bin and ext types are "Bad data format in input.";
* uint 64 values above 2^63 - 1 decode wrapped to negative numbers, as in C;
* the C functions work on Lua's C stack (:data:`MAX_CSTACK` slots, counting the
  caller's arguments) and check it before every push: the same checks are made here
  on a model of that stack, so the same inputs fail with the same "stack overflow
  (...)" messages instead of exhausting anything.

Errors are returned, never raised: ``(False, message, level)`` where ``level`` is the
``error()`` level the wrapper uses (2 for ``luaL_error``, which names the script's
line; 0 for errors Lua itself raises inside the C function, such as "table index is
nil"). A ``None`` message means the script was stopped while working here:
``check_time`` is the engine's instruction-hook callback, called every
:data:`_CHECK_EVERY` values so that a long call (a table referring to itself 8 times
has 8^16 values to write) lets the server turn busy and serve SCRIPT KILL, as Lua code
does; it returns True once the script is killed.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

from lupa.lua51 import lua_type

MAX_NESTING = 16  # LUACMSGPACK_MAX_NESTING
MAX_CSTACK = 8000  # LUAI_MAXCSTACK: the stack slots one C function may use
MAX_PACK_ARGS = MAX_CSTACK // 2  # mp_pack's lua_checkstack(L, nargs) on nargs slots
INT_MAX = 2**31 - 1
INT64_MIN = -(2**63)
_CHECK_EVERY = 4096  # values handled between two looks at the time limit

_NIL = b"\xc0"
_FLOAT = struct.Struct(">f")
_DOUBLE = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_STRUCTS = {
    0xCC: struct.Struct(">B"),
    0xCD: _U16,
    0xCE: _U32,
    0xCF: struct.Struct(">Q"),
    0xD0: struct.Struct(">b"),
    0xD1: struct.Struct(">h"),
    0xD2: struct.Struct(">i"),
    0xD3: struct.Struct(">q"),
    0xCA: _FLOAT,
    0xCB: _DOUBLE,
}
_PLAIN_KEYS = (bytes, int, float)  # not bool: True == 1 in Python, not in Lua
_SCALARS = (type(None), bool, int, float, bytes)  # decoded values that are not tables
_TOO_MANY_VALUES = "too many return values at once; use unpack_one or unpack_limit instead."

Result = tuple[Any, ...]
CheckTime = Callable[[], bool]


class _Fail(Exception):
    """An error for the script: ``message`` (None: time limit) at ``error()`` ``level``."""

    def __init__(self, message: str | None, level: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.level = level


def _stack_overflow(what: str) -> _Fail:
    return _Fail(f"stack overflow ({what})")  # luaL_checkstack's message


def _failure(e: _Fail) -> Result:
    return False, None if e.message is None else e.message.encode(), e.level


def _c_int(n: int) -> int:
    """``(int) n`` for a 64-bit ``n``, as printed by the C code's ``%d``."""
    return (n + 2**31) % 2**32 - 2**31


def lua_tointeger(n: float) -> int:
    """``lua_tointeger`` on x86-64: truncation; NaN and out-of-range give INT64_MIN."""
    if isinstance(n, int):
        return n
    if math.isnan(n) or not -(2.0**63) <= n < 2.0**63:
        return INT64_MIN
    return int(n)


# -- encoding -----------------------------------------------------------------------------
def _encode_int(n: int) -> bytes:
    if n >= 0:
        if n <= 0x7F:
            return bytes((n,))
        if n <= 0xFF:
            return b"\xcc" + bytes((n,))
        if n <= 0xFFFF:
            return b"\xcd" + n.to_bytes(2, "big")
        if n <= 0xFFFFFFFF:
            return b"\xce" + n.to_bytes(4, "big")
        return b"\xcf" + n.to_bytes(8, "big")
    if n >= -32:
        return bytes((n & 0xFF,))
    if n >= -128:
        return b"\xd0" + n.to_bytes(1, "big", signed=True)
    if n >= -32768:
        return b"\xd1" + n.to_bytes(2, "big", signed=True)
    if n >= -(2**31):
        return b"\xd2" + n.to_bytes(4, "big", signed=True)
    return b"\xd3" + n.to_bytes(8, "big", signed=True)


def _encode_number(d: float) -> bytes:
    if math.isfinite(d) and d.is_integer() and -(2.0**63) <= d < 2.0**63:
        return _encode_int(int(d))  # IS_INT64_EQUIVALENT: -0.0 is 0 too
    try:
        f = _FLOAT.pack(d)  # rounds to nearest, as C's (float) conversion
    except OverflowError:  # beyond float's range: C's conversion gives inf != d
        f = None
    if f is not None and _FLOAT.unpack(f)[0] == d:  # never true for NaN
        return b"\xca" + f
    return b"\xcb" + _DOUBLE.pack(d)


def _header(n: int, fix: int, fix_max: int, code16: int) -> bytes:
    """fix / 16-bit / 32-bit length header (arrays, maps; strings start at str 8)."""
    if n <= fix_max:
        return bytes((fix | n,))
    if n <= 0xFFFF:
        return bytes((code16,)) + _U16.pack(n)
    return bytes((code16 + 1,)) + _U32.pack(n & 0xFFFFFFFF)


def _encode_bytes(s: bytes) -> bytes:
    n = len(s)
    if n < 32:
        return bytes((0xA0 | n,)) + s
    if n <= 0xFF:
        return b"\xd9" + bytes((n,)) + s
    if n <= 0xFFFF:
        return b"\xda" + _U16.pack(n) + s
    return b"\xdb" + _U32.pack(n & 0xFFFFFFFF) + s


def _array_size(t: Any) -> int:
    """table_is_an_array: ``n`` when the keys are exactly ``1..n`` (no hole, no other
    key; 0 for an empty table), else -1."""
    count = highest = 0
    for count, k in enumerate(t, 1):  # noqa: B007 - the count is the result
        # A positive number with an integral value that fits a C int.
        if type(k) is not int or not 0 < k <= INT_MAX:
            return -1
        highest = max(highest, k)
    return count if highest == count else -1


def pack(values: tuple[Any, ...], check_time: CheckTime | None = None) -> Result:
    """``(True, data)`` or ``(False, message, level)``: every value's encoding, concatenated.

    The caller (the Lua wrapper) has already refused no values and more than
    :data:`MAX_PACK_ARGS`; the stack model starts with the arguments on the stack.
    """
    out: list[bytes] = []
    append = out.append
    handled = 0

    def encode(v: Any, level: int, top: int) -> None:
        # ``top``: stack slots in use, ``v`` (on top of the stack in C) included.
        nonlocal handled
        handled += 1
        if check_time is not None and handled % _CHECK_EVERY == 0 and check_time():
            raise _Fail(None)
        t = type(v)
        if t is bytes:
            append(_encode_bytes(v))
        elif t is int:
            append(_encode_int(v) if INT64_MIN <= v < 2**63 else _encode_number(float(v)))
        elif t is float:
            append(_encode_number(v))
        elif t is bool:
            append(b"\xc3" if v else b"\xc2")
        elif v is not None and level < MAX_NESTING and lua_type(v) == "table":
            table(v, level, top)
        else:  # nil, a table nested too deep, and every other type
            append(_NIL)

    def table(t: Any, level: int, top: int) -> None:
        # Passes over the table as the C code makes them, holding one key or value at a
        # time: each nested table held from Python takes a slot in Lua's registry.
        if top + 2 > MAX_CSTACK:
            raise _stack_overflow("in function table_is_an_array")
        count = _array_size(t)
        if count >= 0:
            if top + 1 > MAX_CSTACK:
                raise _stack_overflow("in function mp_encode_lua_table_as_array")
            append(_header(count, 0x90, 15, 0xDC))
            for j in range(1, count + 1):
                encode(t[j], level + 1, top + 1)
            return
        if top + 3 > MAX_CSTACK:
            raise _stack_overflow("in function mp_encode_lua_table_as_map")
        append(_header(sum(1 for _ in t), 0x80, 15, 0xDE))
        for k, v in t.items():
            encode(k, level + 1, top + 3)  # stack: ... table key value key
            encode(v, level + 1, top + 2)

    try:
        nargs = len(values)
        for i, v in enumerate(values, 1):
            encode(v, 0, nargs + i)  # the arguments, i - 1 results, then v
    except _Fail as e:
        return _failure(e)
    return True, b"".join(out)


# -- decoding -----------------------------------------------------------------------------
class _Container:
    """A table being decoded: ``slot`` is the stack slot of the table itself.

    Its items are set in order, one ``lua_settable`` each in C. Here they are
    buffered while they are plain values (one ``table_from`` is much faster), and the
    Lua table is made at the first nested table: that one, like every later item, is
    set in at once, so Python holds at most the tables on the path being decoded
    (each held table takes a slot in Lua's registry, and the registry never shrinks).
    """

    __slots__ = ("is_map", "left", "slot", "buffer", "table", "count", "key", "has_key")

    def __init__(self, is_map: bool, left: int, slot: int) -> None:
        self.is_map = is_map
        self.left = left
        self.slot = slot
        self.buffer: list[Any] | None = []
        self.table: Any = None
        self.count = 0  # items stored
        self.key: Any = None
        self.has_key = False


class _Decoder:
    def __init__(
        self,
        data: bytes,
        pos: int,
        new_table: Callable[[Any], Any],
        check_time: CheckTime | None,
    ) -> None:
        self.data = data
        self.pos = pos
        self.new_table = new_table
        self.check_time = check_time
        self.handled = 0

    def need(self, n: int) -> None:
        if len(self.data) - self.pos < n:
            raise _Fail("Missing bytes in input.")

    def value(self, top: int) -> Any:
        """One value, pushed (in C) on a stack of ``top`` slots; nested tables are
        decoded with an explicit stack, since msgpack nesting has no limit."""
        open_tables: list[_Container] = []
        while True:
            value, container = self.item(top)
            if container is not None:
                if container.left:
                    open_tables.append(container)
                    # An array element goes above the table and its index, a map key
                    # above the table.
                    top = container.slot + (0 if container.is_map else 1)
                    continue
                value = self.new_table([])
            while open_tables:
                parent = open_tables[-1]
                if parent.is_map and not parent.has_key:
                    parent.key, parent.has_key = value, True
                    top = parent.slot + 1  # the value goes above the table and the key
                    break
                if parent.is_map:
                    key = parent.key
                    if key is None:
                        raise _Fail("table index is nil", 0)
                    if type(key) is float and math.isnan(key):
                        raise _Fail("table index is NaN", 0)
                    parent.key, parent.has_key = None, False
                    self.store(parent, key, value)
                else:
                    self.store(parent, parent.count + 1, value)
                key = value = None  # a table now lives in its parent only
                parent.left -= 1
                if parent.left:
                    top = parent.slot + (0 if parent.is_map else 1)
                    break
                open_tables.pop()
                value = self.finish(parent)
            else:
                return value

    def store(self, c: _Container, key: Any, value: Any) -> None:
        c.count += 1
        buffer = c.buffer
        if buffer is not None:
            if type(value) in _SCALARS and (not c.is_map or type(key) in _PLAIN_KEYS):
                buffer.append((key, value) if c.is_map else value)
                return
            self.flush(c)
        c.table[key] = value

    def flush(self, c: _Container) -> None:
        buffer, c.buffer = c.buffer, None
        assert buffer is not None
        if not c.is_map:
            c.table = self.new_table(buffer)  # t[1..n], in order
            return
        pairs = dict(buffer)  # these keys are equal in Python exactly when equal in Lua
        if len(pairs) == len(buffer):  # no repeated key: the same insertions, in order
            c.table = self.new_table(pairs)
            return
        c.table = self.new_table([])
        for k, v in buffer:  # one lua_settable each, in order, as the C code
            c.table[k] = v

    def finish(self, c: _Container) -> Any:
        if c.buffer is not None:
            self.flush(c)
        table, c.table = c.table, None
        return table

    def item(self, top: int) -> tuple[Any, _Container | None]:
        """A scalar, or the header of a table (its items are still to be read)."""
        self.handled += 1
        check_time = self.check_time
        if check_time is not None and self.handled % _CHECK_EVERY == 0 and check_time():
            raise _Fail(None)
        self.need(1)
        if top + 1 > MAX_CSTACK:
            raise _stack_overflow(_TOO_MANY_VALUES)
        data, pos = self.data, self.pos
        b = data[pos]
        if b <= 0x7F:  # positive fixint
            self.pos += 1
            return b, None
        if b >= 0xE0:  # negative fixint
            self.pos += 1
            return b - 0x100, None
        if 0xA0 <= b <= 0xBF:  # fixstr
            n = b & 0x1F
            self.need(1 + n)
            self.pos += 1 + n
            return data[pos + 1 : pos + 1 + n], None
        if b <= 0x9F:  # fixmap 0x80-0x8f, fixarray 0x90-0x9f
            self.pos += 1
            return None, self.container(b < 0x90, b & 0x0F, top)
        if b == 0xC0:
            self.pos += 1
            return None, None
        if b == 0xC2 or b == 0xC3:
            self.pos += 1
            return b == 0xC3, None
        st = _STRUCTS.get(b)
        if st is not None:
            self.need(1 + st.size)
            (v,) = st.unpack_from(data, pos + 1)
            self.pos += 1 + st.size
            if b == 0xCF and v >= 2**63:  # lua_pushunsigned is lua_pushinteger
                v -= 2**64
            return v, None
        if b == 0xD9 or b == 0xDA:  # str 8, str 16
            size = 1 if b == 0xD9 else 2
            self.need(1 + size)
            n = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
            self.need(1 + size + n)
            self.pos += 1 + size + n
            return data[pos + 1 + size : pos + 1 + size + n], None
        if b == 0xDB:  # str 32
            self.need(5)
            (n,) = _U32.unpack_from(data, pos + 1)
            self.pos += 5
            self.need(n)
            self.pos += n
            return data[pos + 5 : pos + 5 + n], None
        if 0xDC <= b <= 0xDF:  # array 16, array 32, map 16, map 32
            st = _U16 if b in (0xDC, 0xDE) else _U32
            self.need(1 + st.size)
            (n,) = st.unpack_from(data, pos + 1)
            self.pos += 1 + st.size
            return None, self.container(b >= 0xDE, n, top)
        raise _Fail("Bad data format in input.")  # 0xc1, bin and ext types

    def container(self, is_map: bool, n: int, top: int) -> _Container:
        slot = top + 1  # lua_newtable
        if not is_map and slot + 1 > MAX_CSTACK:
            raise _stack_overflow("in function mp_decode_to_lua_array")
        return _Container(is_map, n, slot)


def unpack(
    data: bytes,
    limit: float,
    offset: float,
    base: int,
    new_table: Callable[[Any], Any],
    check_time: CheckTime | None = None,
) -> Result:
    """``(True, n, table)``, the results in ``table[1..n]``, or ``(False, message, level)``.

    ``mp_unpack_full``: ``limit`` and ``offset`` 0 decode everything and return only
    the values (``cmsgpack.unpack``); otherwise at most ``limit`` values from
    ``offset`` are decoded and the first result is the next offset, -1 at the end.
    ``base`` is how many arguments are on the C function's stack (1 once
    ``unpack_one``/``unpack_limit`` dropped theirs).
    """
    try:
        lim, off = lua_tointeger(limit), lua_tointeger(offset)
        size = len(data)
        if off < 0 or lim < 0:
            raise _Fail(
                f"Invalid request to unpack with offset of {_c_int(off)} "
                f"and limit of {_c_int(size)}."  # sic: the C code prints the length
            )
        if off > size:
            raise _Fail(f"Start offset {_c_int(off)} greater than input length {_c_int(size)}.")
        decode_all = lim == 0 and off == 0
        if decode_all:
            lim = INT_MAX
        decoder = _Decoder(data, off, new_table, check_time)
        values: list[Any] = []
        top = base
        while decoder.pos < size and len(values) < lim:
            values.append(decoder.value(top))
            top += 1
        if not decode_all:
            if top + 1 > MAX_CSTACK:
                raise _stack_overflow("in function mp_unpack_full")
            values.insert(0, -1 if decoder.pos == size else decoder.pos)
    except _Fail as e:
        return _failure(e)
    return True, len(values), new_table(values)
