"""How stored bytes and JSON values map onto each other (decisions.md §10).

A JSON value posted over HTTP is stored as compact JSON text, so RESP ``GET`` returns
that text. Stored bytes read over HTTP are parsed as JSON when they parse, else given
as a UTF-8 string, else as base64 with ``"encoding":"base64"``. A binary value is
written over HTTP as a base64 string with ``"encoding":"base64"``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

BASE64 = "base64"


def encode_value(value: Any, encoding: str | None = None) -> bytes:
    """The bytes to store for a request's ``value`` (and optional ``encoding``)."""
    if encoding == BASE64:
        if not isinstance(value, str):
            raise ValueError("must be a base64 string when encoding is base64")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not valid base64") from None
    return orjson.dumps(value)


def decode_value(raw: bytes) -> tuple[Any, str | None]:
    """``(value, encoding)`` for stored bytes; encoding is ``"base64"`` or None."""
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError:
        pass
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), BASE64


def text(raw: bytes) -> str:
    """A key or other name for JSON output; invalid UTF-8 is replaced, never an error."""
    return raw.decode("utf-8", "replace")
