"""``cjson.encode`` / ``cjson.decode`` for scripts, with lua-cjson's observable behaviour.

The Lua wrappers in the prelude call these with Lua values (lupa objects, bytes,
numbers) and turn a returned error message into a Lua error. Differences from a
generic JSON library that scripts can see, and that are kept here:

* numbers are written with 14 significant digits (``%.14g``), NaN/Inf are refused;
* ``/`` is escaped as ``\\/``; bytes ≥ 0x80 pass through unchanged;
* a table whose keys are all positive integers is an array (holes become ``null``,
  too sparse an array is refused); an empty table is ``{}``;
* ``null`` decodes to the ``cjson.null`` sentinel, not ``nil``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from lupa.lua51 import lua_type

MAX_DEPTH = 1000
SPARSE_RATIO = 2
SPARSE_SAFE = 10

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


def _number(v: float) -> bytes:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        raise _EncodeError("Cannot serialise number: must not be NaN or Inf")
    return b"%.14g" % v


def _string(s: bytes) -> bytes:
    return b'"' + b"".join([_TRANSLATE[c] for c in s]) + b'"'


def _type_name(v: Any) -> str:
    t = lua_type(v)
    return t if t is not None else "userdata"


def encode(value: Any, is_null: Callable[[Any], bool]) -> tuple[bool, bytes | str]:
    """``(True, json)`` or ``(False, message)``."""
    out: list[bytes] = []

    def enc(v: Any, depth: int) -> None:
        if v is None:
            out.append(b"null")
        elif v is True:
            out.append(b"true")
        elif v is False:
            out.append(b"false")
        elif isinstance(v, (int, float)):
            out.append(_number(v))
        elif isinstance(v, bytes):
            out.append(_string(v))
        elif lua_type(v) == "table":
            if depth >= MAX_DEPTH:
                raise _EncodeError(f"Cannot serialise, excessive nesting ({depth + 1})")
            table(v, depth + 1)
        elif lua_type(v) == "userdata" and is_null(v):
            out.append(b"null")
        else:
            raise _EncodeError(f"Cannot serialise {_type_name(v)}: type not supported")

    def table(t: Any, depth: int) -> None:
        items = list(t.items())
        max_index = 0
        is_array = bool(items)
        for k, _ in items:
            if (
                isinstance(k, (int, float))
                and not isinstance(k, bool)
                and k >= 1
                and float(k).is_integer()
            ):
                max_index = max(max_index, int(k))
            else:
                is_array = False
                break
        if is_array:
            if max_index > len(items) * SPARSE_RATIO and max_index > SPARSE_SAFE:
                raise _EncodeError("Cannot serialise table: excessively sparse array")
            values = dict(items)
            out.append(b"[")
            for i in range(1, max_index + 1):
                if i > 1:
                    out.append(b",")
                enc(values.get(i), depth)
            out.append(b"]")
            return
        out.append(b"{")
        first = True
        for k, v in items:
            if not first:
                out.append(b",")
            first = False
            if isinstance(k, bytes):
                out.append(_string(k))
            elif isinstance(k, (int, float)) and not isinstance(k, bool):
                out.append(b'"' + _number(k) + b'"')
            else:
                raise _EncodeError("Cannot serialise table: table key must be a number or string")
            out.append(b":")
            enc(v, depth)
        out.append(b"}")

    try:
        enc(value, 0)
    except _EncodeError as e:
        return False, str(e)
    except RecursionError:  # Python's stack ran out before MAX_DEPTH
        return False, f"Cannot serialise, excessive nesting ({MAX_DEPTH + 1})"
    return True, b"".join(out)


def _to_bytes(s: str) -> bytes:
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate written as a \u escape
        return s.encode("utf-8", "surrogatepass")


def decode(data: bytes, new_table: Callable[[Any], Any], null: Any) -> tuple[bool, Any]:
    """``(True, lua value)`` or ``(False, message)``. ``new_table`` builds a Lua table."""
    try:
        parsed = json.loads(data.decode("utf-8", "surrogateescape"), strict=False)
    except json.JSONDecodeError as e:
        return False, _parse_error(e)
    except RecursionError:
        return False, f"Found too many nested data structures ({MAX_DEPTH + 1})"

    def conv(v: Any, depth: int) -> Any:
        if isinstance(v, str):
            return _to_bytes(v)
        if v is None:
            return null
        if isinstance(v, bool):
            return v
        if isinstance(v, int):
            return v if -(2**63) <= v < 2**63 else float(v)
        if isinstance(v, float):
            return v
        if depth >= MAX_DEPTH:
            raise RecursionError
        if isinstance(v, list):
            return new_table([conv(x, depth + 1) for x in v])
        return new_table({_to_bytes(k): conv(x, depth + 1) for k, x in v.items()})

    try:
        return True, conv(parsed, 0)
    except RecursionError:
        return False, f"Found too many nested data structures ({MAX_DEPTH + 1})"


# lua-cjson's wording for what the parser expected, by Python's message.
_EXPECTED = {
    "Expecting value": "value",
    "Expecting property name enclosed in double quotes": "object key string",
    "Expecting ':' delimiter": "colon",
    "Extra data": "the end",
}
_TOKENS = {
    "{": "T_OBJ_BEGIN",
    "}": "T_OBJ_END",
    "[": "T_ARR_BEGIN",
    "]": "T_ARR_END",
    '"': "T_STRING",
    ":": "T_COLON",
    ",": "T_COMMA",
}


def _parse_error(e: json.JSONDecodeError) -> str:
    """A parse error in lua-cjson's words: "Expected <what> but found <token> at
    character <n>"."""
    doc, pos = e.doc, e.pos
    while pos < len(doc) and doc[pos] in " \t\r\n":
        pos += 1
    if e.msg == "Expecting ',' delimiter":
        expected = f"comma or {_container_at(doc, e.pos)} end"
    else:
        expected = _EXPECTED.get(e.msg)
    if e.msg.startswith("Unterminated string"):
        return f"Expected value but found unexpected end of string at character {len(doc) + 1}"
    if e.msg.startswith("Invalid \\escape"):
        return f"Expected value but found invalid escape code at character {pos + 1}"
    if expected is None:  # a malformed number or literal
        return f"Expected value but found invalid token at character {pos + 1}"
    return f"Expected {expected} but found {_token_at(doc, pos)} at character {pos + 1}"


def _token_at(doc: str, pos: int) -> str:
    if pos >= len(doc):
        return "T_END"
    c = doc[pos]
    if c in _TOKENS:
        return _TOKENS[c]
    if c == "-" or c.isdigit():
        return "T_NUMBER"
    for literal, token in (("true", "T_BOOLEAN"), ("false", "T_BOOLEAN"), ("null", "T_NULL")):
        if doc.startswith(literal, pos):
            return token
    return "invalid token"


def _container_at(doc: str, pos: int) -> str:
    """ "array" or "object": the innermost container open at ``pos``."""
    stack: list[str] = []
    in_string = escaped = False
    for c in doc[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            stack.append(c)
        elif c in "]}" and stack:
            stack.pop()
    return "array" if stack and stack[-1] == "[" else "object"
