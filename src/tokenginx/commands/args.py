"""Argument parsing shared by the command families, with Redis's exact error texts."""

from __future__ import annotations

import math
import re

from tokenginx.errors import CommandError, not_float, not_integer

_INT_RE = re.compile(rb"-?(0|[1-9][0-9]{0,18})\Z")
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1


def parse_int(b: bytes, error: CommandError | None = None) -> int:
    """A signed 64-bit integer in Redis's strict form (no spaces, no '+', no leading 0)."""
    if _INT_RE.match(b) is None or b == b"-0":
        raise error or not_integer()
    v = int(b)
    if not I64_MIN <= v <= I64_MAX:
        raise error or not_integer()
    return v


def parse_float(b: bytes, error: CommandError | None = None) -> float:
    """A double as Redis's ``strtold`` accepts it; NaN is refused."""
    s = b.strip()
    if not s or s != b or len(b) > 5120:
        raise error or not_float()
    try:
        v = float(b)
    except ValueError:
        raise error or not_float() from None
    if math.isnan(v):
        raise error or not_float()
    return v


def format_float(v: float) -> bytes:
    """Render a float the way INCRBYFLOAT/HINCRBYFLOAT do (up to 17 significant
    digits, no exponent, trailing zeros trimmed)."""
    if math.isinf(v):
        return b"inf" if v > 0 else b"-inf"
    if v == int(v) and abs(v) < 1e17:
        return b"%d" % int(v)
    s = f"{v:.17f}".rstrip("0").rstrip(".")
    # Prefer the shortest repr when it round-trips and has no exponent.
    r = repr(v)
    if "e" not in r and "E" not in r and float(r) == v:
        s = r
    return s.encode()


def upper(b: bytes) -> bytes:
    return b.upper()


def timeout_error(name: str) -> CommandError:
    return CommandError(f"ERR invalid expire time in '{name}' command")
