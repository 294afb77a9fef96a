"""uvicorn's httptools protocol with the limits it lacks.

uvicorn (with httptools) takes request heads of any size and any number of fields,
and waits forever for a head or a body that trickles in: a slowloris client holds a
connection (and its memory) indefinitely. :func:`guarded_protocol` builds a subclass
that answers ``431`` past ``http.max_headers`` fields or ``http.max_header_bytes``
bytes (request line included), ``408`` when a head is not complete within
``http.header_timeout_s`` of its first byte (or of the connection, before the first
request), and closes a connection whose body stalls for ``http.body_timeout_s``.
Everything else is uvicorn's.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("tokenginx.http")


@dataclass(frozen=True)
class HeadLimits:
    max_headers: int
    max_header_bytes: int
    header_timeout_s: float
    body_timeout_s: float


class _HeadTooLarge(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    limits: HeadLimits  # set on the subclass guarded_protocol() makes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._head_fields = 0
        self._head_bytes = 0
        self._too_large = False

    # -- timers ----------------------------------------------------------------------
    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_late)

    def _cancel(self, name: str) -> None:
        timer = getattr(self, name)
        if timer is not None:
            timer.cancel()
            setattr(self, name, None)

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            log.info("closing %s: request head not complete in %ss", self.client,
                     self.limits.header_timeout_s)
            self._send_error(408, "Request Timeout")

    def _body_late(self) -> None:
        self._body_timer = None
        if not self.transport.is_closing():
            log.info("closing %s: request body stalled for %ss", self.client,
                     self.limits.body_timeout_s)
            self.transport.close()

    def _send_error(self, status: int, reason: str) -> None:
        body = reason.encode()
        self.transport.write(
            b"HTTP/1.1 %d %b\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%b"
            % (status, reason.encode(), len(body), body)
        )
        self.transport.close()

    # -- protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # a client that connects and sends nothing

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel("_head_timer")
        self._cancel("_body_timer")
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()  # no WebSocket support in this app
        except httptools.HttpParserError:
            if self._too_large:
                self._send_error(431, "Request Header Fields Too Large")
            else:
                self.send_400_response("Invalid HTTP request received.")

    def _count(self, size: int, fields: int = 0) -> None:
        self._head_bytes += size
        self._head_fields += fields
        lim = self.limits
        if self._head_bytes > lim.max_header_bytes or self._head_fields > lim.max_headers:
            self._too_large = True
            raise _HeadTooLarge()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_fields = self._head_bytes = 0
        self._too_large = False
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4, 1)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel("_head_timer")
        super().on_headers_complete()
        if self.parser.get_method() not in (b"GET", b"HEAD", b"OPTIONS", b"DELETE"):
            self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_late)

    def on_body(self, body: bytes) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_late)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel("_body_timer")
        super().on_message_complete()


def guarded_protocol(limits: HeadLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's ``http=`` with these limits."""
    return type("TokenginXHttpProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})
