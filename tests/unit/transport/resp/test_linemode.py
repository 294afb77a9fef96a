"""JSON-line and XML-line requests: decoding, encoding, and framing inside the RESP
request parser (fed whole, byte by byte, and pipelined with RESP and inline requests)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import orjson
import pytest

from tokenginx.errors import ProtocolError
from tokenginx.transport.resp.linemode import (
    JSON,
    XML,
    LineRequest,
    LineTooLong,
    decode_line,
    encode_error,
    encode_json,
    encode_json_push,
    encode_xml,
    take_line,
)
from tokenginx.transport.resp.parser import InlineArgv, ParserLimits, RequestParser


def frame(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


def feed_all(parser: RequestParser, chunks: list[bytes]) -> list:
    out: list = []
    for c in chunks:
        out.extend(parser.feed(c))
    return out


def simple(items: list) -> list:
    """Requests in a comparable form: argv lists, or (fmt, command, data, error)."""
    return [
        (r.fmt, r.command, r.data, r.error) if isinstance(r, LineRequest) else list(r)
        for r in items
    ]


# -- decoding ---------------------------------------------------------------------------
def test_json_request() -> None:
    req = decode_line(b'{"command": "clients", "data": {"a": [1, 2]}}')
    assert (req.fmt, req.command, req.data, req.error) == (JSON, "clients", {"a": [1, 2]}, None)


def test_json_request_without_data_and_crlf() -> None:
    req = decode_line(b'{"command":"ping"}\r')
    assert (req.command, req.data, req.error) == ("ping", None, None)


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (b"{bad", "invalid JSON"),
        (b'{"command": 1}', '"command" must be a non-empty string'),
        (b'{"command": ""}', '"command" must be a non-empty string'),
        (b'{"data": 1}', '"command" must be a non-empty string'),
        (b'{"command": "x"} trailing', "invalid JSON"),
        (b"{" * 5000 + b"}" * 5000, "invalid JSON"),
        (b'{"command": "x\xff"}', "invalid JSON"),
    ],
)
def test_bad_json_is_an_error_value_not_an_exception(line: bytes, needle: str) -> None:
    req = decode_line(line)
    assert req.fmt == JSON
    assert req.error is not None and needle in req.error


def test_xml_request_data_as_values() -> None:
    req = decode_line(
        b'<request command="add"><data><user>bob</user><tag>a</tag><tag>b</tag>'
        b"<empty/><nested><x>1</x></nested></data></request>"
    )
    assert (req.fmt, req.command, req.error) == (XML, "add", None)
    assert req.data == {"user": "bob", "tag": ["a", "b"], "empty": None, "nested": {"x": "1"}}
    assert req.element is not None and req.element.get("command") == "add"


def test_xml_request_text_data_and_no_data() -> None:
    assert decode_line(b'<request command="echo"><data>a &amp; b</data></request>').data == "a & b"
    req = decode_line(b'<request command="echo"/>')
    assert (req.command, req.data, req.error) == ("echo", None, None)


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (b"<request command='x'>", "invalid XML"),
        (b"<other command='x'/>", "root element must be <request"),
        (b"<request/>", '"command" attribute'),
        (
            b'<!DOCTYPE r [<!ENTITY a "aaaa">]><request command="x"><data>&a;</data></request>',
            "DOCTYPE",
        ),
        (
            b'<request command="x"><data>' + b"<a>" * 100 + b"</a>" * 100 + b"</data></request>",
            "nested deeper",
        ),
    ],
)
def test_bad_xml_is_an_error_value_not_an_exception(line: bytes, needle: str) -> None:
    req = decode_line(line)
    assert req.fmt == XML
    assert req.error is not None and needle in req.error


# -- encoding ---------------------------------------------------------------------------
def test_json_reply_is_one_line() -> None:
    out = encode_json({"text": "a\nb\r\n", "b": b"raw", "s": {1}, 2: None})
    assert out.endswith(b"\n") and out.count(b"\n") == 1
    assert orjson.loads(out) == {"text": "a\nb\r\n", "b": "raw", "s": [1], "2": None}


def test_json_reply_refuses_unknown_types() -> None:
    with pytest.raises(TypeError):
        encode_json({"x": object()})


def test_json_error_and_push_shapes() -> None:
    assert orjson.loads(encode_error(JSON, "ERR nope")) == {"error": "ERR nope"}
    assert orjson.loads(encode_json_push("hi")) == {"push": "hi"}


def test_xml_reply_escapes_and_stays_on_one_line() -> None:
    value = {
        "message": 'a <b> & "c"\nnext',
        "count": 2,
        "ok": True,
        "none": None,
        "list": [1, "two"],
        "bad key": "x",
        "xmlish": "y",
        "ctl": "\x00\x07",
    }
    out = encode_xml(value)
    assert out.endswith(b"\n") and out.count(b"\n") == 1
    root = ET.fromstring(out)  # well-formed, whatever the values were
    assert root.tag == "response"
    assert root.findtext("message") == 'a <b> & "c"\nnext'
    assert root.findtext("count") == "2"
    assert root.findtext("ok") == "true"
    assert root.find("none").text is None
    assert [i.text for i in root.find("list")] == ["1", "two"]
    keyed = {i.get("key"): i.text for i in root.findall("item")}
    assert keyed == {"bad key": "x", "xmlish": "y"}
    assert root.findtext("ctl") == "\ufffd\ufffd"


def test_xml_scalar_and_error_replies() -> None:
    assert encode_xml("plain <text>") == b"<response>plain &lt;text&gt;</response>\n"
    root = ET.fromstring(encode_error(XML, "ERR unknown command 'x'"))
    assert root.findtext("error") == "ERR unknown command 'x'"


# -- take_line --------------------------------------------------------------------------
def test_take_line_remembers_how_far_it_searched() -> None:
    buf = bytearray(b'{"command": "x"')
    line, scanned = take_line(buf, 0, 100)
    assert line is None and scanned == len(buf)
    buf += b"}\nrest"
    line, scanned = take_line(buf, scanned, 100)
    assert line == b'{"command": "x"}' and scanned == 0 and buf == b"rest"


def test_take_line_limit() -> None:
    with pytest.raises(LineTooLong) as e:
        take_line(bytearray(b"<" + b"x" * 20), 0, 10)
    assert e.value.fmt == XML
    with pytest.raises(LineTooLong):
        take_line(bytearray(b"{" + b"x" * 20 + b"\n"), 0, 10)


# -- inside the RESP request parser ----------------------------------------------------------
MIXED = (
    b'{"command": "a", "data": 1}\n'
    + frame(b"PING")
    + b'<request command="b"><data>t</data></request>\r\n'
    + b"ECHO hi\r\n"
    + b"{oops\n"
    + frame(b"GET", b"k")
)
MIXED_EXPECTED = [
    (JSON, "a", 1, None),
    [b"PING"],
    (XML, "b", "t", None),
    [b"ECHO", b"hi"],
    None,  # the malformed JSON line: compared separately
    [b"GET", b"k"],
]


def check_mixed(items: list) -> None:
    got = simple(items)
    assert len(got) == len(MIXED_EXPECTED)
    for g, e in zip(got, MIXED_EXPECTED, strict=True):
        if e is None:
            assert g[0] == JSON and g[3] is not None and "invalid JSON" in g[3]
        else:
            assert g == e


def test_mixed_formats_whole() -> None:
    check_mixed(RequestParser().feed(MIXED))


def test_mixed_formats_byte_by_byte() -> None:
    check_mixed(feed_all(RequestParser(), [MIXED[i : i + 1] for i in range(len(MIXED))]))


def test_mixed_formats_in_odd_chunks() -> None:
    for size in (2, 3, 7, 13, 64):
        check_mixed(feed_all(RequestParser(), [MIXED[i : i + size] for i in range(0, len(MIXED), size)]))


def test_inline_requests_are_marked() -> None:
    out = RequestParser().feed(b"PING\r\n" + frame(b"PING"))
    assert type(out[0]) is InlineArgv and type(out[1]) is list


def test_large_json_line_in_many_reads() -> None:
    payload = "x" * (1024 * 1024)
    data = orjson.dumps({"command": "big", "data": payload}) + b"\n" + frame(b"PING")
    parser = RequestParser()
    out = feed_all(parser, [data[i : i + 65536] for i in range(0, len(data), 65536)])
    assert len(out) == 2
    assert out[0].command == "big" and out[0].data == payload
    assert out[1] == [b"PING"]


def test_line_over_the_limit_fails_after_earlier_requests() -> None:
    parser = RequestParser(ParserLimits(max_line_bytes=100))
    with pytest.raises(ProtocolError) as e:
        parser.feed(frame(b"PING") + b'{"command": "x", "data": "' + b"y" * 200)
    assert isinstance(e.value, LineTooLong) and e.value.fmt == JSON
    assert parser.error_prefix == [[b"PING"]]


def test_line_limit_is_enforced_while_the_line_is_still_arriving() -> None:
    parser = RequestParser(ParserLimits(max_line_bytes=100))
    parser.feed(b"<request ")
    with pytest.raises(LineTooLong) as e:
        for _ in range(20):
            parser.feed(b"x" * 10)
    assert e.value.fmt == XML


def test_parser_recovers_a_json_line_after_a_partial_resp_frame() -> None:
    parser = RequestParser()
    first = frame(b"SET", b"k", b"v")
    out = parser.feed(first[:7])
    out += parser.feed(first[7:] + b'{"command": "c"}\n')
    assert simple(out) == [[b"SET", b"k", b"v"], (JSON, "c", None, None)]
