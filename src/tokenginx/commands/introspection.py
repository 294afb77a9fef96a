"""COMMAND and its subcommands, generated from the command table."""

from __future__ import annotations

from typing import Any

from tokenginx.client import Client
from tokenginx.commands.table import Command, CommandGroup
from tokenginx.errors import CommandError, syntax_error
from tokenginx.storage.glob import compile_glob

group = CommandGroup("server")

_FLAGS = "loading stale"


def _resolve(client: Client, name: bytes) -> Command | None:
    table = client.state.table
    container, sep, sub_name = name.lower().partition(b"|")
    cmd = table.lookup(container)
    if cmd is None or not sep:
        return cmd
    if cmd.subcommands is None:
        return None
    return cmd.subcommands.get(sub_name)


@group.command("command", -1, _FLAGS, acl="connection slow", summary="Returns detailed information about all commands.", since="2.8.13", complexity="O(N)")
def command(client: Client, argv: list[bytes]) -> Any:
    if len(argv) == 1:
        return [cmd.info() for cmd in client.state.table]
    sub = argv[1].lower()
    if sub == b"count" and len(argv) == 2:
        return len(client.state.table)
    if sub == b"info":
        if len(argv) == 2:
            return [cmd.info() for cmd in client.state.table]
        out = []
        for name in argv[2:]:
            cmd = _resolve(client, name)
            out.append(None if cmd is None else cmd.info())
        return out
    if sub == b"docs":
        cmds = (
            list(client.state.table)
            if len(argv) == 2
            else [c for c in (_resolve(client, n) for n in argv[2:]) if c is not None]
        )
        return {c.full_name.encode(): c.docs() for c in cmds}
    if sub == b"list":
        return _list(client, argv[2:])
    if sub == b"getkeys" and len(argv) >= 3:
        cmd = client.state.table.lookup(argv[2])
        if cmd is None:
            raise CommandError("ERR Invalid command specified")
        args = argv[2:]
        if cmd.subcommands is not None and len(args) > 1:
            cmd = cmd.subcommands.get(args[1].lower(), cmd)
        a = cmd.arity
        if (len(args) != a) if a > 0 else (len(args) < -a):
            raise CommandError("ERR Invalid number of arguments specified for command")
        positions = cmd.key_positions(args)
        if not positions:
            raise CommandError("ERR The command has no key arguments")
        return [args[i] for i in positions]
    if sub == b"help":
        return [
            b"COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            b"(no subcommand)", b"    Return details about all commands.",
            b"COUNT", b"    Return the total number of commands.",
            b"DOCS [<command-name> ...]", b"    Return documentation details about commands.",
            b"GETKEYS <full-command>", b"    Return the keys from a full command.",
            b"INFO [<command-name> ...]", b"    Return details about the given commands.",
            b"LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
            b"    Return a list of all commands.",
        ]
    raise CommandError(
        f"ERR unknown subcommand '{argv[1].decode('utf-8', 'replace')}'. Try COMMAND HELP."
    )


def _list(client: Client, args: list[bytes]) -> list[bytes]:
    cmds = list(client.state.table.all_with_subcommands())
    if not args:
        return [c.full_name.encode() for c in cmds]
    if len(args) != 3 or args[0].upper() != b"FILTERBY":
        raise syntax_error()
    kind, value = args[1].upper(), args[2]
    if kind == b"ACLCAT":
        cat = value.decode("utf-8", "replace").lower().lstrip("@")
        return [c.full_name.encode() for c in cmds if cat in c.acl_categories]
    if kind == b"PATTERN":
        match = compile_glob(value.lower())
        return [c.full_name.encode() for c in cmds if match(c.full_name.encode())]
    if kind == b"MODULE":
        return []
    raise syntax_error()
