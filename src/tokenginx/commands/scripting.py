"""Scripting commands: EVAL EVALSHA EVAL_RO EVALSHA_RO SCRIPT
(https://redis.io/docs/latest/commands/?group=scripting).

The work is done by the server's :class:`~tokenginx.scripting.engine.ScriptEngine`,
created on first use. Every command here is "noscript": a script cannot run or
manage scripts.
"""

from __future__ import annotations

from tokenginx.client import Client
from tokenginx.commands.args import parse_int
from tokenginx.commands.table import CommandGroup
from tokenginx.errors import CommandError, NoScriptError
from tokenginx.replies import OK
from tokenginx.scripting.engine import Script, engine_for

group = CommandGroup("scripting")
command = group.command

_EVAL = "noscript stale skip_monitor may_replicate no_mandatory_keys movablekeys"
_EVAL_RO = "readonly noscript stale skip_monitor no_mandatory_keys movablekeys"
_ACL = "slow scripting"
_DEPENDS = "Depends on the script that is executed."


def _split(argv: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """KEYS and ARGV of an EVAL-like call, with Redis's numkeys checks."""
    numkeys = parse_int(argv[2])
    if numkeys > len(argv) - 3:
        raise CommandError("ERR Number of keys can't be greater than number of args")
    if numkeys < 0:
        raise CommandError("ERR Number of keys can't be negative")
    return argv[3 : 3 + numkeys], argv[3 + numkeys :]


def _eval(client: Client, argv: list[bytes], read_only: bool) -> object:
    keys, args = _split(argv)
    engine = engine_for(client.state)
    return _raise_errors(engine.run(client, engine.load(argv[1]), keys, args, read_only))


def _evalsha(client: Client, argv: list[bytes], read_only: bool) -> object:
    if len(argv[1]) != 40:
        raise NoScriptError()
    keys, args = _split(argv)
    engine = client.state.scripts
    script: Script | None = engine.get(argv[1]) if engine is not None else None
    if script is None:
        raise NoScriptError()
    return _raise_errors(engine.run(client, script, keys, args, read_only))


def _raise_errors(reply: object) -> object:
    """A script that ends in an error fails the EVAL call: the gate then counts it in
    the command's failed calls and the error statistics, as Redis does."""
    if isinstance(reply, CommandError):
        raise reply
    return reply


@command("eval", -3, _EVAL, acl=_ACL, summary="Executes a server-side Lua script.", since="2.6.0", complexity=_DEPENDS)
def eval_(client: Client, argv: list[bytes]) -> object:
    return _eval(client, argv, read_only=False)


@command("evalsha", -3, _EVAL, acl=_ACL, summary="Executes a server-side Lua script by SHA1 digest.", since="2.6.0", complexity=_DEPENDS)
def evalsha(client: Client, argv: list[bytes]) -> object:
    return _evalsha(client, argv, read_only=False)


@command("eval_ro", -3, _EVAL_RO, acl=_ACL, summary="Executes a read-only server-side Lua script.", since="7.0.0", complexity=_DEPENDS)
def eval_ro(client: Client, argv: list[bytes]) -> object:
    return _eval(client, argv, read_only=True)


@command("evalsha_ro", -3, _EVAL_RO, acl=_ACL, summary="Executes a read-only server-side Lua script by SHA1 digest.", since="7.0.0", complexity=_DEPENDS)
def evalsha_ro(client: Client, argv: list[bytes]) -> object:
    return _evalsha(client, argv, read_only=True)


# -- SCRIPT ------------------------------------------------------------------------------
group.container("script", acl=_ACL, summary="A container for Lua scripts management commands.", since="2.6.0")
sub = group.subcommand


@sub("script", "load", 3, "noscript stale", acl=_ACL, summary="Loads a server-side Lua script to the script cache.", since="2.6.0", complexity="O(N) with N being the length in bytes of the script body.")
def script_load(client: Client, argv: list[bytes]) -> bytes:
    return engine_for(client.state).load(argv[2]).sha.encode()


@sub("script", "exists", -3, "noscript", acl=_ACL, summary="Determines whether server-side Lua scripts exist in the script cache.", since="2.6.0", complexity="O(N) with N being the number of scripts to check (so checking a single script is an O(1) operation).")
def script_exists(client: Client, argv: list[bytes]) -> list[int]:
    engine = client.state.scripts
    if engine is None:
        return [0] * (len(argv) - 2)
    return [1 if engine.exists(sha) else 0 for sha in argv[2:]]


@sub("script", "flush", -2, "noscript may_replicate", acl=_ACL, summary="Removes all server-side Lua scripts from the script cache.", since="2.6.0", complexity="O(N) with N being the number of scripts in cache")
def script_flush(client: Client, argv: list[bytes]) -> object:
    if len(argv) > 3 or (len(argv) == 3 and argv[2].upper() not in (b"SYNC", b"ASYNC")):
        raise CommandError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    engine = client.state.scripts
    if engine is not None:
        engine.flush()
    return OK


@sub("script", "kill", 2, "noscript allow_busy", acl=_ACL, summary="Terminates a server-side Lua script during execution.", since="2.6.0")
def script_kill(client: Client, argv: list[bytes]) -> object:
    # Reached only while a script is busy (its hook serves this client) or idle.
    engine = client.state.scripts
    if engine is None:
        raise CommandError("NOTBUSY No scripts in execution right now.")
    engine.kill()
    return OK
