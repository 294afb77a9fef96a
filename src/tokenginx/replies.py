"""The value model a command handler returns, independent of any wire format.

Handlers return plain Python values and the transport encodes them:

=====================  ======================  =======================
handler returns        RESP2                   RESP3
=====================  ======================  =======================
``bytes`` / ``str``    bulk string             bulk string
``Status``             simple string ``+``     simple string ``+``
``int``                integer                 integer
``bool``               integer 1/0             boolean ``#t``/``#f``
``float``              bulk string             double ``,``
``None``               null bulk ``$-1``       null ``_``
``NULL_ARRAY``         null array ``*-1``      null ``_``
``list``/``tuple``     array                   array
``dict``               flat array              map ``%``
``set``/``frozenset``  array                   set ``~``
``Verbatim``           bulk string             verbatim ``=txt:``
``Push``               array                   push ``>``
``Replies``            each item, in order     each item, in order
``CommandError``       error ``-``             error ``-``
=====================  ======================  =======================
"""

from __future__ import annotations


class Status(bytes):
    """A simple-string reply such as ``+OK``."""

    __slots__ = ()


class Verbatim(bytes):
    """Human-readable text (INFO, CLIENT LIST): verbatim string on RESP3."""

    __slots__ = ()


class Push(list):
    """Out-of-band message (pub/sub, invalidation): a push frame on RESP3."""

    __slots__ = ()


class Replies(list):
    """Several top-level replies from one command (SUBSCRIBE ch1 ch2 → one frame each)."""

    __slots__ = ()


class _NullArray:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NULL_ARRAY"


OK = Status(b"OK")
QUEUED = Status(b"QUEUED")
PONG = Status(b"PONG")
NULL_ARRAY = _NullArray()
