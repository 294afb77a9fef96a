"""Sans-IO line mode: JSON-line and XML-line application requests on the RESP port.

PyLiteFlux clients send one request per line in one of two shapes, and the first
byte of each request tells which (``*`` RESP, ``{`` JSON, ``<`` XML, anything else
an inline command — see :class:`~tokenginx.transport.resp.parser.RequestParser`)::

    {"command": "clients", "data": {"verbose": true}}\\n
    <request command="clients"><data><verbose>true</verbose></data></request>\\n

Each is answered with exactly one line in the same format: the handler's value as
JSON (``{"error": "…"}`` for an error), or ``<response>…</response>`` with every
text escaped and the line breaks of values written as character references, so a
reply never spans two lines. Server pushes to a line-mode client are one JSON line
``{"push": <message>}``.

Nothing here does I/O: :func:`take_line` frames, :func:`decode_line` decodes,
``encode_*`` encode. A line that cannot be decoded becomes a :class:`LineRequest`
carrying ``error`` (answered in its format; the connection stays usable, because
the newline still marks where the next request starts). A line longer than the limit
raises :class:`LineTooLong`: the stream cannot be resynced without buffering it, so
the connection is answered and closed, like a RESP protocol error.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import orjson

from tokenginx.errors import ProtocolError

JSON = "json"
XML = "xml"
_OPEN_BRACE = 0x7B  # "{"
_LESS_THAN = 0x3C  # "<"
LINE_START_BYTES = frozenset((_OPEN_BRACE, _LESS_THAN))
# Deeper XML than this is refused before it is turned into Python values.
_MAX_XML_DEPTH = 64


@dataclass(frozen=True, slots=True)
class LineRequest:
    """One decoded JSON or XML line. ``error`` is set when it could not be decoded."""

    fmt: str
    command: str
    data: Any = None
    error: str | None = None
    element: ET.Element | None = None  # the parsed <request> (XML only)


class LineTooLong(ProtocolError):
    """A request line passed the size limit; answered in ``fmt``, then the connection closes."""

    def __init__(self, fmt: str, limit: int) -> None:
        super().__init__(f"Protocol error: request line too long (limit {limit} bytes)")
        self.fmt = fmt


def line_format(first: int) -> str | None:
    """The line format a request starting with byte ``first`` uses, if any."""
    if first == _OPEN_BRACE:
        return JSON
    if first == _LESS_THAN:
        return XML
    return None


def take_line(buf: bytearray, start: int, limit: int) -> tuple[bytes | None, int]:
    """Cut the first complete line (without its ``\\n``) off ``buf``.

    ``start`` is how far an earlier call already looked for the newline, so a large
    line arriving in many reads is scanned once, not once per read. Returns
    ``(line, 0)`` when a line was cut, else ``(None, scanned)`` to pass back next time.
    """
    eol = buf.find(b"\n", start)
    if eol < 0:
        if len(buf) > limit:
            fmt = line_format(buf[0]) or JSON
            raise LineTooLong(fmt, limit)
        return None, len(buf)
    if eol > limit:
        raise LineTooLong(line_format(buf[0]) or JSON, limit)
    line = bytes(buf[:eol])
    del buf[: eol + 1]
    return line, 0


def decode_line(line: bytes) -> LineRequest:
    """Decode one JSON or XML request line (the caller checked its first byte)."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if line[:1] == b"<":
        return _decode_xml(line)
    return _decode_json(line)


# -- JSON ----------------------------------------------------------------------------
def _decode_json(line: bytes) -> LineRequest:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        return LineRequest(JSON, "", error=f"invalid JSON: {e}")
    if not isinstance(obj, dict):
        return LineRequest(JSON, "", error='a request is a JSON object: {"command": ..., "data": ...}')
    command = obj.get("command")
    if not isinstance(command, str) or not command:
        return LineRequest(JSON, "", error='"command" must be a non-empty string')
    return LineRequest(JSON, command, obj.get("data"))


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_JSON_OPTS = orjson.OPT_NON_STR_KEYS


def encode_json(value: Any) -> bytes:
    """One JSON line (orjson escapes control characters, so it never spans lines)."""
    return orjson.dumps(value, default=_json_default, option=_JSON_OPTS) + b"\n"


def encode_json_error(message: str) -> bytes:
    return encode_json({"error": message})


def encode_json_push(message: Any) -> bytes:
    return encode_json({"push": message})


# -- XML -----------------------------------------------------------------------------
def _decode_xml(line: bytes) -> LineRequest:
    # Entity expansion ("billion laughs") and external entities both need a DOCTYPE;
    # refusing it makes the standard library parser safe for untrusted input.
    if b"<!DOCTYPE" in line or b"<!ENTITY" in line:
        return LineRequest(XML, "", error="DOCTYPE and entity declarations are not accepted")
    try:
        root = ET.fromstring(line)
    except ET.ParseError as e:
        return LineRequest(XML, "", error=f"invalid XML: {e}")
    if root.tag != "request":
        return LineRequest(XML, "", error='the root element must be <request command="...">')
    command = root.get("command")
    if not command:
        return LineRequest(XML, "", error='<request> needs a non-empty "command" attribute')
    data_el = root.find("data")
    try:
        data = None if data_el is None else element_value(data_el)
    except ValueError as e:
        return LineRequest(XML, command, error=str(e))
    return LineRequest(XML, command, data, element=root)


def element_value(el: ET.Element, depth: int = 0) -> Any:
    """An element as plain values: text for a leaf (None when empty), a dict of child
    tag → value otherwise, a list where a tag repeats."""
    if depth > _MAX_XML_DEPTH:
        raise ValueError(f"XML nested deeper than {_MAX_XML_DEPTH} levels")
    children = list(el)
    if not children:
        return el.text
    out: dict[str, Any] = {}
    repeated: set[str] = set()
    for child in children:
        value = element_value(child, depth + 1)
        tag = child.tag
        if tag in repeated:
            out[tag].append(value)
        elif tag in out:
            out[tag] = [out[tag], value]
            repeated.add(tag)
        else:
            out[tag] = value
    return out


# XML 1.0 cannot carry most control characters at all, even as references.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*\Z")


def _xml_text(value: Any) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        text = "true" if value else "false"
    elif isinstance(value, (bytes, bytearray, memoryview)):
        text = bytes(value).decode("utf-8", "replace")
    else:
        text = str(value)
    text = (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )
    return _XML_INVALID.sub("\ufffd", text)


def _xml_element(tag: str, value: Any, out: list[str], depth: int) -> None:
    if depth > _MAX_XML_DEPTH:
        raise ValueError(f"reply nested deeper than {_MAX_XML_DEPTH} levels")
    if _XML_NAME.match(tag) and not tag.lower().startswith("xml"):
        open_tag, close_tag = f"<{tag}>", f"</{tag}>"
    else:
        # Keys that are not XML names keep their text in an attribute.
        open_tag, close_tag = f'<item key="{_xml_text(tag)}">', "</item>"
    out.append(open_tag)
    _xml_content(value, out, depth)
    out.append(close_tag)


def _xml_content(value: Any, out: list[str], depth: int) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _xml_element(k if isinstance(k, str) else _xml_text(k), v, out, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            _xml_element("item", v, out, depth + 1)
    else:
        out.append(_xml_text(value))


def encode_xml(value: Any) -> bytes:
    """``<response>…</response>`` on one line: a dict becomes one element per key (the
    seed's layout), a list repeated ``<item>`` elements, anything else escaped text."""
    out = ["<response>"]
    _xml_content(value, out, 0)
    out.append("</response>\n")
    return "".join(out).encode("utf-8")


def encode_xml_error(message: str) -> bytes:
    return encode_xml({"error": message})


def encode_error(fmt: str, message: str) -> bytes:
    return encode_xml_error(message) if fmt == XML else encode_json_error(message)


def encode_reply(fmt: str, value: Any) -> bytes:
    return encode_xml(value) if fmt == XML else encode_json(value)
