"""The arithmetic of the ``bit`` library (LuaBitOp, as bundled with Redis).

Every operation works on 32-bit integers and returns a signed 32-bit result. The
prelude's Lua wrappers check the arguments (numbers, or strings convertible to
numbers) before calling :func:`call`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

_MASK = 0xFFFFFFFF


def tobit(x: float) -> int:
    """Normalise a number to a signed 32-bit integer (round half to even, then wrap)."""
    if isinstance(x, float):
        if not math.isfinite(x):
            return 0
        n = round(x)
    else:
        n = int(x)
    n &= _MASK
    return n - 0x100000000 if n & 0x80000000 else n


def _u(x: float) -> int:
    return tobit(x) & _MASK


def _band(*xs: float) -> int:
    r = _MASK
    for x in xs:
        r &= _u(x)
    return tobit(r)


def _bor(*xs: float) -> int:
    r = 0
    for x in xs:
        r |= _u(x)
    return tobit(r)


def _bxor(*xs: float) -> int:
    r = 0
    for x in xs:
        r ^= _u(x)
    return tobit(r)


def _rol(x: float, n: float) -> int:
    v, s = _u(x), _u(n) & 31
    return tobit((v << s | v >> (32 - s)) & _MASK)


def _ror(x: float, n: float) -> int:
    v, s = _u(x), _u(n) & 31
    return tobit((v >> s | v << (32 - s)) & _MASK)


def _bswap(x: float) -> int:
    return tobit(int.from_bytes(_u(x).to_bytes(4, "little"), "big"))


def _tohex(x: float, n: float = 8) -> bytes:
    v = _u(x)
    digits = tobit(n)
    upper = digits < 0
    digits = min(-digits if upper else digits, 8)
    text = b"%0*x" % (digits, v & ((1 << (4 * digits)) - 1)) if digits else b""
    return text.upper() if upper else text


_FUNCTIONS: dict[bytes, Callable[..., int | bytes]] = {
    b"tobit": tobit,
    b"bnot": lambda x: tobit(~_u(x)),
    b"band": _band,
    b"bor": _bor,
    b"bxor": _bxor,
    b"lshift": lambda x, n: tobit(_u(x) << (_u(n) & 31)),
    b"rshift": lambda x, n: tobit(_u(x) >> (_u(n) & 31)),
    b"arshift": lambda x, n: tobit(tobit(x) >> (_u(n) & 31)),
    b"rol": _rol,
    b"ror": _ror,
    b"bswap": _bswap,
    b"tohex": _tohex,
}


def call(name: bytes, *args: float) -> int | bytes:
    return _FUNCTIONS[name](*args)
