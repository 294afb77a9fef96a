"""SSO.USER.* (a user's artifacts across protocols) and the argument handling shared by
the OAUTH.*, SAML.* and CAS.* families (docs/sso-commands.md).

The SSO commands declare no key positions: their keys are derived from the
configured prefixes (``oauth:access_token:{id}``…), not passed as arguments, so
``COMMAND GETKEYS`` answers "no key arguments" as Redis does for keyless commands.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenginx.client import Client
from tokenginx.commands.args import I64_MAX, parse_int, timeout_error
from tokenginx.commands.table import CommandGroup
from tokenginx.errors import CommandError, syntax_error
from tokenginx.sso import users
from tokenginx.sso.context import SSOContext

group = CommandGroup("sso")

SINCE = "0.1.0"
_NAMES = {"oauth": "OAuth", "saml": "SAML", "cas": "CAS"}


def context(client: Client, argv: list[bytes], protocol: str | None = None) -> SSOContext:
    """The SSO context of the client's database, after the checks every SSO command
    makes: the protocol is enabled and no argument exceeds ``limits.value_bytes``."""
    config = client.state.config
    protocols = config.protocols
    if protocol is not None and not getattr(protocols, protocol).enabled:
        raise CommandError(
            f"ERR {_NAMES[protocol]} support is disabled (protocols.{protocol}.enabled)"
        )
    limit = config.limits.value_bytes
    for arg in argv[1:]:
        if len(arg) > limit:
            raise CommandError(f"ERR string exceeds maximum allowed size ({limit} bytes)")
    return SSOContext.of(client.db, protocols)


def s(arg: bytes) -> str:
    """An argument as text (ids, user names, scopes are UTF-8)."""
    return arg.decode("utf-8", "replace")


def options(
    argv: list[bytes], start: int, values: frozenset[bytes], flags: frozenset[bytes] = frozenset()
) -> dict[bytes, bytes]:
    """Keyword options from ``argv[start:]``, in any order and letter case.

    ``values`` take one argument, ``flags`` none (mapped to ``b""``); anything else,
    or a value option at the end without its value, is ``ERR syntax error``.
    """
    out: dict[bytes, bytes] = {}
    i, n = start, len(argv)
    while i < n:
        opt = argv[i].upper()
        if opt in flags:
            out[opt] = b""
            i += 1
        elif opt in values and i + 1 < n:
            out[opt] = argv[i + 1]
            i += 2
        else:
            raise syntax_error()
    return out


def lifetime(ctx: SSOContext, raw: bytes | None, name: str) -> int | None:
    """A lifetime in seconds (None when not given); positive, as SETEX wants."""
    if raw is None:
        return None
    n = parse_int(raw)
    if n <= 0 or n > (I64_MAX - ctx.now_ms) // 1000:
        raise timeout_error(name)
    return n


def json_object(raw: bytes | None, what: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise CommandError(f"ERR invalid JSON in {what}: {e}") from None
    if type(value) is not dict:
        raise CommandError(f"ERR invalid JSON in {what}: expected an object")
    return value


def string_map(raw: bytes | None, what: str) -> dict[str, str] | None:
    value = json_object(raw, what)
    if value is not None and any(type(v) is not str for v in value.values()):
        raise CommandError(f"ERR invalid JSON in {what}: values must be strings")
    return value


def opt_text(opts: dict[bytes, bytes], name: bytes) -> str | None:
    raw = opts.get(name)
    return None if raw is None else s(raw)


def dumps(value: Any) -> bytes | None:
    return None if value is None else orjson.dumps(value)


# -- SSO.USER.* --------------------------------------------------------------------------
@group.command(
    "sso.user.sessions", 2, "readonly", acl="read sso slow", since=SINCE, complexity="O(N)",
    summary="Lists the live tokens, sessions and tickets of a user as JSON.",
)
def user_sessions(client: Client, argv: list[bytes]) -> bytes:
    return orjson.dumps(users.sessions(context(client, argv), s(argv[1])))


@group.command(
    "sso.user.revoke", 2, "write", acl="write sso slow", since=SINCE, complexity="O(N)",
    summary="Revokes every token, session and ticket of a user.",
)
def revoke_user(client: Client, argv: list[bytes]) -> int:
    return users.revoke_all(context(client, argv), s(argv[1]))
