"""Glob matching: Redis's rules, linear time, a length limit."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenginx.errors import CommandError
from tokenginx.storage.glob import MAX_PATTERN_BYTES, PatternTooLong, compile_glob


def redis_stringmatch(p: bytes, s: bytes) -> bool:
    """A line-by-line port of Redis 7's ``stringmatchlen_impl`` (util.c), the reference."""

    def rec(pi: int, si: int) -> bool:
        plen, slen = len(p), len(s)
        while pi < plen and si < slen:
            c = p[pi]
            if c == ord("*"):
                while pi + 1 < plen and p[pi + 1] == ord("*"):
                    pi += 1
                if pi + 1 == plen:
                    return True
                return any(rec(pi + 1, start) for start in range(si, slen + 1))
            if c == ord("?"):
                si += 1
            elif c == ord("["):
                pi += 1
                negate = pi < plen and p[pi] == ord("^")
                if negate:
                    pi += 1
                match = False
                while True:
                    if pi < plen and p[pi] == ord("\\") and plen - pi >= 2:
                        pi += 1
                        if p[pi] == s[si]:
                            match = True
                    elif pi < plen and p[pi] == ord("]"):
                        break
                    elif pi >= plen:
                        pi -= 1
                        break
                    elif plen - pi >= 3 and p[pi + 1] == ord("-"):
                        lo, hi = p[pi], p[pi + 2]
                        if lo > hi:
                            lo, hi = hi, lo
                        pi += 2
                        if lo <= s[si] <= hi:
                            match = True
                    elif p[pi] == s[si]:
                        match = True
                    pi += 1
                if negate:
                    match = not match
                if not match:
                    return False
                si += 1
            else:
                if c == ord("\\") and plen - pi >= 2:
                    pi += 1
                    c = p[pi]
                if c != s[si]:
                    return False
                si += 1
            pi += 1
            if si == slen:
                while pi < plen and p[pi] == ord("*"):
                    pi += 1
                break
        return pi >= plen and si >= slen

    return rec(0, 0)


CASES = [
    (b"*", b"", True), (b"a*", b"abc", True), (b"*c", b"abc", True), (b"a*c", b"ac", True),
    (b"a*c", b"a", False), (b"a?c", b"abc", True), (b"a?c", b"ac", False),
    (b"[^a]*", b"bcd", True), (b"[^a]*", b"acd", False), (b"[]x", b"x", False),
    (b"[^]x", b"ax", True), (b"h\\*", b"h*", True), (b"h\\*", b"hx", False),
    (b"h[a-c]llo", b"hbllo", True), (b"h[c-a]llo", b"hbllo", True), (b"h[a-c]llo", b"hdllo", False),
    (b"**", b"x", True), (b"a**b*", b"ab", True), (b"*ab*ab*", b"abab", True),
    (b"*ab*ab*", b"aba", False), (b"x[abc", b"xb", True), (b"[", b"", False),
    (b"a.c", b"abc", False), (b"a.c", b"a.c", True), (b"[.]", b".", True), (b"\\", b"\\", True),
    (b"", b"", True), (b"", b"a", False), (b"*a", b"", False), (b"a*a", b"a", False),
    (b"user:*:token", b"user:1:2:token", True), (b"oauth:token:*", b"oauth:code:x", False),
    (b"**", b"", False), (b"[a-]a", b"a", True), (b"[a-]", b"]", True), (b"[\\]]", b"]", True), (b"[a\\-z]", b"-", True), (b"[a\\-z]", b"b", False),
]


@pytest.mark.parametrize(("pattern", "key", "expected"), CASES)
def test_redis_glob_rules(pattern: bytes, key: bytes, expected: bool) -> None:
    assert compile_glob(pattern)(key) is expected
    assert _reference(pattern, key) is expected


def _reference(pattern: bytes, key: bytes) -> bool:
    # Redis's KEYS, SCAN and PSUBSCRIBE callers skip the matcher for the pattern "*",
    # which then matches the empty key too; the matcher itself says no to it.
    return pattern == b"*" or redis_stringmatch(pattern, key)


_ALPHABET = st.sampled_from([b"a", b"b", b"*", b"?", b"[", b"]", b"^", b"-", b"\\", b":"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(_ALPHABET, max_size=12).map(b"".join),
       st.lists(st.sampled_from([b"a", b"b", b":", b"-", b"]", b"*"]), max_size=10).map(b"".join))
def test_agrees_with_redis_on_random_patterns(pattern: bytes, key: bytes) -> None:
    assert compile_glob(pattern)(key) is _reference(pattern, key)


def _worst_time(pattern: bytes, key: bytes, rounds: int = 3) -> float:
    match = compile_glob(pattern)
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        match(key)
        best = min(best, time.perf_counter() - t)
    return best


@pytest.mark.parametrize("stars", [10, 20, 200])
def test_many_stars_cost_microseconds_not_seconds(stars: int) -> None:
    # The regex translation took ~3 s at 10 stars and never finished at 20.
    pattern = b"*a" * stars + b"*b"
    assert compile_glob(pattern)(b"a" * 40) is False
    assert _worst_time(pattern, b"a" * 40) < 0.01
    assert compile_glob(pattern)(b"a" * stars + b"b") is True


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"*", b"?", b"[ab]", b"[^a]"]), max_size=MAX_PATTERN_BYTES // 4)
       .map(b"".join).filter(lambda p: len(p) <= MAX_PATTERN_BYTES),
       st.binary(max_size=2048))
def test_no_pattern_up_to_the_limit_is_slow(pattern: bytes, key: bytes) -> None:
    compile_glob(pattern)  # compiling is cached; matching is what a KEYS pass repeats
    assert _worst_time(pattern, key, rounds=1) < 0.01


def test_a_pattern_over_the_limit_is_an_error_reply() -> None:
    with pytest.raises(PatternTooLong) as e:
        compile_glob(b"a" * (MAX_PATTERN_BYTES + 1))
    assert isinstance(e.value, CommandError)
    assert e.value.message == f"ERR pattern too long (more than {MAX_PATTERN_BYTES} bytes)"
    assert compile_glob(b"a" * MAX_PATTERN_BYTES)(b"a" * MAX_PATTERN_BYTES) is True
