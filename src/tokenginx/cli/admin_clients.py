"""``tokenginx-admin clients …`` and ``tokenginx-admin keys …``: OAuth clients and
signing keys of the built-in authorization server, over ``/api/v1/admin/oauth``.

::

    tokenginx-admin clients create [--id ID] [--name N] [--public] [--auth-method M]
                                   [--redirect-uri URI]... [--grant G]... [--scope S]...
                                   [--backchannel-logout-uri URI] [--post-logout-redirect-uri URI]...
                                   [--id-token-alg RS256|ES256]
                                   [--resource-server] [--json]
    tokenginx-admin clients list [--json]
    tokenginx-admin clients show ID
    tokenginx-admin clients delete ID
    tokenginx-admin keys list [--json]
    tokenginx-admin keys rotate

``clients create`` prints the generated secret once; the server keeps only its hash.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from tokenginx.cli.admin_main import AdminAPI

CLIENTS = "/api/v1/admin/oauth/clients"
KEYS = "/api/v1/admin/oauth/keys"


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def clients_create(api: AdminAPI, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.id:
        body["client_id"] = args.id
    if args.name:
        body["name"] = args.name
    method = "none" if args.public else args.auth_method
    if method:
        body["token_endpoint_auth_method"] = method
    for field, value in (("redirect_uris", args.redirect_uri), ("grant_types", args.grant),
                         ("scopes", args.scope)):
        if value:
            body[field] = [v for item in value for v in item.split()]
    if args.backchannel_logout_uri:
        body["backchannel_logout_uri"] = args.backchannel_logout_uri
    if args.post_logout_redirect_uri:
        body["post_logout_redirect_uris"] = args.post_logout_redirect_uri
    if args.id_token_alg:
        body["id_token_signed_response_alg"] = args.id_token_alg
    if args.resource_server:
        body["resource_server"] = True
    client = api.request("POST", CLIENTS, body)
    if args.json:
        print(json.dumps(client, indent=2))
        return 0
    print(f"client_id:     {client['client_id']}")
    if client.get("client_secret"):
        print(f"client_secret: {client['client_secret']}")
        print("(store the secret now: it is not shown again)")
    else:
        print("public client: no secret (PKCE required)")
    return 0


def clients_list(api: AdminAPI, args: argparse.Namespace) -> int:
    clients = api.request("GET", CLIENTS)["clients"]
    if args.json:
        print(json.dumps(clients, indent=2))
        return 0
    rows = [("CLIENT_ID", "AUTH", "GRANTS", "SOURCE", "REDIRECT URIS")]
    for c in clients:
        rows.append((c["client_id"], c["token_endpoint_auth_method"], ",".join(c["grant_types"]),
                     c["source"], " ".join(c["redirect_uris"]) or "-"))
    _table(rows)
    return 0


def clients_show(api: AdminAPI, args: argparse.Namespace) -> int:
    print(json.dumps(api.request("GET", f"{CLIENTS}/{quote(args.id, safe='')}"), indent=2))
    return 0


def clients_delete(api: AdminAPI, args: argparse.Namespace) -> int:
    api.request("DELETE", f"{CLIENTS}/{quote(args.id, safe='')}")
    print(f"deleted client {args.id}")
    return 0


def keys_list(api: AdminAPI, args: argparse.Namespace) -> int:
    keys = api.request("GET", KEYS)["keys"]
    if args.json:
        print(json.dumps(keys, indent=2))
        return 0
    rows = [("KID", "ALG", "CREATED", "RETIRED")]
    rows += [(k["kid"], k["alg"], k.get("created_at") or "-", k.get("retired_at") or "-") for k in keys]
    _table(rows)
    return 0


def keys_rotate(api: AdminAPI, args: argparse.Namespace) -> int:
    data = api.request("POST", f"{KEYS}/rotate")
    print("new signing keys: " + ", ".join(data["new"]))
    return 0


def add_parser(subparsers: Any) -> None:
    """The ``clients`` and ``keys`` command groups."""
    clients = subparsers.add_parser("clients", help="manage OAuth/OIDC clients")
    sub = clients.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = sub.add_parser("create", help="register a client (prints its secret once)")
    p.add_argument("--id", help="client_id (default: generated)")
    p.add_argument("--name", help="display name (shown on the consent page)")
    p.add_argument("--public", action="store_true", help="a public client: no secret, PKCE required")
    p.add_argument("--auth-method", choices=("client_secret_basic", "client_secret_post"),
                   help="token endpoint authentication (default client_secret_basic)")
    p.add_argument("--redirect-uri", action="append", metavar="URI", help="exact redirect URI (repeatable)")
    p.add_argument("--grant", action="append", metavar="GRANT",
                   help="authorization_code, refresh_token or client_credentials (repeatable)")
    p.add_argument("--scope", action="append", metavar="SCOPE", help="allowed scope (repeatable)")
    p.add_argument("--backchannel-logout-uri", metavar="URI")
    p.add_argument("--post-logout-redirect-uri", metavar="URI", action="append",
                   help="where logout may return the browser (repeatable; default: the redirect URIs)")
    p.add_argument("--id-token-alg", choices=("RS256", "ES256"))
    p.add_argument("--resource-server", action="store_true",
                   help="may introspect tokens issued to any client")
    p.add_argument("--json", action="store_true", help="print the created client as JSON")
    p.set_defaults(func=clients_create)

    p = sub.add_parser("list", help="list clients (config and run-time)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=clients_list)

    for name, func, help in (("show", clients_show, "show one client as JSON"),
                             ("delete", clients_delete, "delete a run-time client")):
        p = sub.add_parser(name, help=help)
        p.add_argument("id", metavar="ID")
        p.set_defaults(func=func)

    keys = subparsers.add_parser("keys", help="ID-token signing keys")
    ksub = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = ksub.add_parser("list", help="list signing keys (no key material)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=keys_list)
    ksub.add_parser("rotate", help="rotate now (old public keys stay in the JWKS until "
                    "their tokens expire)").set_defaults(func=keys_rotate)
