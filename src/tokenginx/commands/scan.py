"""Cursor iteration over one hash or set (HSCAN, SSCAN; ZSCAN later).

Redis walks its hash table with a reverse-binary cursor. Python dicts and sets have no
stable positions, so the cursor here is a position in a fixed total order of the
elements: ``order(e) = hash(e) & 2**63-1`` (CPython's hash of a ``bytes`` value is
fixed for the life of the process). A call returns the ``COUNT`` elements with the
smallest order at or after the cursor, and the next cursor points just past the
largest one returned. That keeps SCAN's guarantees without keeping any state:

* an element present from the first call to the last is returned (inserts and
  deletes never shift the order of the other elements);
* no element is returned twice (elements with equal order go out together);
* an element added or removed during the iteration may or may not be returned.

Cost: each call looks at every element, O(N log COUNT) for N elements (about 45 ms
for 100k elements). So that a full iteration stays O(N) overall, a step returns at
least N / :data:`MAX_CALLS` elements whatever COUNT says (COUNT is only a hint in
Redis too). Collections of at most :data:`SMALL` elements are returned whole in one
reply with cursor 0, as Redis does for its listpack encoding
(hash-max-listpack-entries / set-max-listpack-entries = 128). A snapshot of the
sorted order kept per iteration (as ``Database.scan`` keeps for SCAN) would make
each step O(COUNT); that belongs in the storage layer.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tokenginx.commands.args import parse_int
from tokenginx.errors import CommandError, syntax_error
from tokenginx.storage.glob import compile_glob

SMALL = 128
MAX_CALLS = 64
_ORDER_MASK = (1 << 63) - 1
_ULONG_MAX = (1 << 64) - 1
_C_SPACE = b" \t\n\v\f\r"


def invalid_cursor() -> CommandError:
    return CommandError("ERR invalid cursor")


def parse_cursor(raw: bytes) -> int:
    """Redis's ``parseScanCursorOrReply``: ``strtoul(raw, 10)`` where the whole text must
    be consumed. Like strtoul it accepts ``""`` (0), a ``+`` sign, and a ``-`` sign
    (the value wraps modulo 2**64); it stops at a NUL byte."""
    if raw[:1] and raw[:1] in _C_SPACE:
        raise invalid_cursor()
    text = raw.split(b"\0", 1)[0]
    if not text:
        return 0
    sign = 1
    if text[:1] in (b"+", b"-"):
        sign = -1 if text[:1] == b"-" else 1
        text = text[1:]
    if not text.isdigit():
        raise invalid_cursor()
    digits = text.lstrip(b"0")
    if len(digits) > 20:
        raise invalid_cursor()
    value = int(digits or b"0")
    if value > _ULONG_MAX:
        raise invalid_cursor()
    return value if sign > 0 else (-value) & _ULONG_MAX


@dataclass(slots=True)
class ScanOptions:
    match: Callable[[bytes], bool] | None = None
    count: int = 10
    novalues: bool = False
    type_name: str | None = None  # SCAN ... TYPE


def parse_options(
    argv: list[bytes], start: int, allow_novalues: bool = False, allow_type: bool = False
) -> ScanOptions:
    """``[MATCH pattern] [COUNT count]`` (and ``NOVALUES`` for HSCAN, Redis 7.4, and
    ``TYPE`` for SCAN), in any order, repeatable (the last one wins), exactly as
    ``scanGenericCommand``."""
    opts = ScanOptions()
    i, n = start, len(argv)
    while i < n:
        opt = argv[i].lower()
        more = n - i - 1
        if opt == b"count" and more:
            count = parse_int(argv[i + 1])
            if count < 1:
                raise syntax_error()
            opts.count = count
            i += 2
        elif opt == b"match" and more:
            pattern = argv[i + 1]
            opts.match = None if pattern == b"*" else compile_glob(pattern)
            i += 2
        elif opt == b"type" and allow_type and more:
            opts.type_name = argv[i + 1].decode("utf-8", "replace").lower()
            i += 2
        elif opt == b"novalues" and allow_novalues:
            opts.novalues = True
            i += 1
        else:
            raise syntax_error()
    return opts


def scan_batch(
    elements: Iterable[bytes], size: int, cursor: int, count: int
) -> tuple[int, list[bytes]]:
    """One step of the iteration: (next cursor, elements of this step, unfiltered)."""
    if size <= SMALL:
        return 0, list(elements)
    threshold = cursor - 1 if cursor > 0 else 0
    mask = _ORDER_MASK
    if threshold:
        candidates = [(o, e) for e in elements if (o := hash(e) & mask) >= threshold]
    else:
        candidates = [(hash(e) & mask, e) for e in elements]
    # Every call costs O(N), so a big collection is walked in at most MAX_CALLS steps
    # whatever COUNT says (COUNT is a hint: Redis too returns more for small encodings).
    count = max(count, size // MAX_CALLS)
    if len(candidates) <= count:
        return 0, [e for _, e in candidates]
    chosen = heapq.nsmallest(count, candidates, key=_order)
    last = chosen[-1][0]
    # Elements sharing the last order value must go out together, or the next cursor
    # would skip them.
    taken = {e for _, e in chosen}
    chosen.extend((o, e) for o, e in candidates if o == last and e not in taken)
    if len(chosen) == len(candidates):
        return 0, [e for _, e in chosen]
    return last + 2, [e for _, e in chosen]


def _order(item: tuple[int, bytes]) -> int:
    return item[0]


def cursor_reply(cursor: int, items: list[bytes]) -> list[object]:
    return [b"%d" % cursor, items]
