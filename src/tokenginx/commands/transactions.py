"""MULTI/EXEC/DISCARD/WATCH/UNWATCH (https://redis.io/docs/latest/develop/interact/transactions/).

Queued commands were already looked up and arity-checked by the gate when queued;
EXEC runs them back to back through :meth:`Gate.call`, so nothing can interleave
(the event loop runs one EXEC to completion). WATCH is optimistic locking: any
change to a watched key — including its expiry — marks the client ``dirty_cas``
(see ``Database.changed``) and EXEC then answers a null array.
"""

from __future__ import annotations

from typing import Any

from tokenginx.client import Client
from tokenginx.commands.table import CommandGroup
from tokenginx.errors import CommandError, ExecAbortError
from tokenginx.replies import NULL_ARRAY, OK

group = CommandGroup("transactions")
command = group.command


@command("multi", 1, "noscript loading stale fast allow_busy tx_control", acl="fast transaction", summary="Starts a transaction.", since="1.2.0")
def multi(client: Client, argv: list[bytes]) -> object:
    if client.multi is not None:
        raise CommandError("ERR MULTI calls can not be nested")
    client.multi = []
    client.multi_error = False
    client.update_restricted()
    return OK


def _end_multi(client: Client) -> None:
    client.end_multi()


@command("exec", 1, "noscript loading stale skip_slowlog tx_control", acl="slow transaction", summary="Executes all commands in a transaction.", since="1.2.0", complexity="Depends on commands in the transaction")
def exec_(client: Client, argv: list[bytes]) -> Any:
    queued = client.multi
    if queued is None:
        raise CommandError("ERR EXEC without MULTI")
    if client.multi_error:
        _end_multi(client)
        raise ExecAbortError()
    if client.dirty_cas or _watched_key_expired(client):
        _end_multi(client)
        return NULL_ARRAY
    gate = client.state.gate  # type: ignore[attr-defined]
    if gate.guarded:
        # As Redis: EXEC itself is refused (the whole transaction discarded) when
        # memory is over the limit and a queued command may grow it, or when the log
        # is failing and a queued command writes; once running, it runs to the end.
        try:
            gate.check_transaction([cmd for cmd, _ in queued])
        except CommandError as e:
            _end_multi(client)
            raise ExecAbortError(e) from None
    # Leave MULTI before running, so the queued commands execute instead of queueing.
    client.multi = None
    client.update_restricted()
    call = gate.call
    replies = [call(client, cmd, args, False) for cmd, args in queued]
    _end_multi(client)
    return replies


def _watched_key_expired(client: Client) -> bool:
    now = client.state.clock()
    for db, key in client.watched:
        when = db.expire_at_ms(key)
        if when is not None and when <= now:
            return True
    return False


@command("discard", 1, "noscript loading stale fast allow_busy tx_control", acl="fast transaction", summary="Discards a transaction.", since="2.0.0")
def discard(client: Client, argv: list[bytes]) -> object:
    if client.multi is None:
        raise CommandError("ERR DISCARD without MULTI")
    _end_multi(client)
    return OK


@command("watch", -2, "noscript loading stale fast allow_busy tx_control", (1, -1, 1), "fast transaction", "Monitors changes to keys to determine the execution of a transaction.", "2.2.0", "O(1) for every key.")
def watch(client: Client, argv: list[bytes]) -> object:
    if client.multi is not None:
        raise CommandError("ERR WATCH inside MULTI is not allowed")
    db = client.db
    for key in argv[1:]:
        if any(d is db and k == key for d, k in client.watched):
            continue
        db.lookup(key)  # reclaim it now if already expired, so EXEC sees a clean state
        client.watched.append((db, key))
        db.watchers.setdefault(key, set()).add(client)
    return OK


@command("unwatch", 1, "noscript loading stale fast allow_busy", acl="fast transaction", summary="Forgets about watched keys of a transaction.", since="2.2.0")
def unwatch(client: Client, argv: list[bytes]) -> object:
    client.unwatch()
    return OK
