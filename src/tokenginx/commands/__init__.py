"""The command families. Each module declares a :class:`CommandGroup`; the server's
command table is built from :data:`ALL_GROUPS`."""

from tokenginx.commands import (
    connection,
    introspection,
    keys,
    pubsub,
    server,
    strings,
    transactions,
)
from tokenginx.commands.table import CommandGroup

ALL_GROUPS: list[CommandGroup] = [
    connection.group,
    strings.group,
    keys.group,
    transactions.group,
    pubsub.group,
    server.group,
    introspection.group,
]
