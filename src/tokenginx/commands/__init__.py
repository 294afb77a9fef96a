"""The command families. Each module declares a :class:`CommandGroup`; the server's
command table is built from :data:`ALL_GROUPS`."""

from tokenginx.commands import (
    cas,
    connection,
    hashes,
    introspection,
    keys,
    oauth,
    persistence,
    pubsub,
    saml,
    scripting,
    server,
    sets,
    sso,
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
    oauth.group,
    saml.group,
    cas.group,
    sso.group,
]
