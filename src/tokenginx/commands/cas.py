"""CAS.* extension commands (docs/sso-commands.md) on :mod:`tokenginx.sso.cas`."""

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
from tokenginx.sso import cas

group = CommandGroup("cas")
command = group.command

_W = "write denyoom"
_WACL = "write sso cas slow"
_RACL = "read sso cas fast"
_EXPIRES = frozenset((b"EXPIRES_IN",))


# -- Variant A -------------------------------------------------------------------------
@command("cas.set_tgt", 4, _W, acl=_WACL, since=SINCE,
         summary="Stores a ticket-granting ticket for ttl seconds.")
def set_tgt_a(client: Client, argv: list[bytes]) -> object:
    ctx = context(client, argv, "cas")
    ttl = lifetime(ctx, argv[3], "cas.set_tgt")
    cas.set_tgt(ctx, s(argv[1]), s(argv[2]), expires_in=ttl)
    return OK


@command("cas.set_st", 5, _W, acl=_WACL, since=SINCE,
         summary="Stores a service ticket of a live TGT for ttl seconds.")
def set_st_a(client: Client, argv: list[bytes]) -> object:
    ctx = context(client, argv, "cas")
    ttl = lifetime(ctx, argv[4], "cas.set_st")
    cas.set_st(ctx, s(argv[1]), s(argv[2]), s(argv[3]), expires_in=ttl)
    return OK


@command("cas.validate_st", 3, "write", acl=_WACL, since=SINCE,
         summary="Validates and consumes a service ticket: [1, user_id] or [0, \"\"].")
def validate_st_a(client: Client, argv: list[bytes]) -> list:
    result = cas.validate_st(context(client, argv, "cas"), s(argv[1]), s(argv[2]))
    return [1, result["user_id"]] if result["valid"] else [0, ""]


# -- Variant B -------------------------------------------------------------------------
@command("cas.tgt.set", -3, _W, acl=_WACL, since=SINCE,
         summary="Stores a ticket-granting ticket.")
def tgt_set(client: Client, argv: list[bytes]) -> object:
    ctx = context(client, argv, "cas")
    opts = options(argv, 3, frozenset((b"EXPIRES_IN", b"ATTRIBUTES")))
    cas.set_tgt(
        ctx,
        s(argv[1]),
        s(argv[2]),
        expires_in=lifetime(ctx, opts.get(b"EXPIRES_IN"), "cas.tgt.set"),
        attributes=json_object(opts.get(b"ATTRIBUTES"), "ATTRIBUTES"),
    )
    return OK


@command("cas.tgt.get", 2, "readonly", acl=_RACL, since=SINCE,
         summary="Returns a ticket-granting ticket as JSON.")
def tgt_get(client: Client, argv: list[bytes]) -> bytes | None:
    return dumps(cas.get_tgt(context(client, argv, "cas"), s(argv[1])))


@command("cas.tgt.del", 2, "write", acl=_WACL, since=SINCE, complexity="O(N)",
         summary="Destroys a ticket-granting ticket and every ticket issued under it.")
def tgt_del(client: Client, argv: list[bytes]) -> int:
    return cas.destroy_tgt(context(client, argv, "cas"), s(argv[1]))


@command("cas.st.set", -4, _W, acl=_WACL, since=SINCE,
         summary="Stores a service ticket of a live TGT.")
def st_set(client: Client, argv: list[bytes]) -> object:
    ctx = context(client, argv, "cas")
    opts = options(argv, 4, _EXPIRES)
    ttl = lifetime(ctx, opts.get(b"EXPIRES_IN"), "cas.st.set")
    cas.set_st(ctx, s(argv[1]), s(argv[2]), s(argv[3]), expires_in=ttl)
    return OK


@command("cas.st.validate", -3, "write", acl=_WACL, since=SINCE,
         summary="Validates and consumes a service ticket; the outcome as JSON.")
def st_validate(client: Client, argv: list[bytes]) -> bytes:
    ctx = context(client, argv, "cas")
    pgt = opt_text(options(argv, 3, frozenset((b"PGT_ID",))), b"PGT_ID")
    return orjson.dumps(cas.validate_st(ctx, s(argv[1]), s(argv[2]), pgt or None))


@command("cas.pgt.set", -5, _W, acl=_WACL, since=SINCE,
         summary="Stores a proxy-granting ticket of a live TGT.")
def pgt_set(client: Client, argv: list[bytes]) -> object:
    ctx = context(client, argv, "cas")
    opts = options(argv, 5, _EXPIRES)
    ttl = lifetime(ctx, opts.get(b"EXPIRES_IN"), "cas.pgt.set")
    cas.set_pgt(ctx, s(argv[1]), s(argv[2]), s(argv[3]), s(argv[4]), expires_in=ttl)
    return OK


@command("cas.pt.set", -4, _W, acl=_WACL, since=SINCE,
         summary="Stores a proxy ticket of a live PGT.")
def pt_set(client: Client, argv: list[bytes]) -> object:
    ctx = context(client, argv, "cas")
    opts = options(argv, 4, _EXPIRES)
    ttl = lifetime(ctx, opts.get(b"EXPIRES_IN"), "cas.pt.set")
    cas.set_pt(ctx, s(argv[1]), s(argv[2]), s(argv[3]), expires_in=ttl)
    return OK


@command("cas.pt.validate", 3, "write", acl=_WACL, since=SINCE,
         summary="Validates and consumes a proxy ticket; the outcome as JSON.")
def pt_validate(client: Client, argv: list[bytes]) -> bytes:
    return orjson.dumps(cas.validate_pt(context(client, argv, "cas"), s(argv[1]), s(argv[2])))
