"""Channels and patterns: who hears a PUBLISH, and keyspace notifications.

Keyspace notifications (``CONFIG SET notify-keyspace-events``) are a keyspace-event
listener that publishes to ``__keyspace@<db>__:<key>`` and ``__keyevent@<db>__:<event>``
with Redis's flag letters: K E g $ l s h z x e n t m d A.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tokenginx.errors import CommandError
from tokenginx.replies import Push
from tokenginx.storage.events import KeyEvent
from tokenginx.storage.glob import Matcher, compile_glob

if TYPE_CHECKING:
    from tokenginx.client import Client

_ALL_CLASSES = "g$lshzxetd"  # what "A" stands for
_VALID = set("KEg$lshzxentmdA")


class PubSubHub:
    def __init__(self) -> None:
        self.channels: dict[bytes, dict[Client, None]] = {}
        self.patterns: dict[bytes, tuple[Matcher, dict[Client, None]]] = {}

    # -- subscriptions -----------------------------------------------------------------
    def subscribe(self, client: Client, channel: bytes) -> bool:
        if channel in client.channels:
            return False
        client.channels.add(channel)
        self.channels.setdefault(channel, {})[client] = None
        return True

    def unsubscribe(self, client: Client, channel: bytes) -> bool:
        if channel not in client.channels:
            return False
        client.channels.discard(channel)
        subs = self.channels.get(channel)
        if subs is not None:
            subs.pop(client, None)
            if not subs:
                del self.channels[channel]
        return True

    def psubscribe(self, client: Client, pattern: bytes) -> bool:
        if pattern in client.patterns:
            return False
        client.patterns.add(pattern)
        entry = self.patterns.get(pattern)
        if entry is None:
            entry = self.patterns[pattern] = (compile_glob(pattern), {})
        entry[1][client] = None
        return True

    def punsubscribe(self, client: Client, pattern: bytes) -> bool:
        if pattern not in client.patterns:
            return False
        client.patterns.discard(pattern)
        entry = self.patterns.get(pattern)
        if entry is not None:
            entry[1].pop(client, None)
            if not entry[1]:
                del self.patterns[pattern]
        return True

    def drop_client(self, client: Client) -> None:
        for ch in list(client.channels):
            self.unsubscribe(client, ch)
        for pat in list(client.patterns):
            self.punsubscribe(client, pat)

    # -- publishing ----------------------------------------------------------------
    def publish(self, channel: bytes, message: bytes) -> int:
        receivers = 0
        subs = self.channels.get(channel)
        if subs:
            msg = Push([b"message", channel, message])
            for c in list(subs):
                c.push(msg)
                receivers += 1
        if self.patterns:
            for pattern, (match, clients) in list(self.patterns.items()):
                if match(channel):
                    msg = Push([b"pmessage", pattern, channel, message])
                    for c in list(clients):
                        c.push(msg)
                        receivers += 1
        return receivers

    def numpat(self) -> int:
        return len(self.patterns)


def parse_notify_flags(flags: str) -> str:
    """Validate ``notify-keyspace-events`` and return it the way CONFIG GET shows it."""
    if not set(flags) <= _VALID:
        raise CommandError("ERR Invalid argument 'notify-keyspace-events'")
    classes = set(flags.replace("A", _ALL_CLASSES))
    out = "A" if set(_ALL_CLASSES) <= classes else "".join(c for c in _ALL_CLASSES if c in classes)
    return out + "".join(c for c in "KEmn" if c in classes)


class KeyspaceNotifier:
    """Publishes keyspace events to pub/sub per the configured flags."""

    def __init__(self, hub: PubSubHub, subscribe: Callable[[Callable[[KeyEvent], None]], Callable[[], None]]) -> None:
        self.hub = hub
        self._subscribe = subscribe
        self._unsubscribe: Callable[[], None] | None = None
        self.flags = ""
        self._classes: set[str] = set()
        self._keyspace = self._keyevent = False

    def configure(self, flags: str) -> None:
        canonical = parse_notify_flags(flags)
        self.flags = canonical
        expanded = set(canonical.replace("A", _ALL_CLASSES))
        self._keyspace = "K" in expanded
        self._keyevent = "E" in expanded
        self._classes = expanded - {"K", "E"}
        active = (self._keyspace or self._keyevent) and bool(self._classes)
        if active and self._unsubscribe is None:
            self._unsubscribe = self._subscribe(self._on_event)
        elif not active and self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_event(self, ev: KeyEvent) -> None:
        if ev.kind not in self._classes:
            return
        event = ev.event.encode()
        if self._keyspace:
            self.hub.publish(b"__keyspace@%d__:%b" % (ev.db, ev.key), event)
        if self._keyevent:
            self.hub.publish(b"__keyevent@%d__:%b" % (ev.db, event), ev.key)
