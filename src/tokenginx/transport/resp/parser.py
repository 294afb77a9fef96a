"""Sans-IO RESP request parser: bytes in, argument vectors out.

Requests are either *multibulk* (``*N\\r\\n$L\\r\\n…``, what every client library
sends) or *inline* (``SET a 1\\r\\n``, what telnet and ``redis-cli --pipe`` files send);
the first byte of each request decides, exactly as Redis does.

Multibulk frames are parsed by hiredis (C) for speed. hiredis enforces no limits, so
this class keeps the unconsumed bytes itself whenever a frame spans more than one
``feed`` and, once they exceed ``check_threshold``, walks the frame headers in Python
(resumably, never rescanning) to enforce ``max_multibulk_len``, ``max_bulk_bytes``
and ``max_query_bytes`` before anything is buffered without bound. Small requests
that arrive whole, the common case, never touch the Python path.
"""

from __future__ import annotations

from dataclasses import dataclass

import hiredis

from tokenginx.errors import ProtocolError


@dataclass(frozen=True, slots=True)
class ParserLimits:
    max_multibulk_len: int = 1024 * 1024
    max_bulk_bytes: int = 16 * 1024 * 1024
    max_inline_bytes: int = 64 * 1024
    max_query_bytes: int = 1024 * 1024 * 1024
    check_threshold: int = 64 * 1024


def _frame_size(argv: list[bytes]) -> int:
    """Bytes a canonically encoded multibulk frame of ``argv`` occupies."""
    size = len(b"*%d\r\n" % len(argv))
    for a in argv:
        n = len(a)
        size += len(b"$%d\r\n" % n) + n + 2
    return size


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
                    raise ProtocolError("Protocol error: invalid multibulk length")
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
                raise ProtocolError("Protocol error: invalid bulk length")
            self.pos = eol + 2 + size + 2
            self.elements_left -= 1


class RequestParser:
    """Incremental request parser for one connection.

    ``feed(data)`` returns the complete requests (each a ``list[bytes]``) found so
    far. A :class:`ProtocolError` raised by ``feed`` is fatal for the connection;
    requests that completed before the bad bytes are in ``error_prefix``.
    """

    __slots__ = ("limits", "_reader", "_pending", "_inline", "_validator", "error_prefix")

    def __init__(self, limits: ParserLimits | None = None) -> None:
        self.limits = limits or ParserLimits()
        self._reader = hiredis.Reader()
        # Unconsumed multibulk bytes, kept only while a frame spans several feeds.
        self._pending = bytearray()
        # Buffered inline-mode bytes (a request that does not start with '*').
        self._inline = bytearray()
        self._validator = _FrameValidator(self.limits)
        self.error_prefix: list[list[bytes]] = []

    def feed(self, data: bytes) -> list[list[bytes]]:
        out: list[list[bytes]] = []
        if self._inline or (not self._pending and data[:1] != b"*"):
            self._inline += data
            self._drain_inline(out)
        else:
            self._feed_multibulk(data, out)
        return out

    # -- multibulk -------------------------------------------------------------
    def _feed_multibulk(self, data: bytes | bytearray, out: list[list[bytes]]) -> None:
        reader = self._reader
        reader.feed(data)
        start = len(out)
        pending = self._pending
        if pending:
            pending += data
            if len(pending) > self.limits.check_threshold:
                self._check_limits(pending, out)
        elif len(data) > self.limits.check_threshold:
            pending += data
            self._check_limits(pending, out)
            del pending[:]
        try:
            req = reader.gets()
            while req is not False:
                if type(req) is list:
                    for a in req:
                        if type(a) is not bytes:
                            self._fail(out, f"Protocol error: expected '$', got '{_type_byte(a)}'")
                    if req:
                        out.append(req)
                elif req is not None:
                    # A top-level reply that is not an array: only reachable through
                    # the pending-bytes path below, where we re-route it as inline.
                    raise hiredis.ProtocolError("not an array")
                req = reader.gets()
        except hiredis.ProtocolError:
            self._recover_after_hiredis_error(data, out, start)
            return
        if reader.has_data():
            self._keep_unconsumed(data, out, start)
        elif pending:
            del pending[:]
            self._validator.reset()

    def _check_limits(self, pending: bytearray, out: list[list[bytes]]) -> None:
        if len(pending) > self.limits.max_query_bytes:
            self._fail(out, "Protocol error: too big query buffer")
        try:
            # Validate every complete frame in the buffer and the partial last one.
            v = self._validator
            while True:
                v.advance(pending)
                if v.elements_left != 0 or v.pos >= len(pending):
                    break
                # One frame fully described; go on with the next one in the buffer.
                nxt = v.pos
                v.reset()
                v.pos = nxt
                if pending[nxt : nxt + 1] not in (b"*", b""):
                    break  # inline request follows; handled after hiredis stops
        except ProtocolError as e:
            self._fail(out, e.message)

    def _fail(self, out: list[list[bytes]], message: str) -> None:
        self.error_prefix = out
        self._reader = hiredis.Reader()
        self._pending = bytearray()
        self._validator.reset()
        raise ProtocolError(message)

    def _keep_unconsumed(self, data: bytes | bytearray, out: list[list[bytes]], start: int) -> None:
        """A frame is incomplete: remember its bytes so limits can be checked."""
        pending = self._pending
        if start == len(out):
            if not pending:
                pending += data  # first piece of a frame; nothing consumed yet
            return
        consumed = sum(_frame_size(r) for r in out[start:])
        if pending:
            del pending[:consumed]
        else:
            pending += memoryview(data)[consumed:]
        self._validator.reset()
        if pending[:1] not in (b"*", b""):
            # An inline request follows multibulk ones: hiredis would choke on it.
            self._reroute_inline(out)
        elif len(pending) > self.limits.check_threshold:
            self._check_limits(pending, out)

    def _recover_after_hiredis_error(
        self, data: bytes | bytearray, out: list[list[bytes]], start: int
    ) -> None:
        pending = self._pending
        consumed = sum(_frame_size(r) for r in out[start:])
        if pending:
            rest = bytes(pending[consumed:])
        else:
            rest = bytes(data[consumed:])
        if rest[:1] == b"*":
            self.error_prefix = out
            self._reader = hiredis.Reader()
            self._pending = bytearray()
            raise ProtocolError(f"Protocol error: expected '$', got '{_first_bad_type(rest)}'")
        self._pending = bytearray(rest)
        self._reroute_inline(out)

    def _reroute_inline(self, out: list[list[bytes]]) -> None:
        self._reader = hiredis.Reader()
        self._inline += self._pending
        self._pending = bytearray()
        self._validator.reset()
        self._drain_inline(out)

    # -- inline ----------------------------------------------------------------
    def _drain_inline(self, out: list[list[bytes]]) -> None:
        buf = self._inline
        limit = self.limits.max_inline_bytes
        while buf:
            if buf[:1] == b"*":
                rest = bytes(buf)
                del buf[:]
                self._feed_multibulk(rest, out)
                return
            eol = buf.find(b"\n")
            if eol < 0:
                if len(buf) > limit:
                    self._inline = bytearray()
                    self.error_prefix = out
                    raise ProtocolError("Protocol error: too big inline request")
                return
            if eol > limit:
                self._inline = bytearray()
                self.error_prefix = out
                raise ProtocolError("Protocol error: too big inline request")
            line = bytes(buf[:eol])
            del buf[: eol + 1]
            try:
                argv = split_inline(line)
            except ProtocolError:
                self._inline = bytearray()
                self.error_prefix = out
                raise
            if argv:
                out.append(argv)


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
