"""SAML.* extension commands (docs/sso-commands.md) on :mod:`tokenginx.sso.saml`."""

from __future__ import annotations

import orjson

from tokenginx.client import Client
from tokenginx.commands.sso import (
    SINCE,
    context,
    dumps,
    json_object,
    lifetime,
    opt_text,
    options,
    s,
)
from tokenginx.commands.table import CommandGroup
from tokenginx.replies import OK
from tokenginx.sso import saml

group = CommandGroup("saml")
command = group.command

_W = "write denyoom"
_WACL = "write sso saml slow"
_RACL = "read sso saml fast"
_EXPIRES = frozenset((b"EXPIRES_IN",))
_SESSION_OPTS = frozenset((b"EXPIRES_IN", b"NAME_ID_FORMAT", b"ATTRIBUTES"))


# -- Variant A -------------------------------------------------------------------------
@command("saml.set", 5, _W, acl=_WACL, since=SINCE,
         summary="Stores a SAML session for ttl seconds.")
def saml_set(client: Client, argv: list[bytes]) -> object:
    ctx = context(client, argv, "saml")
    ttl = lifetime(ctx, argv[4], "saml.set")
    saml.set_session(ctx, s(argv[1]), s(argv[2]), s(argv[3]), expires_in=ttl)
    return OK


@command("saml.get", 2, "readonly", acl=_RACL, since=SINCE,
         summary="Returns [name_id, assertion, created_at, expires_at] of a SAML session.")
def saml_get(client: Client, argv: list[bytes]) -> list | None:
    session = saml.get_session(context(client, argv, "saml"), s(argv[1]))
    if session is None:
        return None
    return [session["name_id"], session["assertion"],
            session["created_at"] or 0, session["expires_at"] or 0]


# -- Variant B: sessions ---------------------------------------------------------------
@command("saml.session.set", -4, _W, acl=_WACL, since=SINCE,
         summary="Stores a SAML session.")
def session_set(client: Client, argv: list[bytes]) -> object:
    ctx = context(client, argv, "saml")
    opts = options(argv, 4, _SESSION_OPTS)
    saml.set_session(
        ctx,
        s(argv[1]),
        s(argv[2]),
        s(argv[3]),
        expires_in=lifetime(ctx, opts.get(b"EXPIRES_IN"), "saml.session.set"),
        name_id_format=opt_text(opts, b"NAME_ID_FORMAT"),
        attributes=json_object(opts.get(b"ATTRIBUTES"), "ATTRIBUTES"),
    )
    return OK


@command("saml.session.get", 2, "readonly", acl=_RACL, since=SINCE,
         summary="Returns a SAML session as JSON.")
def session_get(client: Client, argv: list[bytes]) -> bytes | None:
    return dumps(saml.get_session(context(client, argv, "saml"), s(argv[1])))


@command("saml.session.del", 2, "write", acl=_WACL, since=SINCE,
         summary="Ends a SAML session: 1 if it existed.")
def session_del(client: Client, argv: list[bytes]) -> int:
    return saml.delete_session(context(client, argv, "saml"), s(argv[1]))


@command("saml.session.list", 2, "readonly", acl="read sso saml slow", since=SINCE,
         complexity="O(N)", summary="Lists the live SAML sessions of a NameID as JSON.")
def session_list(client: Client, argv: list[bytes]) -> bytes:
    return orjson.dumps(saml.sessions_of(context(client, argv, "saml"), s(argv[1])))


# -- Variant B: artifacts and logout requests ---------------------------------------------
@command("saml.artifact.set", -3, _W, acl=_WACL, since=SINCE,
         summary="Stores a SAML artifact's payload (one use).")
def artifact_set(client: Client, argv: list[bytes]) -> object:
    ctx = context(client, argv, "saml")
    opts = options(argv, 3, _EXPIRES)
    ttl = lifetime(ctx, opts.get(b"EXPIRES_IN"), "saml.artifact.set")
    saml.set_artifact(ctx, s(argv[1]), argv[2], ttl)
    return OK


@command("saml.artifact.resolve", 2, "write", acl=_WACL, since=SINCE,
         summary="Returns a SAML artifact's payload and deletes it (one use).")
def artifact_resolve(client: Client, argv: list[bytes]) -> bytes | None:
    return saml.resolve_artifact(context(client, argv, "saml"), s(argv[1]))


@command("saml.logout.set", -3, _W, acl=_WACL, since=SINCE,
         summary="Stores a pending SAML logout request.")
def logout_set(client: Client, argv: list[bytes]) -> object:
    ctx = context(client, argv, "saml")
    opts = options(argv, 3, _EXPIRES)
    request = json_object(argv[2], "REQUEST")
    assert request is not None
    ttl = lifetime(ctx, opts.get(b"EXPIRES_IN"), "saml.logout.set")
    saml.set_logout(ctx, s(argv[1]), request, ttl)
    return OK


@command("saml.logout.get", 2, "readonly", acl=_RACL, since=SINCE,
         summary="Returns a pending SAML logout request as JSON.")
def logout_get(client: Client, argv: list[bytes]) -> bytes | None:
    return dumps(saml.get_logout(context(client, argv, "saml"), s(argv[1])))
