"""The command families. Each module declares a :class:`CommandGroup`; the server's
command table is built from :data:`ALL_GROUPS`."""

from tokenginx.commands import connection, strings
from tokenginx.commands.table import CommandGroup

ALL_GROUPS: list[CommandGroup] = [
    connection.group,
    strings.group,
]
