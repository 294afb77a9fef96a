"""What every SSO operation runs on: one database, the protocol settings, one clock
reading, and the keyspace event bus.

Records are compact JSON objects stored as strings. Reads are tolerant: a value that
is not a JSON object (garbled, or written by someone else in another format) is "no
record", never an error, because introspection must answer ``active:false`` for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tokenginx.config import ProtocolsConfig
from tokenginx.storage.base import Database
from tokenginx.storage.events import GENERIC, EventBus

# Event names of the SSO domain (class GENERIC, "g"), emitted on the key *before* it
# is deleted so a listener can still read what ended.
REVOKED = "revoked"
CONSUMED = "consumed"


@dataclass(slots=True)
class SSOContext:
    db: Database
    protocols: ProtocolsConfig
    now_ms: int  # read once per operation: every record of one call agrees on "now"
    events: EventBus

    @classmethod
    def of(cls, db: Database, protocols: ProtocolsConfig) -> SSOContext:
        """The context of ``db``. The keyspace behind it (``db.ks``) provides the clock
        and the event bus, so ManualClock tests and keyspace notifications just work."""
        ks: Any = db.ks  # type: ignore[attr-defined]
        return cls(db, protocols, ks.clock(), ks.events)

    @property
    def now_s(self) -> int:
        return self.now_ms // 1000

    def deadline(self, expires_in: int) -> int:
        """Absolute expiry in Unix ms for a lifetime in seconds."""
        return self.now_ms + expires_in * 1000

    def emit(self, key: bytes, event: str) -> None:
        if self.events.active:
            self.events.emit(self.db.id, key, event, GENERIC)

    # -- records ---------------------------------------------------------------------
    def load(self, key: bytes) -> dict[str, Any] | None:
        """The JSON object stored at ``key``; None if missing, expired or not one."""
        return parse(self.db.lookup(key))

    def store(self, key: bytes, record: dict[str, Any], expire_at: int | None,
              keep_ttl: bool = False) -> None:
        self.db.set_string(key, orjson.dumps(record), expire_at, keep_ttl=keep_ttl)

    def expires_at_s(self, key: bytes) -> int | None:
        """The key's deadline in Unix seconds, None without one."""
        at = self.db.expire_at_ms(key)
        return None if at is None else at // 1000

    def end(self, key: bytes, event: str) -> bool:
        """Announce ``event`` on ``key`` then delete it; False if it was already gone."""
        if self.db.lookup(key) is None:
            return False
        self.emit(key, event)
        return self.db.delete(key)


def parse(value: Any) -> dict[str, Any] | None:
    if type(value) is not bytes:
        return None
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return record if type(record) is dict else None


def text(value: Any) -> str:
    """A record field as text ("" when missing or not a string)."""
    return value if type(value) is str else ""
