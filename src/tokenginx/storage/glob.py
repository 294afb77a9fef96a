"""Redis glob patterns (``KEYS``, ``SCAN MATCH``, ``PSUBSCRIBE``) compiled to regexes.

Redis's ``stringmatchlen`` differs from :mod:`fnmatch`: ``[^a]`` negates (as does
``[!a]`` in fnmatch only), ``\\`` escapes the next byte, ranges may be reversed and
an unterminated ``[`` matches up to the end of the pattern.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

Matcher = Callable[[bytes], bool]


def _always(_: bytes) -> bool:
    return True


@lru_cache(maxsize=512)
def compile_glob(pattern: bytes) -> Matcher:
    if pattern == b"*":
        return _always
    out = bytearray()
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        if c == b"*":
            while i + 1 < n and pattern[i + 1 : i + 2] == b"*":
                i += 1
            out += b".*"
        elif c == b"?":
            out += b"."
        elif c == b"\\" and i + 1 < n:
            i += 1
            out += re.escape(pattern[i : i + 1])
        elif c == b"[":
            i += 1
            negate = i < n and pattern[i : i + 1] == b"^"
            if negate:
                i += 1
            items = bytearray()
            while i < n and pattern[i : i + 1] != b"]":
                ch = pattern[i : i + 1]
                if ch == b"\\" and i + 1 < n:
                    i += 1
                    items += re.escape(pattern[i : i + 1])
                elif i + 2 < n and pattern[i + 1 : i + 2] == b"-" and pattern[i + 2 : i + 3] != b"]":
                    lo, hi = pattern[i], pattern[i + 2]
                    if lo > hi:
                        lo, hi = hi, lo
                    items += b"\\x%02x-\\x%02x" % (lo, hi)
                    i += 2
                else:
                    items += re.escape(ch)
                i += 1
            if not items:
                # "[]" matches nothing, "[^]" matches any single byte.
                out += b"." if negate else b"(?!)"
            else:
                out += b"[" + (b"^" if negate else b"") + bytes(items) + b"]"
        else:
            out += re.escape(c)
        i += 1
    rx = re.compile(bytes(out) + b"\\Z", re.DOTALL)
    match = rx.match
    return lambda s: match(s) is not None
