"""Pub/sub commands (https://redis.io/docs/latest/develop/interact/pubsub/).

A (P)SUBSCRIBE with several channels answers one frame per channel; the handler
returns them as a :class:`~tokenginx.replies.Replies` so they stay in order with
the other replies of a pipeline.
"""

from __future__ import annotations

from collections.abc import Callable

from tokenginx.client import Client
from tokenginx.commands.table import CommandGroup
from tokenginx.errors import CommandError
from tokenginx.replies import Push, Replies
from tokenginx.storage.glob import MAX_PATTERN_BYTES, PatternTooLong, compile_glob

group = CommandGroup("pubsub")
command = group.command

_SUB_FLAGS = "pubsub noscript loading stale pubsub_ok"


def _frame(kind: bytes, name: bytes | None, count: int) -> Push:
    return Push([kind, name, count])


def _check_door(client: Client) -> None:
    if client.push_sink is None:
        raise CommandError("ERR this connection cannot receive pub/sub messages")


def _apply(
    client: Client, kind: bytes, names: list[bytes], action: Callable[[Client, bytes], bool]
) -> Replies:
    """Run ``action`` per name and answer one ``[kind, name, count]`` frame each
    (a single frame with a nil name when there was nothing to unsubscribe from)."""
    out = Replies()
    if not names:
        out.append(_frame(kind, None, client.subscriptions()))
    for name in names:
        action(client, name)
        out.append(_frame(kind, name, client.subscriptions()))
    client.update_restricted()
    return out


@command("subscribe", -2, _SUB_FLAGS, acl="pubsub slow", summary="Listens for messages published to channels.", since="2.0.0", complexity="O(N)")
def subscribe(client: Client, argv: list[bytes]) -> Replies:
    _check_door(client)
    return _apply(client, b"subscribe", argv[1:], client.state.pubsub.subscribe)


@command("psubscribe", -2, _SUB_FLAGS, acl="pubsub slow", summary="Listens for messages published to channels that match one or more patterns.", since="2.0.0", complexity="O(N)")
def psubscribe(client: Client, argv: list[bytes]) -> Replies:
    _check_door(client)
    if any(len(p) > MAX_PATTERN_BYTES for p in argv[1:]):
        raise PatternTooLong()  # before any pattern is subscribed
    return _apply(client, b"psubscribe", argv[1:], client.state.pubsub.psubscribe)


@command("unsubscribe", -1, _SUB_FLAGS, acl="pubsub slow", summary="Stops listening to messages posted to channels.", since="2.0.0", complexity="O(N)")
def unsubscribe(client: Client, argv: list[bytes]) -> Replies:
    names = argv[1:] or sorted(client.channels)
    return _apply(client, b"unsubscribe", names, client.state.pubsub.unsubscribe)


@command("punsubscribe", -1, _SUB_FLAGS, acl="pubsub slow", summary="Stops listening to messages published to channels that match one or more patterns.", since="2.0.0", complexity="O(N)")
def punsubscribe(client: Client, argv: list[bytes]) -> Replies:
    names = argv[1:] or sorted(client.patterns)
    return _apply(client, b"punsubscribe", names, client.state.pubsub.punsubscribe)


@command("publish", 3, "pubsub loading stale fast", acl="pubsub fast", summary="Posts a message to a channel.", since="2.0.0", complexity="O(N+M)")
def publish(client: Client, argv: list[bytes]) -> int:
    return client.state.pubsub.publish(argv[1], argv[2])


group.container("pubsub", acl="pubsub slow", summary="A container for Pub/Sub commands.", since="2.8.0")


@group.subcommand("pubsub", "channels", -2, "pubsub loading stale", acl="pubsub slow", summary="Returns the active channels.", since="2.8.0", complexity="O(N)")
def pubsub_channels(client: Client, argv: list[bytes]) -> list[bytes]:
    if len(argv) > 3:
        raise CommandError("ERR wrong number of arguments for 'pubsub|channels' command")
    names = list(client.state.pubsub.channels)
    if len(argv) == 3:
        match = compile_glob(argv[2])
        names = [n for n in names if match(n)]
    return names


@group.subcommand("pubsub", "numsub", -2, "pubsub loading stale", acl="pubsub slow", summary="Returns a count of subscribers to channels.", since="2.8.0", complexity="O(N)")
def pubsub_numsub(client: Client, argv: list[bytes]) -> list[object]:
    out: list[object] = []
    channels = client.state.pubsub.channels
    for ch in argv[2:]:
        out.append(ch)
        out.append(len(channels.get(ch, ())))
    return out


@group.subcommand("pubsub", "numpat", 2, "pubsub loading stale", acl="pubsub slow", summary="Returns a count of unique pattern subscriptions.", since="2.8.0")
def pubsub_numpat(client: Client, argv: list[bytes]) -> int:
    return client.state.pubsub.numpat()
