"""Redis's ``long double`` arithmetic, emulated exactly (HINCRBYFLOAT).

Redis parses float arguments with ``strtold``, adds in ``long double`` and prints the
result with ``"%.17Lf"`` minus trailing zeros (``ld2string(..., LD_STR_HUMAN)``). On
x86-64, where nearly every Redis runs, ``long double`` is the x87 80-bit extended
format: a 64-bit significand and exponents up to 2**16383. Python floats are IEEE
doubles, so ``0.1 + 0.2`` would print ``0.30000000000000004`` where Redis prints
``0.3``, and ``1e400`` would overflow where Redis accepts it.

Values here are exact :class:`~fractions.Fraction` objects rounded to the extended
format after every operation (round half to even, as the FPU does), with ``inf`` as
:data:`math.inf`. Parsing and formatting are exact too, so the digits match glibc's
byte for byte. It is slower than float arithmetic (about 20 microseconds a
HINCRBYFLOAT), which is fine for that command; ``tests/unit/commands/test_hashes.py``
holds cases recorded from a real Redis. (A Redis built for aarch64 uses 128-bit
quad precision instead; ``_MANT_BITS``/``_MAX_EXP``/``_MIN_QUANTUM_EXP`` would be
113/16383/-16494 there.)

INCRBYFLOAT (strings) could reuse :func:`parse`, :func:`add` and :func:`format_human`
for the same fidelity.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

# x87 extended precision.
_MANT_BITS = 64
_MAX_EXP = 16383  # largest finite value is just below 2**16384
_MIN_QUANTUM_EXP = -16445  # smallest subnormal: 2**-16445
MAX_CHARS = 5 * 1024  # Redis's MAX_LONG_DOUBLE_CHARS

LongDouble = Fraction | float  # a Fraction, or +/-math.inf

_DEC = re.compile(rb"([+-]?)(?:(\d+)\.?(\d*)|\.(\d+))(?:[eE]([+-]?\d+))?\Z")
_HEX = re.compile(
    rb"([+-]?)0[xX](?:([0-9a-fA-F]+)\.?([0-9a-fA-F]*)|\.([0-9a-fA-F]+))(?:[pP]([+-]?\d+))?\Z"
)
_CHUNK = 1000
_CHUNK_POW = 10**_CHUNK
_INF = re.compile(rb"([+-]?)(?:inf|infinity)\Z", re.IGNORECASE)


def _round(x: Fraction) -> LongDouble:
    """Round an exact value to the nearest extended-precision value (ties to even)."""
    if not x:
        return Fraction(0)
    neg = x < 0
    a = -x if neg else x
    num, den = a.numerator, a.denominator
    # e = floor(log2(a)): 2**e <= a < 2**(e+1)
    e = num.bit_length() - den.bit_length()
    if (num << -e if e < 0 else num) < (den << e if e > 0 else den):
        e -= 1
    if e > _MAX_EXP:
        return -math.inf if neg else math.inf
    q = max(e - (_MANT_BITS - 1), _MIN_QUANTUM_EXP)
    scaled = a / 2**q if q >= 0 else a * 2**-q
    n = round(scaled)  # Fraction.__round__ rounds half to even
    if n.bit_length() + q > _MAX_EXP + 1:
        return -math.inf if neg else math.inf
    v = Fraction(n * 2**q) if q >= 0 else Fraction(n, 2**-q)
    return -v if neg else v


def parse(b: bytes) -> LongDouble | None:
    """Redis's ``string2ld``: the value, or None where Redis refuses the text.

    Refused: empty or too long, leading space or any trailing byte, NaN, and a
    finite text that overflows to infinity or underflows to zero (``ERANGE``).
    ``inf``/``infinity`` and hexadecimal floats are accepted, as ``strtold`` does.
    """
    if not b or len(b) >= MAX_CHARS:
        return None
    m = _DEC.match(b)
    if m is not None:
        sign, whole, frac, only_frac, exp = m.groups()
        digits = (whole or b"") + (frac or only_frac or b"")
        scale = -len(frac or only_frac or b"")
        base = 10
    else:
        m = _HEX.match(b)
        if m is None:
            inf = _INF.match(b)
            if inf is None:
                return None
            return -math.inf if inf.group(1) == b"-" else math.inf
        sign, whole, frac, only_frac, exp = m.groups()
        digits = (whole or b"") + (frac or only_frac or b"")
        scale = -4 * len(frac or only_frac or b"")  # binary exponent of the last digit
        base = 16
    mant = int(digits, 16) if base == 16 else _int10(digits)
    if mant == 0:
        return Fraction(0)
    e = _exponent(exp)
    if base == 10:
        e += scale
        # mant * 10**e is in [10**lead, 10**(lead+1))
        lead = e + len(digits.lstrip(b"0")) - 1
        if lead >= 4933:
            return None  # overflow
        if lead < -4953:
            return None  # underflows to zero
        exact = Fraction(mant * 10**e) if e >= 0 else Fraction(mant, 10**-e)
    else:
        e += scale
        lead = e + mant.bit_length() - 1
        if lead > _MAX_EXP + 1:
            return None
        if lead < _MIN_QUANTUM_EXP - 2:
            return None
        exact = Fraction(mant * 2**e) if e >= 0 else Fraction(mant, 2**-e)
    v = _round(exact)
    if isinstance(v, float) or not v:
        return None  # ERANGE: overflow to HUGE_VALL, or underflow to zero
    return -v if sign == b"-" else v


def _int10(digits: bytes) -> int:
    """``int(digits)`` past Python's 4300-digit conversion limit (texts reach 5119)."""
    n = 0
    for i in range(0, len(digits), _CHUNK):
        chunk = digits[i : i + _CHUNK]
        n = n * 10 ** len(chunk) + int(chunk)
    return n


def _str10(n: int) -> str:
    """``str(n)`` for a non-negative int of any size (results reach ~4950 digits)."""
    if n < _CHUNK_POW:
        return str(n)
    high, low = divmod(n, _CHUNK_POW)
    return _str10(high) + str(low).rjust(_CHUNK, "0")


def _exponent(exp: bytes | None) -> int:
    """The exponent; past 12 digits only its sign matters (the value over- or
    underflows), so it is clamped to a magnitude that still does."""
    if not exp:
        return 0
    sign = -1 if exp.startswith(b"-") else 1
    digits = exp.lstrip(b"+-").lstrip(b"0")
    if len(digits) > 12:
        return sign * 10**12
    return sign * int(digits or b"0")


def add(a: LongDouble, b: LongDouble) -> LongDouble:
    """``a + b`` rounded to extended precision (NaN for inf + -inf)."""
    if isinstance(a, float):
        return a + b if isinstance(b, float) else a
    if isinstance(b, float):
        return b
    return _round(a + b)


def is_finite(v: LongDouble) -> bool:
    return not isinstance(v, float) or math.isfinite(v)


def format_human(v: LongDouble) -> bytes:
    """``ld2string(LD_STR_HUMAN)``: ``"%.17Lf"`` without trailing zeros, ``-0`` as ``0``."""
    if isinstance(v, float):
        if math.isnan(v):
            return b"nan"
        return b"inf" if v > 0 else b"-inf"
    neg = v < 0
    n = round(abs(v) * 10**17)  # exact, ties to even like glibc's printf
    digits = _str10(n).rjust(18, "0")
    text = digits[:-17] + "." + digits[-17:]
    text = text.rstrip("0").rstrip(".")
    if neg and text != "0":
        text = "-" + text
    return text.encode()
