"""A raw socket client for the RESP port that reads JSON/XML lines and RESP replies
from the same stream (whatever mix of formats the test sends)."""

from __future__ import annotations

import socket
import time
from typing import Any

import orjson


class Incomplete(Exception):
    pass


class PushFrame(list):
    """A RESP3 ``>`` frame."""


def _read_line(buf: bytearray, pos: int) -> tuple[bytes, int]:
    eol = buf.find(b"\r\n", pos)
    if eol < 0:
        raise Incomplete
    return bytes(buf[pos:eol]), eol + 2


def parse_resp(buf: bytearray, pos: int = 0) -> tuple[Any, int]:
    """One RESP2/RESP3 reply from ``buf`` at ``pos``: (value, next position)."""
    if pos >= len(buf):
        raise Incomplete
    kind = buf[pos : pos + 1]
    line, pos = _read_line(buf, pos + 1)
    if kind == b"+":
        return line.decode(), pos
    if kind == b"-":
        return RuntimeError(line.decode()), pos
    if kind == b":":
        return int(line), pos
    if kind == b"_":
        return None, pos
    if kind == b"#":
        return line == b"t", pos
    if kind == b",":
        return float(line), pos
    if kind in (b"$", b"="):
        n = int(line)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            raise Incomplete
        return bytes(buf[pos : pos + n]), pos + n + 2
    if kind in (b"*", b">", b"~"):
        n = int(line)
        if n < 0:
            return None, pos
        items = []
        for _ in range(n):
            item, pos = parse_resp(buf, pos)
            items.append(item)
        return (PushFrame(items) if kind == b">" else items), pos
    if kind == b"%":
        out = {}
        for _ in range(int(line)):
            k, pos = parse_resp(buf, pos)
            v, pos = parse_resp(buf, pos)
            out[k] = v
        return out, pos
    raise ValueError(f"unexpected RESP type {kind!r}")


class RawClient:
    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()

    @property
    def client_id(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"{host}:{port}"

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def line(self) -> bytes:
        while b"\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\n")
        out = bytes(self.buf[: i + 1])
        del self.buf[: i + 1]
        return out

    def json(self) -> Any:
        return orjson.loads(self.line())

    def resp(self) -> Any:
        while True:
            try:
                value, pos = parse_resp(self.buf)
            except Incomplete:
                self._fill()
                continue
            del self.buf[:pos]
            return value

    def closed(self, timeout: float = 5.0) -> bool:
        """True once the server closed the connection (after anything still buffered)."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def nothing_pending(self, wait: float = 0.3) -> bool:
        """True if nothing arrives within ``wait`` seconds."""
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return not self.buf
        finally:
            self.sock.settimeout(10.0)
        self.buf += chunk
        return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
