"""Sans-IO RESP request parser: bytes in, argument vectors out.

Requests are either *multibulk* (``*N\\r\\n$L\\r\\n…``, what every client library
sends) or *inline* (``SET a 1\\r\\n``, what telnet and ``redis-cli --pipe`` files send);
the first byte of each request decides, exactly as Redis does. Two more first bytes
start an application *line-mode* request (PyLiteFlux's formats, see
:mod:`~tokenginx.transport.resp.linemode`): ``{`` a JSON line and ``<`` an XML line;
they come out of ``feed`` as :class:`LineRequest` objects instead of argument vectors,
and inline requests as :class:`InlineArgv` (a ``list`` that remembers its origin).

Multibulk frames are parsed by hiredis (C) for speed. hiredis enforces no limits, so
this class keeps the unconsumed bytes itself whenever a frame spans more than one
``feed`` and, once they exceed ``check_threshold``, walks the frame headers in Python
(resumably, never rescanning) to enforce ``max_multibulk_len``, ``max_bulk_bytes``
and ``max_query_bytes`` before anything is buffered without bound. Small requests
that arrive whole, the common case, never touch the Python path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import hiredis

from tokenginx.errors import ProtocolError
from tokenginx.transport.resp.linemode import (
    LINE_START_BYTES,
    LineRequest,
    LineTooLong,
    decode_line,
    take_line,
)


@dataclass(frozen=True, slots=True)
class ParserLimits:
    max_multibulk_len: int = 1024 * 1024
    max_bulk_bytes: int = 16 * 1024 * 1024
    max_inline_bytes: int = 64 * 1024
    max_query_bytes: int = 1024 * 1024 * 1024
    check_threshold: int = 64 * 1024
    max_line_bytes: int = 16 * 1024 * 1024  # one JSON/XML line-mode request
    unauthenticated: bool = False  # Redis's wording for the pre-AUTH limits


# Redis's limits for a client that has not authenticated yet (networking.c): a
# password-protected server must not let an anonymous peer make it allocate.
UNAUTHENTICATED_MULTIBULK_LEN = 10
UNAUTHENTICATED_BULK_BYTES = 16 * 1024
_INT_MAX = 2**31 - 1


def unauthenticated(limits: ParserLimits) -> ParserLimits:
    """``limits`` tightened as Redis tightens them before AUTH."""
    return replace(
        limits,
        max_multibulk_len=min(limits.max_multibulk_len, UNAUTHENTICATED_MULTIBULK_LEN),
        max_bulk_bytes=min(limits.max_bulk_bytes, UNAUTHENTICATED_BULK_BYTES),
        max_line_bytes=min(limits.max_line_bytes, UNAUTHENTICATED_BULK_BYTES),
        unauthenticated=True,
    )


def _count_guard(limits: ParserLimits) -> re.Pattern[bytes]:
    """Finds array headers (``*N``) with as many digits as the largest count allowed:
    hiredis allocates an array as soon as it reads a header, so such frames are
    checked against the limits before hiredis sees them (``*2147483648`` would make
    it reserve 16 GB). Anything shorter is within the limit by construction."""
    digits = len(str(max(limits.max_multibulk_len, 1)))
    return re.compile(rb"\*[0-9]{%d}" % digits)


class InlineArgv(list):
    """The arguments of an inline request (``SET a 1\\r\\n``): a plain list to every
    command, but application commands can tell the two RESP forms apart."""

    __slots__ = ()


_UNQUOTE_ESCAPES = {
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
    ord("b"): b"\b",
    ord("a"): b"\a",
}
_HEX = b"0123456789abcdefABCDEF"


def split_inline(line: bytes) -> list[bytes]:
    """Split an inline request the way Redis's ``sdssplitargs`` does.

    Double quotes allow ``\\n \\r \\t \\b \\a \\xHH`` escapes, single quotes only ``\\'``;
    a closing quote must be followed by a space or the end of the line.
    """
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in b" \t\r\n\v\f":
            i += 1
        if i >= n:
            return args
        cur = bytearray()
        in_dq = in_sq = False
        while True:
            if in_dq:
                if i >= n:
                    raise ProtocolError("Protocol error: unbalanced quotes in request")
                c = line[i]
                if (
                    c == 0x5C
                    and i + 3 < n
                    and line[i + 1] == ord("x")
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    cur.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 0x5C and i + 1 < n:
                    i += 1
                    cur += _UNQUOTE_ESCAPES.get(line[i], bytes((line[i],)))
                elif c == 0x22:
                    if i + 1 < n and line[i + 1] not in b" \t\r\n\v\f":
                        raise ProtocolError("Protocol error: unbalanced quotes in request")
                    i += 1
                    break
                else:
                    cur.append(c)
            elif in_sq:
                if i >= n:
                    raise ProtocolError("Protocol error: unbalanced quotes in request")
                c = line[i]
                if c == 0x5C and i + 1 < n and line[i + 1] == 0x27:
                    i += 1
                    cur.append(0x27)
                elif c == 0x27:
                    if i + 1 < n and line[i + 1] not in b" \t\r\n\v\f":
                        raise ProtocolError("Protocol error: unbalanced quotes in request")
                    i += 1
                    break
                else:
                    cur.append(c)
            else:
                if i >= n:
                    break
                c = line[i]
                if c in b" \t\r\n\v\f":
                    break
                if c == 0x22:
                    in_dq = True
                elif c == 0x27:
                    in_sq = True
                else:
                    cur.append(c)
            i += 1
        args.append(bytes(cur))


class _FrameValidator:
    """Walks multibulk headers of one frame incrementally to enforce limits.

    ``pos`` is where in the caller's buffer the next unvalidated header starts;
    ``skip`` is how many payload bytes (bulk body + CRLF) still lie before it.
    """

    __slots__ = ("pos", "elements_left", "in_header", "limits")

    def __init__(self, limits: ParserLimits) -> None:
        self.limits = limits
        self.reset()

    def reset(self) -> None:
        self.pos = 0
        self.elements_left = -1  # -1: the array header has not been read yet

    def advance(self, buf: bytearray) -> None:
        lim = self.limits
        n = len(buf)
        while self.pos < n:
            if self.elements_left == 0:
                return  # frame complete as far as limits go; hiredis will yield it
            eol = buf.find(b"\r\n", self.pos)
            if eol < 0:
                if n - self.pos > 32:
                    raise ProtocolError(
                        "Protocol error: too big mbulk count string"
                        if self.elements_left < 0
                        else "Protocol error: too big bulk count string"
                    )
                return
            header = bytes(buf[self.pos : eol])
            if self.elements_left < 0:
                try:
                    count = int(header[1:])
                except ValueError:
                    raise ProtocolError("Protocol error: invalid multibulk length") from None
                if count > lim.max_multibulk_len:
                    raise ProtocolError(
                        "Protocol error: unauthenticated multibulk length"
                        if lim.unauthenticated and count <= _INT_MAX
                        else "Protocol error: invalid multibulk length"
                    )
                self.elements_left = max(count, 0)
                self.pos = eol + 2
                continue
            if header[:1] != b"$":
                got = chr(header[0]) if header else " "
                raise ProtocolError(f"Protocol error: expected '$', got '{got}'")
            try:
                size = int(header[1:])
            except ValueError:
                raise ProtocolError("Protocol error: invalid bulk length") from None
            if size < 0 or size > lim.max_bulk_bytes:
                raise ProtocolError(
                    "Protocol error: unauthenticated bulk length"
                    if lim.unauthenticated and 0 <= size <= _INT_MAX
                    else "Protocol error: invalid bulk length"
                )
            self.pos = eol + 2 + size + 2
            self.elements_left -= 1


class RequestParser:
    """Incremental request parser for one connection.

    ``feed(data)`` returns the complete requests (each a ``list[bytes]``, or a
    :class:`LineRequest` for a JSON/XML line) found so far. A :class:`ProtocolError`
    raised by ``feed`` is fatal for the connection; requests that completed before
    the bad bytes are in ``error_prefix``.

    hiredis does not say where a frame ends, so the parser counts: ``_fed`` bytes
    went into hiredis since the last frame boundary and ``_used`` bytes of them
    formed the requests returned (the canonical size of a frame is a function of its
    arguments; Redis, like us, refuses non-canonical lengths such as ``$03``). When
    the two are equal we are at a boundary, which is when the next byte decides
    between multibulk and inline. Otherwise the unconsumed tail is kept in ``_tail``
    so limits can be checked and an inline request after multibulk ones recovered.
    """

    __slots__ = (
        "limits",
        "_reader",
        "_fed",
        "_used",
        "_tail",
        "_inline",
        "_line_scan",
        "_validator",
        "_guard",
        "error_prefix",
    )

    def __init__(self, limits: ParserLimits | None = None) -> None:
        self.limits = limits or ParserLimits()
        self._reader = hiredis.Reader()
        self._fed = 0
        self._used = 0
        self._tail = bytearray()
        # Buffered inline-mode bytes (a request that does not start with '*').
        self._inline = bytearray()
        self._line_scan = 0  # how much of a partial JSON/XML line was searched for "\n"
        self._validator = _FrameValidator(self.limits)
        self._guard = _count_guard(self.limits).search
        self.error_prefix: list[list[bytes] | LineRequest] = []

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete request held so far."""
        return len(self._tail) + len(self._inline)

    def set_limits(self, limits: ParserLimits) -> None:
        """Switch limits (after AUTH) for the requests still to come."""
        self.limits = limits
        self._validator.limits = limits
        self._guard = _count_guard(limits).search

    def feed(self, data: bytes) -> list[list[bytes] | LineRequest]:
        out: list[list[bytes] | LineRequest] = []
        if not data:
            return out
        if self._inline or (self._fed == 0 and data[0] != 42):  # 42 == ord("*")
            self._inline += data
            self._drain_inline(out)
        else:
            self._feed_multibulk(data, out)
        return out

    # -- multibulk -------------------------------------------------------------------
    def _feed_multibulk(self, data: bytes | bytearray, out: list[Any]) -> None:
        reader = self._reader
        lim = self.limits
        had_tail = self._fed != 0
        if had_tail or len(data) > lim.check_threshold or self._guard(data) is not None:
            # Limits are checked before hiredis buffers (or allocates) anything big;
            # a frame spanning reads is checked on every read, from where it stopped.
            self._tail += data
            self._check_limits(out)
        reader.feed(data)
        self._fed += len(data)
        start = len(out)
        used = self._used
        try:
            req = reader.gets()
            while req is not False:
                if type(req) is list and req:
                    out.append(req)
                elif req == []:
                    used += 4  # "*0\r\n"
                elif req is None:
                    used += 5  # "*-1\r\n"
                else:
                    used += self._account(out, start)
                    self._fail(out, "Protocol error: expected '*', got a non-array request")
                req = reader.gets()
        except hiredis.ProtocolError:
            self._used = used + self._account(out, start)
            self._recover_after_hiredis_error(data, had_tail, out)
            return
        if len(out) > start:
            used += self._account(out, start)
        fed = self._fed
        if used == fed:
            self._fed = self._used = 0
            if self._tail:
                self._tail = bytearray()
                self._validator.reset()
            return
        if used > fed:
            # Only possible with non-canonical lengths, which Redis refuses as well.
            self._fail(out, "Protocol error: invalid bulk length")
        self._used = used
        self._keep_tail(data, had_tail)
        # An incomplete frame: validate its headers now (cheap, resumable) so a
        # malformed or oversized request is refused at once instead of waited on.
        self._check_limits(out)

    def _account(self, out: list[Any], start: int) -> int:
        """Bytes the requests ``out[start:]`` occupied on the wire (``*N\r\n`` then
        ``$L\r\n<payload>\r\n`` per argument), checking that every argument is a
        bulk string. A plain loop with inline digit counting measured fastest (C-level
        map/repr variants spend more converting lengths to text)."""
        total = 0
        for i in range(start, len(out)):
            req = out[i]
            total += 3 + len(str(len(req))) + 5 * len(req)
            for a in req:
                if type(a) is not bytes:
                    del out[i:]
                    self._fail(out, _bad_element(a))
                n = len(a)
                total += n + (1 if n < 10 else 2 if n < 100 else 3 if n < 1000 else len(str(n)))
        return total

    def _keep_tail(self, data: bytes | bytearray, had_tail: bool) -> None:
        """Keep exactly the unconsumed bytes (the start of an incomplete frame)."""
        unconsumed = self._fed - self._used
        tail = self._tail
        if not had_tail and not tail:
            self._tail = bytearray(data[len(data) - unconsumed :])
            self._validator.reset()
        elif len(tail) > unconsumed:
            del tail[: len(tail) - unconsumed]
            self._validator.reset()
        # Rebase the counters on the tail so they stay small.
        self._fed, self._used = unconsumed, 0

    def _check_limits(self, out: list[Any]) -> None:
        tail = self._tail
        if len(tail) > self.limits.max_query_bytes:
            self._fail(out, "Protocol error: too big query buffer")
        v = self._validator
        try:
            # Walk every frame in the buffer, the partial last one included.
            while True:
                v.advance(tail)
                if v.elements_left != 0 or v.pos >= len(tail):
                    break
                nxt = v.pos
                v.reset()
                v.pos = nxt
                if tail[nxt] != 42:
                    break  # an inline request follows; handled after hiredis stops
        except ProtocolError as e:
            self._fail(out, e.message)

    def _fail(self, out: list[Any], message: str | ProtocolError) -> None:
        self.error_prefix = out
        self._reader = hiredis.Reader()
        self._fed = self._used = 0
        self._tail = bytearray()
        self._inline = bytearray()
        self._line_scan = 0
        self._validator.reset()
        raise message if isinstance(message, ProtocolError) else ProtocolError(message)

    def _recover_after_hiredis_error(
        self, data: bytes | bytearray, had_tail: bool, out: list[Any]
    ) -> None:
        """hiredis met a byte that starts no RESP frame: an inline request follows."""
        unconsumed = self._fed - self._used
        source = self._tail if (had_tail or self._tail) else data
        rest = bytes(source[len(source) - unconsumed :]) if unconsumed > 0 else b""
        if rest[:1] == b"*" or not rest:
            self._fail(out, f"Protocol error: expected '$', got '{_first_bad_type(rest)}'")
        self._reader = hiredis.Reader()
        self._fed = self._used = 0
        self._tail = bytearray()
        self._validator.reset()
        self._inline += rest
        self._drain_inline(out)

    # -- inline ----------------------------------------------------------------------
    def _drain_inline(self, out: list[Any]) -> None:
        buf = self._inline
        limit = self.limits.max_inline_bytes
        while buf:
            first = buf[0]
            if first == 42:
                rest = bytes(buf)
                self._inline = bytearray()
                self._feed_multibulk(rest, out)
                return
            if first in LINE_START_BYTES:
                try:
                    line, self._line_scan = take_line(
                        buf, self._line_scan, self.limits.max_line_bytes
                    )
                except LineTooLong as e:
                    self._fail(out, e)
                if line is None:
                    return
                out.append(decode_line(line))
                continue
            eol = buf.find(b"\n")
            if eol < 0:
                if len(buf) > limit:
                    self._fail(out, "Protocol error: too big inline request")
                return
            if eol > limit:
                self._fail(out, "Protocol error: too big inline request")
            line = bytes(buf[:eol])
            del buf[: eol + 1]
            try:
                argv = split_inline(line)
            except ProtocolError as e:
                self._fail(out, e.message)
            if argv:
                out.append(InlineArgv(argv))


def _bad_element(value: object) -> str:
    if value is None:
        return "Protocol error: invalid bulk length"
    return f"Protocol error: expected '$', got '{_type_byte(value)}'"


def _first_bad_type(frame: bytes) -> str:
    """The type byte that follows the array header of a malformed frame."""
    eol = frame.find(b"\r\n")
    nxt = frame[eol + 2 : eol + 3] if eol >= 0 else b""
    return nxt.decode("latin-1") or " "


def _type_byte(value: object) -> str:
    """The RESP type byte hiredis must have seen to produce ``value``."""
    if isinstance(value, list):
        return "*"
    if isinstance(value, int):
        return ":"
    if value is None:
        return "$"
    return "-"
