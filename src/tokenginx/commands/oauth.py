"""OAUTH.* extension commands (docs/sso-commands.md): Variant A (array replies,
positional TTL) and Variant B (JSON replies, keyword options), both on
:mod:`tokenginx.sso.oauth` and :mod:`tokenginx.sso.grants`."""

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
    revoke_user,
    s,
    string_map,
)
from tokenginx.commands.table import CommandGroup
from tokenginx.errors import CommandError, syntax_error
from tokenginx.replies import OK
from tokenginx.sso import grants, oauth
from tokenginx.sso.kinds import TOKEN

group = CommandGroup("oauth")
command = group.command

_W = "write denyoom"
_WACL = "write sso oauth slow"
_RACL = "read sso oauth fast"


# -- Variant A -------------------------------------------------------------------------
@command("oauth.set", 5, _W, acl=_WACL, since=SINCE,
         summary="Stores an access token at oauth:token:{id} for ttl seconds.")
def oauth_set(client: Client, argv: list[bytes]) -> object:
    ctx = context(client, argv, "oauth")
    ttl = lifetime(ctx, argv[4], "oauth.set")
    oauth.set_token(ctx, s(argv[1]), s(argv[2]), s(argv[3]), expires_in=ttl, kind=TOKEN)
    return OK


@command("oauth.get", 2, "readonly", acl=_RACL, since=SINCE,
         summary="Returns [user_id, scope, created_at, expires_at] of a live access token.")
def oauth_get(client: Client, argv: list[bytes]) -> list | None:
    t = oauth.get(context(client, argv, "oauth"), s(argv[1]))
    if t is None:
        return None
    return [t.user_id, t.scope, t.created_at or 0, t.expires_at or 0]


@command("oauth.introspect", 2, "readonly", acl=_RACL, since=SINCE,
         summary="Returns [1, user_id, scope, exp] for an active token, [0] otherwise.")
def oauth_introspect(client: Client, argv: list[bytes]) -> list:
    info = oauth.introspect(context(client, argv, "oauth"), s(argv[1]))
    if not info["active"]:
        return [0]
    return [1, info.get("sub", ""), info.get("scope", ""), info.get("exp", 0)]


@command("oauth.revoke", 2, "write", acl=_WACL, since=SINCE,
         summary="Revokes a token: 1 if it was revoked, 0 if not found.")
def oauth_revoke(client: Client, argv: list[bytes]) -> int:
    return 1 if oauth.revoke(context(client, argv, "oauth"), s(argv[1])) else 0


# -- Variant B: tokens -----------------------------------------------------------------
_TOKEN_OPTS = frozenset(
    (b"REFRESH_TOKEN", b"EXPIRES_IN", b"CLIENT_ID", b"TOKEN_TYPE", b"METADATA", b"REFRESH_EXPIRES_IN")
)
_HINT = frozenset((b"TOKEN_TYPE_HINT",))
_CASCADE = frozenset((b"CASCADE",))


@command("oauth.token.set", -4, _W, acl=_WACL, since=SINCE,
         summary="Stores an access token (and links its refresh token).")
def token_set(client: Client, argv: list[bytes]) -> object:
    ctx = context(client, argv, "oauth")
    opts = options(argv, 4, _TOKEN_OPTS)
    refresh = opt_text(opts, b"REFRESH_TOKEN")
    if b"REFRESH_EXPIRES_IN" in opts and not refresh:
        raise syntax_error()
    oauth.set_token(
        ctx,
        s(argv[1]),
        s(argv[2]),
        s(argv[3]),
        expires_in=lifetime(ctx, opts.get(b"EXPIRES_IN"), "oauth.token.set"),
        client_id=opt_text(opts, b"CLIENT_ID") or "",
        token_type=opt_text(opts, b"TOKEN_TYPE") or "Bearer",
        metadata=string_map(opts.get(b"METADATA"), "METADATA"),
        refresh_token=refresh,
        refresh_expires_in=lifetime(ctx, opts.get(b"REFRESH_EXPIRES_IN"), "oauth.token.set"),
    )
    return OK


@command("oauth.token.get", 2, "readonly", acl=_RACL, since=SINCE,
         summary="Returns a live access token as JSON.")
def token_get(client: Client, argv: list[bytes]) -> bytes | None:
    t = oauth.get(context(client, argv, "oauth"), s(argv[1]))
    return None if t is None else orjson.dumps(oauth.as_json(t))


@command("oauth.token.introspect", -2, "readonly", acl=_RACL, since=SINCE,
         summary="Token introspection (RFC 7662) as JSON.")
def token_introspect(client: Client, argv: list[bytes]) -> bytes:
    ctx = context(client, argv, "oauth")
    hint = opt_text(options(argv, 2, _HINT), b"TOKEN_TYPE_HINT")
    return orjson.dumps(oauth.introspect(ctx, s(argv[1]), hint))


@command("oauth.token.revoke", -2, "write", acl=_WACL, since=SINCE,
         summary="Token revocation (RFC 7009): the number of tokens revoked.")
def token_revoke(client: Client, argv: list[bytes]) -> int:
    ctx = context(client, argv, "oauth")
    opts = options(argv, 2, _HINT, _CASCADE)
    hint = opt_text(opts, b"TOKEN_TYPE_HINT")
    return oauth.revoke(ctx, s(argv[1]), hint, cascade=b"CASCADE" in opts)


@command("oauth.revoke_user", 2, "write", acl=_WACL, since=SINCE, complexity="O(N)",
         summary="Revokes every token, session and ticket of a user (SSO.USER.REVOKE).")
def oauth_revoke_user(client: Client, argv: list[bytes]) -> int:
    context(client, argv, "oauth")
    return revoke_user(client, argv)


# -- Variant B: codes and ID tokens ------------------------------------------------------
_CODE_OPTS = frozenset(
    (b"EXPIRES_IN", b"CODE_CHALLENGE", b"CODE_CHALLENGE_METHOD", b"NONCE", b"DATA")
)
_METHODS = {b"S256": "S256", b"PLAIN": "plain"}


@command("oauth.code.set", -6, _W, acl=_WACL, since=SINCE,
         summary="Stores an authorization code (one use).")
def code_set(client: Client, argv: list[bytes]) -> object:
    ctx = context(client, argv, "oauth")
    opts = options(argv, 6, _CODE_OPTS)
    method = opts.get(b"CODE_CHALLENGE_METHOD")
    if method is not None:
        if b"CODE_CHALLENGE" not in opts:
            raise syntax_error()
        if method.upper() not in _METHODS:
            raise CommandError("ERR CODE_CHALLENGE_METHOD must be S256 or plain")
    grants.set_code(
        ctx,
        s(argv[1]),
        s(argv[2]),
        s(argv[3]),
        s(argv[4]),
        s(argv[5]),
        expires_in=lifetime(ctx, opts.get(b"EXPIRES_IN"), "oauth.code.set"),
        code_challenge=opt_text(opts, b"CODE_CHALLENGE"),
        code_challenge_method=None if method is None else _METHODS[method.upper()],
        nonce=opt_text(opts, b"NONCE"),
        data=json_object(opts.get(b"DATA"), "DATA"),
    )
    return OK


@command("oauth.code.consume", 2, "write", acl=_WACL, since=SINCE,
         summary="Returns an authorization code as JSON and deletes it (one use).")
def code_consume(client: Client, argv: list[bytes]) -> bytes | None:
    return dumps(grants.consume_code(context(client, argv, "oauth"), s(argv[1])))


@command("oauth.idtoken.set", -3, _W, acl=_WACL, since=SINCE,
         summary="Stores the claims of an OIDC ID token.")
def idtoken_set(client: Client, argv: list[bytes]) -> object:
    ctx = context(client, argv, "oauth")
    opts = options(argv, 3, frozenset((b"EXPIRES_IN",)))
    claims = json_object(argv[2], "CLAIMS")
    assert claims is not None
    ttl = lifetime(ctx, opts.get(b"EXPIRES_IN"), "oauth.idtoken.set")
    grants.set_id_token(ctx, s(argv[1]), claims, ttl)
    return OK


@command("oauth.idtoken.get", 2, "readonly", acl=_RACL, since=SINCE,
         summary="Returns the claims of an OIDC ID token as JSON.")
def idtoken_get(client: Client, argv: list[bytes]) -> bytes | None:
    return dumps(grants.get_id_token(context(client, argv, "oauth"), s(argv[1])))
