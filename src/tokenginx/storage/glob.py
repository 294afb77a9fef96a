"""Redis glob patterns (``KEYS``, ``SCAN MATCH``, ``PSUBSCRIBE``), matched in linear time.

Redis's ``stringmatchlen`` differs from :mod:`fnmatch`: ``[^a]`` negates (as does
``[!a]`` in fnmatch only), ``\\`` escapes the next byte, ranges may be reversed and
an unterminated ``[`` matches up to the end of the pattern.

A pattern compiled to one regex (``.*`` for each ``*``) backtracks: ten ``*`` against
a 40-byte key took seconds in Python's ``re``. Instead the pattern is cut at its
``*`` into segments that each match a fixed number of bytes (``?``, a class or a
literal is one byte), and :func:`compile_glob` matches them greedily: the first
segment at the start, the last at the end, and each middle one at its leftmost
occurrence after the previous (the leftmost occurrence leaves the most room for the
rest, so it finds a match whenever one exists). Each segment is a regex with no
repetition, so a match costs at most ``len(key) × len(pattern)`` byte steps in C.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from tokenginx.errors import CommandError

Matcher = Callable[[bytes], bool]

MAX_PATTERN_BYTES = 4096
"""Longest pattern accepted; a longer one raises :class:`PatternTooLong`."""


class PatternTooLong(CommandError):
    """A glob pattern over :data:`MAX_PATTERN_BYTES` (an error reply on every door)."""

    def __init__(self) -> None:
        super().__init__(f"ERR pattern too long (more than {MAX_PATTERN_BYTES} bytes)")


def _always(_: bytes) -> bool:
    return True


def _never(_: bytes) -> bool:
    return False


_IMPOSSIBLE = b"[^\\x00-\\xff]"  # the atom "[]" becomes: matches no byte


def _segments(pattern: bytes) -> list[list[bytes]]:
    """The pattern split at its ``*``: each segment a list of one-byte regex atoms
    (a literal byte is its :func:`re.escape`)."""
    segments: list[list[bytes]] = [[]]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        atoms = segments[-1]
        if c == b"*":
            if atoms or len(segments) == 1:
                segments.append([])
        elif c == b"?":
            atoms.append(b".")
        elif c == b"\\" and i + 1 < n:
            i += 1
            atoms.append(re.escape(pattern[i : i + 1]))
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
                elif i + 2 < n and pattern[i + 1 : i + 2] == b"-":  # "]" may end a range, as in Redis
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
                atoms.append(b"." if negate else _IMPOSSIBLE)
            else:
                atoms.append(b"[" + (b"^" if negate else b"") + bytes(items) + b"]")
        else:
            atoms.append(re.escape(c))
        i += 1
    return segments


class _Segment:
    """A run of one-byte atoms between two ``*``: a plain ``bytes`` search when every
    atom is a literal, else a regex with no repetition."""

    __slots__ = ("size", "literal", "regex")

    def __init__(self, atoms: list[bytes]) -> None:
        self.size = len(atoms)
        literal = bytearray()
        for atom in atoms:
            raw = _unescape(atom)
            if raw is None:
                self.literal: bytes | None = None
                self.regex: re.Pattern[bytes] | None = re.compile(b"".join(atoms), re.DOTALL)
                return
            literal += raw
        self.literal, self.regex = bytes(literal), None

    def at(self, s: bytes, pos: int) -> bool:
        """Whether the segment matches ``s`` at ``pos`` (``s`` long enough)."""
        if self.literal is not None:
            return s.startswith(self.literal, pos)
        assert self.regex is not None
        return self.regex.match(s, pos) is not None

    def find(self, s: bytes, pos: int, end: int) -> int:
        """The end of the leftmost match in ``s[pos:end]``, or -1."""
        if self.literal is not None:
            i = s.find(self.literal, pos, end)
            return -1 if i < 0 else i + self.size
        assert self.regex is not None
        m = self.regex.search(s, pos, end)
        return -1 if m is None else m.end()


def _unescape(atom: bytes) -> bytes | None:
    """The byte a literal atom stands for; None for ``.`` and classes."""
    if len(atom) == 1:
        return None if atom in b".[" else atom
    if len(atom) == 2 and atom[0] == 0x5C:  # re.escape's backslash
        return atom[1:]
    return None


@lru_cache(maxsize=512)
def compile_glob(pattern: bytes) -> Matcher:
    """A predicate telling whether a key matches ``pattern`` (Redis's glob rules).

    Raises :class:`PatternTooLong` over :data:`MAX_PATTERN_BYTES`.
    """
    if len(pattern) > MAX_PATTERN_BYTES:
        raise PatternTooLong()
    if pattern == b"*":
        return _always
    atom_lists = _segments(pattern)
    if any(_IMPOSSIBLE in atoms for atoms in atom_lists):
        return _never
    segments = [_Segment(atoms) for atoms in atom_lists]
    if len(segments) == 1:  # no star: the whole key, a fixed length
        only = segments[0]
        return lambda s: len(s) == only.size and only.at(s, 0)
    head, middles, tail = segments[0], segments[1:-1], segments[-1]
    min_len = sum(seg.size for seg in segments)

    def match(s: bytes) -> bool:
        n = len(s)
        # Redis's matcher answers no for an empty key whatever the pattern, unless the
        # pattern is empty too (KEYS and SCAN skip it for "*", as compile_glob does).
        if n < min_len or n == 0 or not head.at(s, 0):
            return False
        pos, end = head.size, n - tail.size
        for seg in middles:
            pos = seg.find(s, pos, end)
            if pos < 0:
                return False
        return tail.at(s, end)

    return match
