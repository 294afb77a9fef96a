"""Keyspace events: what changed, published to whoever listens.

The keyspace emits one event per change (``set``, ``del``, ``expired``, ``evicted``…,
the names Redis uses for keyspace notifications). Listeners are plain callables;
pub/sub notifications, WATCH and (later) the HTTP event stream and persistence
subscribe here instead of being called from each command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Event classes, as the letters of ``notify-keyspace-events``.
GENERIC = "g"
STRING = "$"
LIST = "l"
SET = "s"
HASH = "h"
ZSET = "z"
EXPIRED = "x"
EVICTED = "e"
NEW = "n"


@dataclass(frozen=True, slots=True)
class KeyEvent:
    db: int
    key: bytes
    event: str  # "set", "del", "expired", "expire", "hset", …
    kind: str  # one of the class letters above


Listener = Callable[[KeyEvent], None]


class EventBus:
    __slots__ = ("_listeners", "active")

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self.active = False  # fast check on the write path

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        self.active = True

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
            self.active = bool(self._listeners)

        return unsubscribe

    def emit(self, db: int, key: bytes, event: str, kind: str) -> None:
        ev = KeyEvent(db, key, event, kind)
        for listener in tuple(self._listeners):
            listener(ev)
