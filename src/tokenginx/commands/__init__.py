"""The command families. Each module declares a :class:`CommandGroup`; the server's
command table is built from :data:`ALL_GROUPS`."""

from tokenginx.commands import (
    connection,
    hashes,
    introspection,
    keys,
    persistence,
    pubsub,
    scripting,
    server,
    sets,
    strings,
    transactions,
)
from tokenginx.commands.table import CommandGroup

ALL_GROUPS: list[CommandGroup] = [
    connection.group,
    strings.group,
    keys.group,
    hashes.group,
    sets.group,
    transactions.group,
    pubsub.group,
    scripting.group,
    server.group,
    persistence.group,
    introspection.group,
]
