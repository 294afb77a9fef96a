"""The request parser fed whole, byte by byte and pipelined (h11's three modes)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenginx.errors import ProtocolError
from tokenginx.transport.resp.linemode import LineRequest
from tokenginx.transport.resp.parser import ParserLimits, RequestParser, split_inline


def frame(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


CASES: list[tuple[bytes, list[list[bytes]]]] = [
    (frame(b"PING"), [[b"PING"]]),
    (frame(b"SET", b"k", b"v"), [[b"SET", b"k", b"v"]]),
    (frame(b"SET", b"", b"\r\n\x00\xff"), [[b"SET", b"", b"\r\n\x00\xff"]]),
    (b"PING\r\n", [[b"PING"]]),
    (b"SET a   b\n", [[b"SET", b"a", b"b"]]),
    (b'SET "a b" "c\\x41\\n"\r\n', [[b"SET", b"a b", b"cA\n"]]),
    (b"SET 'it\\'s' x\r\n", [[b"SET", b"it's", b"x"]]),
    (b"\r\n\r\nPING\r\n", [[b"PING"]]),  # empty inline lines are skipped
    (b"*0\r\n" + frame(b"PING"), [[b"PING"]]),  # empty multibulk is ignored
    (b"PING\r\n" + frame(b"ECHO", b"x") + b"PING\r\n", [[b"PING"], [b"ECHO", b"x"], [b"PING"]]),
]


def feed_all(parser: RequestParser, chunks: list[bytes]) -> list[list[bytes]]:
    out: list[list[bytes]] = []
    for c in chunks:
        out.extend(parser.feed(c))
    return out


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_whole(data: bytes, expected: list[list[bytes]]) -> None:
    assert feed_all(RequestParser(), [data]) == expected


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_byte_by_byte(data: bytes, expected: list[list[bytes]]) -> None:
    assert feed_all(RequestParser(), [data[i : i + 1] for i in range(len(data))]) == expected


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_pipelined_with_trailing_request(data: bytes, expected: list[list[bytes]]) -> None:
    tail = frame(b"GET", b"after")
    assert feed_all(RequestParser(), [data + tail]) == [*expected, [b"GET", b"after"]]


def test_large_value_split_across_many_feeds() -> None:
    value = bytes(range(256)) * 4096  # 1 MiB
    data = frame(b"SET", b"big", value) + frame(b"GET", b"big")
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    assert feed_all(RequestParser(), chunks) == [[b"SET", b"big", value], [b"GET", b"big"]]


def expect_error(chunks: list[bytes], limits: ParserLimits | None = None) -> tuple[str, list]:
    parser = RequestParser(limits)
    seen: list[list[bytes]] = []
    for c in chunks:
        try:
            seen.extend(parser.feed(c))
        except ProtocolError as e:
            return e.message, seen + parser.error_prefix
    raise AssertionError("no protocol error raised")


def test_bulk_over_limit_is_refused_before_buffering() -> None:
    limits = ParserLimits(max_bulk_bytes=1000, check_threshold=64)
    header = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$999999999\r\n"
    msg, _ = expect_error([header + b"x" * 100], limits)
    assert msg == "Protocol error: invalid bulk length"


def test_multibulk_count_over_limit() -> None:
    limits = ParserLimits(max_multibulk_len=10, check_threshold=8)
    msg, _ = expect_error([b"*11\r\n$1\r\na\r\n" * 2], limits)
    assert msg == "Protocol error: invalid multibulk length"


def test_inline_too_long() -> None:
    limits = ParserLimits(max_inline_bytes=100)
    msg, _ = expect_error([b"SET " + b"a" * 200], limits)
    assert msg == "Protocol error: too big inline request"


def test_unbalanced_quotes() -> None:
    msg, _ = expect_error([b'SET "abc\r\n'])
    assert msg == "Protocol error: unbalanced quotes in request"


def test_nested_array_is_a_protocol_error() -> None:
    msg, before = expect_error([frame(b"PING") + b"*1\r\n*1\r\n$1\r\na\r\n"])
    assert msg == "Protocol error: expected '$', got '*'"
    assert before == [[b"PING"]]  # what came before the bad frame still runs


def test_integer_inside_array_is_a_protocol_error() -> None:
    msg, _ = expect_error([b"*2\r\n$3\r\nGET\r\n:1\r\n"])
    assert msg == "Protocol error: expected '$', got ':'"


def test_query_buffer_limit() -> None:
    limits = ParserLimits(max_query_bytes=10_000, check_threshold=1000)
    header = b"*2\r\n$3\r\nSET\r\n$5000000\r\n"
    chunks = [header] + [b"x" * 4096] * 4
    msg, _ = expect_error(chunks, limits)
    assert msg == "Protocol error: too big query buffer"


def test_many_small_frames_in_one_big_read_are_validated_and_parsed() -> None:
    limits = ParserLimits(check_threshold=1024)
    data = b"".join(frame(b"SET", b"k%d" % i, b"v" * 50) for i in range(2000))
    out = feed_all(RequestParser(limits), [data])
    assert len(out) == 2000 and out[-1] == [b"SET", b"k1999", b"v" * 50]


def test_split_inline_matches_redis_rules() -> None:
    assert split_inline(b'a "b c" \'d\\\'e\'') == [b"a", b"b c", b"d'e"]
    assert split_inline(b'"\\x4a\\t"') == [b"J\t"]
    with pytest.raises(ProtocolError):
        split_inline(b'"abc"def')


args = st.lists(st.binary(max_size=40), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(args, min_size=1, max_size=8), st.integers(min_value=1, max_value=64))
def test_any_pipeline_any_split(requests: list[list[bytes]], step: int) -> None:
    data = b"".join(frame(*r) for r in requests)
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    assert feed_all(RequestParser(ParserLimits(check_threshold=32)), chunks) == requests


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_crashes(data: bytes) -> None:
    parser = RequestParser(ParserLimits(check_threshold=16, max_inline_bytes=128))
    try:
        for req in parser.feed(data):
            if isinstance(req, LineRequest):  # a line starting with { or <: the app's framing
                assert req.fmt in ("json", "xml")
                continue
            assert isinstance(req, list) and all(type(a) is bytes for a in req)
    except ProtocolError as e:
        assert e.message.startswith("Protocol error")
