"""SAVE BGSAVE BGREWRITEAOF LASTSAVE: snapshots of the embedded store on demand."""

from __future__ import annotations

from tokenginx.client import Client
from tokenginx.commands.table import CommandGroup
from tokenginx.errors import CommandError, syntax_error
from tokenginx.replies import OK, Status

group = CommandGroup("server")
command = group.command


def _persistence(client: Client):  # type: ignore[no-untyped-def]
    p = client.state.persistence
    if p is None:
        raise CommandError("ERR persistence is disabled (persistence.enabled: false)")
    return p


@command("save", 1, "admin noscript no_multi", acl="admin slow dangerous", summary="Synchronously saves the database(s) to disk.", complexity="O(N) where N is the total number of keys in all databases")
def save(client: Client, argv: list[bytes]) -> object:
    p = _persistence(client)
    if p.saving:
        raise CommandError("ERR Background save already in progress")
    try:
        p.save()
    except OSError as e:
        raise CommandError(f"ERR {e}") from None
    client.state.last_save = p.status.last_save
    return OK


def _bgsave(client: Client) -> bool:
    p = _persistence(client)
    try:
        return p.bgsave()
    except OSError as e:
        raise CommandError(f"ERR {e}") from None


@command("bgsave", -1, "admin noscript no_multi", acl="admin slow dangerous", summary="Asynchronously saves the database(s) to disk.", complexity="O(1)")
def bgsave(client: Client, argv: list[bytes]) -> object:
    if len(argv) > 2 or (len(argv) == 2 and argv[1].upper() != b"SCHEDULE"):
        raise syntax_error()
    if not _bgsave(client):
        if len(argv) == 2:
            _persistence(client).status.scheduled = True
            return Status(b"Background saving scheduled")
        raise CommandError("ERR Background save already in progress")
    return Status(b"Background saving started")


@command("bgrewriteaof", 1, "admin noscript no_multi", acl="admin slow dangerous", summary="Asynchronously rewrites the append-only file to disk.", complexity="O(1)")
def bgrewriteaof(client: Client, argv: list[bytes]) -> object:
    # Our log is compacted by taking a snapshot and dropping the segments before it.
    if not _bgsave(client):
        raise CommandError(
            "ERR Background append only file rewriting already in progress"
        )
    return Status(b"Background append only file rewriting started")


@command("lastsave", 1, "loading stale fast", acl="admin fast dangerous", summary="Returns the Unix timestamp of the last successful save to disk.")
def lastsave(client: Client, argv: list[bytes]) -> int:
    p = client.state.persistence
    return p.status.last_save if p is not None else client.state.last_save
