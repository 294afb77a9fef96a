"""Pub/sub commands (https://redis.io/docs/latest/develop/interact/pubsub/).

A (P)SUBSCRIBE with several channels answers one frame per channel; the handler
returns them as a :class:`~tokenginx.replies.Replies` so they stay in order with
the other replies of a pipeline.
"""

from __future__ import annotations

from tokenginx.client import Client
from tokenginx.commands.table import CommandGroup
from tokenginx.errors import CommandError
from tokenginx.replies import Push, Replies
from tokenginx.storage.glob import compile_glob

group = CommandGroup("pubsub")
command = group.command

_SUB_FLAGS = "pubsub noscript loading stale pubsub_ok"


def _frame(kind: bytes, name: bytes | None, count: int) -> Push:
    return Push([kind, name, count])


def _check_door(client: Client) -> None:
    if client.push_sink is None:
        raise CommandError("ERR this connection cannot receive pub/sub messages")


@command("subscribe", -2, _SUB_FLAGS, acl="pubsub slow", summary="Listens for messages published to channels.", since="2.0.0", complexity="O(N)")
def subscribe(client: Client, argv: list[bytes]) -> Replies:
    _check_door(client)
    hub = client.state.pubsub
    out = Replies()
    for ch in argv[1:]:
        hub.subscribe(client, ch)
        out.append(_frame(b"subscribe", ch, client.subscriptions()))
    client.update_restricted()
    return out


@command("psubscribe", -2, _SUB_FLAGS, acl="pubsub slow", summary="Listens for messages published to channels that match one or more patterns.", since="2.0.0", complexity="O(N)")
def psubscribe(client: Client, argv: list[bytes]) -> Replies:
    _check_door(client)
    hub = client.state.pubsub
    out = Replies()
    for pat in argv[1:]:
        hub.psubscribe(client, pat)
        out.append(_frame(b"psubscribe", pat, client.subscriptions()))
    client.update_restricted()
    return out


@command("unsubscribe", -1, _SUB_FLAGS, acl="pubsub slow", summary="Stops listening to messages posted to channels.", since="2.0.0", complexity="O(N)")
def unsubscribe(client: Client, argv: list[bytes]) -> Replies:
    hub = client.state.pubsub
    channels = argv[1:] or sorted(client.channels)
    out = Replies()
    if not channels:
        out.append(_frame(b"unsubscribe", None, client.subscriptions()))
    for ch in channels:
        hub.unsubscribe(client, ch)
        out.append(_frame(b"unsubscribe", ch, client.subscriptions()))
    client.update_restricted()
    return out


@command("punsubscribe", -1, _SUB_FLAGS, acl="pubsub slow", summary="Stops listening to messages published to channels that match one or more patterns.", since="2.0.0", complexity="O(N)")
def punsubscribe(client: Client, argv: list[bytes]) -> Replies:
    hub = client.state.pubsub
    patterns = argv[1:] or sorted(client.patterns)
    out = Replies()
    if not patterns:
        out.append(_frame(b"punsubscribe", None, client.subscriptions()))
    for pat in patterns:
        hub.punsubscribe(client, pat)
        out.append(_frame(b"punsubscribe", pat, client.subscriptions()))
    client.update_restricted()
    return out


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
