"""tokenginx-client reply formatting against what redis-cli 7.0.15 prints.

The expected texts were captured by pointing ``redis-cli -3 --no-raw`` / ``--raw`` at a
stub server answering each frame below. Every frame is parsed the way the client does
(ReplyReader: hiredis plus the re-labelling walk) and fed three ways: whole, byte by
byte, and followed by a second pipelined reply.
"""

from __future__ import annotations

import hiredis
import pytest

from tokenginx.cli.client_main import (
    NEED_DATA,
    BigNumber,
    Double,
    ReplyReader,
    RespSet,
    format_double,
    format_invalidate,
    format_reply,
    format_verbatim,
    prefers_raw,
    quote_bytes,
)
from tokenginx.errors import CommandError, ProtocolError
from tokenginx.replies import NULL_ARRAY, OK, Push, Replies, Status, Verbatim

# (wire frame, redis-cli TTY output, redis-cli --raw output)
WIRE_CASES: list[tuple[bytes, str, str]] = [
    (b"+OK\r\n", "OK\n", "OK\n"),
    (b"$2\r\nOK\r\n", '"OK"\n', "OK\n"),
    (b"$0\r\n\r\n", '""\n', "\n"),
    (b"$-1\r\n", "(nil)\n", "\n"),
    (b"*-1\r\n", "(nil)\n", "\n"),
    (b"_\r\n", "(nil)\n", "\n"),
    (b":-42\r\n", "(integer) -42\n", "-42\n"),
    (b",3.14\r\n", "(double) 3.14\n", "3.14\n"),
    (b",inf\r\n", "(double) inf\n", "inf\n"),
    (b",-inf\r\n", "(double) -inf\n", "-inf\n"),
    (b",1e+300\r\n", "(double) 1e+300\n", "1e+300\n"),
    # Redis 7.0 writes doubles with %.17g: the text is shown as sent, not re-rounded.
    (b",0.10000000000000001\r\n", "(double) 0.10000000000000001\n", "0.10000000000000001\n"),
    (b"#t\r\n", "(true)\n", "(true)\n"),
    (b"#f\r\n", "(false)\n", "(false)\n"),
    (b"-ERR boom\r\n", "(error) ERR boom\n", "ERR boom\n\n"),
    (b"=15\r\ntxt:Some string\r\n", "Some string\n", "Some string\n"),
    (b"=10\r\ntxt:a\r\nb\r\n\r\n", "a\r\nb\r\n\n", "a\r\nb\r\n\n"),
    (b"*0\r\n", "(empty array)\n", "\n"),
    (b"%0\r\n", "(empty hash)\n", "\n"),
    (b"~0\r\n", "(empty set)\n", "\n"),
    (
        b"*3\r\n$1\r\na\r\n*2\r\n:1\r\n+OK\r\n~2\r\n$1\r\nx\r\n$1\r\ny\r\n",
        '1) "a"\n2) 1) (integer) 1\n   2) OK\n3) 1~ "x"\n   2~ "y"\n',
        "a\n1\nOK\nx\ny\n",
    ),
    (
        b"%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n*2\r\n,2.5\r\n#t\r\n",
        '1# first => (integer) 1\n2# "second" => \n   1) (double) 2.5\n   2) (true)\n',
        "first 1\nsecond 2.5\n(true)\n",
    ),
    (
        b"%1\r\n$1\r\nk\r\n%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n*1\r\n*2\r\n:1\r\n:2\r\n",
        '1# "k" => \n   1# "a" => (integer) 1\n   2# "b" => \n'
        "      1) 1) (integer) 1\n         2) (integer) 2\n",
        "k a 1\nb 1\n2\n",
    ),
    (
        b"*2\r\n-ERR inner\r\n$-1\r\n",
        "1) (error) ERR inner\n2) (nil)\n",
        "ERR inner\n\n\n",
    ),
    (
        b'$11\r\nq"\\\n\r\t\x07\x08\x00\xff~\r\n',
        '"q\\"\\\\\\n\\r\\t\\a\\b\\x00\\xff~"\n',
        'q"\\\n\r\t\x07\x08\x00\udcff~\n',  # the raw byte 0xff, as _write emits it
    ),
    (
        b"*12\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n:6\r\n:7\r\n:8\r\n:9\r\n:10\r\n"
        b"*2\r\n:1\r\n:2\r\n$1\r\nz\r\n",
        " 1) (integer) 1\n 2) (integer) 2\n 3) (integer) 3\n 4) (integer) 4\n"
        " 5) (integer) 5\n 6) (integer) 6\n 7) (integer) 7\n 8) (integer) 8\n"
        " 9) (integer) 9\n10) (integer) 10\n11) 1) (integer) 1\n    2) (integer) 2\n"
        '12) "z"\n',
        "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n1\n2\nz\n",
    ),
    (
        b"%1\r\n=7\r\ntxt:a\nb\r\n=7\r\ntxt:c\nd\r\n",
        "1# a\nb => c\nd\n",
        "a\nb c\nd\n",
    ),
    (
        b"*2\r\n%1\r\n$1\r\na\r\n~1\r\n$1\r\nb\r\n%0\r\n",
        '1) 1# "a" => 1~ "b"\n2) (empty hash)\n',
        "a b\n\n",
    ),
    (b"*1\r\n_\r\n", "1) (nil)\n", "\n"),
    (b"%1\r\n$1\r\na\r\n_\r\n", '1# "a" => (nil)\n', "a \n"),
]

# Map values taller than one line start on a new line (redis-cli's
# cliIsMultilineValueTTY); these come from redis-cli -3 on EVAL replies.
MULTILINE_CASES: list[tuple[bytes, str]] = [
    (b"%1\r\n$1\r\na\r\n*1\r\n:1\r\n", '1# "a" => 1) (integer) 1\n'),
    (b"%1\r\n$1\r\na\r\n*2\r\n:1\r\n:2\r\n", '1# "a" => \n   1) (integer) 1\n   2) (integer) 2\n'),
    (b"%1\r\n$1\r\na\r\n~1\r\n$1\r\nx\r\n", '1# "a" => 1~ "x"\n'),
    (b"%1\r\n$1\r\na\r\n%1\r\n$1\r\nx\r\n:1\r\n", '1# "a" => 1# "x" => (integer) 1\n'),
    (
        b"%1\r\n$1\r\na\r\n*1\r\n*2\r\n:1\r\n:2\r\n",
        '1# "a" => \n   1) 1) (integer) 1\n      2) (integer) 2\n',
    ),
    (
        b"%1\r\n$1\r\na\r\n%1\r\n$1\r\nx\r\n*2\r\n:1\r\n:2\r\n",
        '1# "a" => \n   1# "x" => \n      1) (integer) 1\n      2) (integer) 2\n',
    ),
    (
        b"*2\r\n:1\r\n%2\r\n$1\r\na\r\n*2\r\n:1\r\n:2\r\n$1\r\nb\r\n:3\r\n",
        '1) (integer) 1\n2) 1# "a" => \n      1) (integer) 1\n      2) (integer) 2\n'
        '   2# "b" => (integer) 3\n',
    ),
    (b"%1\r\n$1\r\na\r\n*0\r\n", '1# "a" => (empty array)\n'),
]


def _parse_whole(frame: bytes) -> object:
    reader = ReplyReader()
    reader.feed(frame)
    value = reader.gets()
    assert value is not NEED_DATA
    assert reader.gets() is NEED_DATA
    return value


def _parse_bytewise(frame: bytes) -> object:
    reader = ReplyReader()
    for i in range(len(frame)):
        assert reader.gets() is NEED_DATA
        reader.feed(frame[i : i + 1])
    return reader.gets()


def _parse_pipelined(frame: bytes) -> tuple[object, object]:
    """The frame with a second reply behind it in the same read."""
    reader = ReplyReader()
    reader.feed(frame + frame + b"+TAIL\r\n")
    first, second, tail = reader.gets(), reader.gets(), reader.gets()
    assert tail == b"TAIL" and type(tail) is Status
    assert reader.gets() is NEED_DATA
    return first, second


@pytest.mark.parametrize(("frame", "tty", "raw"), WIRE_CASES, ids=[repr(c[0]) for c in WIRE_CASES])
def test_wire_reply_prints_like_redis_cli(frame: bytes, tty: str, raw: str) -> None:
    for value in (_parse_whole(frame), _parse_bytewise(frame), *_parse_pipelined(frame)):
        assert format_reply(value, True) == tty
        assert format_reply(value, True, raw=True) == raw


@pytest.mark.parametrize(
    ("frame", "tty"), MULTILINE_CASES, ids=[repr(c[0]) for c in MULTILINE_CASES]
)
def test_tall_map_values_start_on_a_new_line(frame: bytes, tty: str) -> None:
    assert format_reply(_parse_whole(frame), True) == tty


# -- the reader's re-labelling ---------------------------------------------------------------
def test_reader_restores_the_types_hiredis_drops() -> None:
    value = _parse_whole(
        b"*6\r\n+st\r\n$4\r\nbulk\r\n=8\r\ntxt:verb\r\n~1\r\n:1\r\n(123\r\n,0.5\r\n"
    )
    assert [type(v) for v in value] == [Status, bytes, Verbatim, RespSet, BigNumber, Double]
    assert value[5].text == "0.5"


def test_reader_keeps_nested_map_keys_and_push_frames() -> None:
    value = _parse_whole(b"%1\r\n+k\r\n~1\r\n+v\r\n")
    ((key, val),) = value.items()
    assert type(key) is Status and type(val) is RespSet and type(val[0]) is Status
    push = _parse_whole(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n")
    assert type(push) is hiredis.PushNotification
    assert format_invalidate(push) == "-> invalidate: 'k'\n"


def test_false_is_a_reply_not_missing_data() -> None:
    # hiredis's default "need more data" marker is False, the value of RESP3 #f.
    reader = ReplyReader()
    reader.feed(b"#f\r\n#t\r\n")
    assert reader.gets() is False
    assert reader.gets() is True
    assert reader.gets() is NEED_DATA


def test_attribute_is_skipped() -> None:
    reader = ReplyReader()
    reader.feed(b"|1\r\n+ttl\r\n:3600\r\n+value\r\n")
    value = reader.gets()
    assert value == b"value" and type(value) is Status


def test_reader_over_the_relabel_budget_falls_back_then_resyncs() -> None:
    reader = ReplyReader(max_relabel=16)
    reader.feed(b"*3\r\n+aaaaaaaa\r\n+bbbbbbbb\r\n+c\r\n")
    big = reader.gets()
    assert big == [b"aaaaaaaa", b"bbbbbbbb", b"c"]  # hiredis's plain types
    assert format_reply(big) == '1) "aaaaaaaa"\n2) "bbbbbbbb"\n3) "c"\n'
    reader.feed(b"+OK\r\n")  # back at a reply boundary: types are exact again
    assert type(reader.gets()) is Status


def test_map_with_repeated_key_falls_back_to_hiredis_types() -> None:
    reader = ReplyReader()
    reader.feed(b"%2\r\n+k\r\n:1\r\n+k\r\n:2\r\n+OK\r\n")
    assert reader.gets() == {b"k": 2}
    assert reader.gets() == b"OK"


def test_protocol_error_is_raised() -> None:
    reader = ReplyReader()
    reader.feed(b"?what\r\n")
    with pytest.raises(ProtocolError):
        reader.gets()


# -- server-side reply values, per protocol --------------------------------------------------
@pytest.mark.parametrize(
    ("value", "resp2", "resp3"),
    [
        (OK, "OK\n", "OK\n"),
        (b"v", '"v"\n', '"v"\n'),
        ("caf\u00e9", '"caf\\xc3\\xa9"\n', '"caf\\xc3\\xa9"\n'),
        (7, "(integer) 7\n", "(integer) 7\n"),
        (True, "(integer) 1\n", "(true)\n"),
        (False, "(integer) 0\n", "(false)\n"),
        (2.5, '"2.5"\n', "(double) 2.5\n"),
        (3.0, '"3"\n', "(double) 3\n"),
        (None, "(nil)\n", "(nil)\n"),
        (NULL_ARRAY, "(nil)\n", "(nil)\n"),
        (CommandError("WRONGTYPE Operation"), "(error) WRONGTYPE Operation\n", None),
        (hiredis.ReplyError("ERR x"), "(error) ERR x\n", None),
        (Verbatim(b"a\nb"), '"a\\nb"\n', "a\nb\n"),
        (
            BigNumber(b"12345678901234567890"),
            '"12345678901234567890"\n',
            "(big number) 12345678901234567890\n",  # redis-cli 7.0 cannot show these
        ),
        ([], "(empty array)\n", "(empty array)\n"),
        ({}, "(empty array)\n", "(empty hash)\n"),
        (frozenset(), "(empty array)\n", "(empty set)\n"),
        (Push([]), "(empty array)\n", "(empty push)\n"),
        (
            {b"f1": b"v1", b"f2": 2},
            '1) "f1"\n2) "v1"\n3) "f2"\n4) (integer) 2\n',
            '1# "f1" => "v1"\n2# "f2" => (integer) 2\n',
        ),
        (RespSet([b"a", b"b"]), '1) "a"\n2) "b"\n', '1~ "a"\n2~ "b"\n'),
        (
            Push([b"message", b"ch", b"hi"]),
            '1) "message"\n2) "ch"\n3) "hi"\n',
            '1) "message"\n2) "ch"\n3) "hi"\n',
        ),
        (
            [b"a", [b"b", [b"c", None]], []],
            '1) "a"\n2) 1) "b"\n   2) 1) "c"\n      2) (nil)\n3) (empty array)\n',
            None,
        ),
        (Replies([OK, 1]), "OK\n(integer) 1\n", None),
    ],
)
def test_server_values(value: object, resp2: str, resp3: str | None) -> None:
    assert format_reply(value, False) == resp2
    assert format_reply(value, True) == (resp2 if resp3 is None else resp3)


def test_index_width_grows_with_the_count() -> None:
    text = format_reply([[b"x", b"y"]] * 10)
    lines = text.splitlines()
    assert lines[0] == ' 1) 1) "x"'
    assert lines[1] == '    2) "y"'
    assert lines[-2] == '10) 1) "x"'
    assert lines[-1] == '    2) "y"'


def test_raw_output() -> None:
    assert format_reply(None, raw=True) == "\n"
    assert format_reply([b"a", [b"b", 1]], raw=True) == "a\nb\n1\n"
    assert format_reply({b"k": b"v", b"n": 1}, True, raw=True) == "k v\nn 1\n"
    assert format_reply(CommandError("ERR no"), raw=True) == "ERR no\n\n"
    assert format_reply(b"\x00\xff", raw=True).encode("utf-8", "surrogateescape") == b"\x00\xff\n"


def test_verbatim_commands_print_raw_without_newline() -> None:
    info = Verbatim(b"# Server\r\nredis_version:7.2.4\r\n")
    assert format_verbatim(info, True) == "# Server\r\nredis_version:7.2.4\r\n"
    assert format_verbatim(bytes(info)) == "# Server\r\nredis_version:7.2.4\r\n"
    assert prefers_raw([b"INFO"]) and prefers_raw([b"info", b"server"])
    assert prefers_raw([b"CLIENT", b"LIST"]) and prefers_raw([b"client", b"info"])
    assert prefers_raw([b"cluster", b"nodes"]) and not prefers_raw([b"cluster", b"nodes", b"x"])
    assert not prefers_raw([b"GET", b"info"]) and not prefers_raw([b"client", b"id"])


def test_quote_bytes_matches_sdscatrepr() -> None:
    assert quote_bytes(b"") == '""'
    assert quote_bytes(b'a "b" \\') == '"a \\"b\\" \\\\"'
    assert quote_bytes(b"\x7f\x1b\x80") == '"\\x7f\\x1b\\x80"'
    assert quote_bytes("é".encode()) == '"\\xc3\\xa9"'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3.0, "3"),
        (-0.0, "-0"),
        (2.5, "2.5"),
        (0.1, "0.1"),
        (1e300, "1e+300"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (float("nan"), "nan"),
    ],
)
def test_format_double(value: float, text: str) -> None:
    assert format_double(value) == text


def test_non_reply_value_is_rejected() -> None:
    with pytest.raises(TypeError):
        format_reply(object())
