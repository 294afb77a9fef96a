"""``tokenginx-admin``: manage the identity provider of a running server over its admin
HTTP API (``/api/v1/admin/...``).

::

    tokenginx-admin [--url URL] [--api-key KEY] users create NAME [--email E] [--phone P]
                                                       [--nickname N] [--password-stdin] [--disabled]
    tokenginx-admin users list [--json]
    tokenginx-admin users show NAME
    tokenginx-admin users disable|enable|delete NAME
    tokenginx-admin users reset-password NAME [--password-stdin]

``--url`` defaults to ``$TOKENGINX_URL`` or ``http://127.0.0.1:8080``; ``--api-key`` to
``$TOKENGINX_API_KEY`` (an entry of ``security.api_keys`` or the requirepass password).
Passwords are read from a prompt (twice, to confirm) or, with ``--password-stdin``,
from the first line of standard input — never from the command line, where ``ps``
would show them.

Exit status: 0 on success, 1 when the server refused the request, 2 when it cannot be
reached (or the command line is wrong).

Command groups: ``users`` is defined here; more are modules listed in
:data:`GROUP_MODULES`, each with ``add_parser(subparsers)`` that adds its sub-parsers
and sets ``func(api, args) -> int`` on them (``api`` is an :class:`AdminAPI`; raise
:class:`AdminError` for a refusal).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from importlib import import_module
from typing import Any
from urllib.parse import quote

DEFAULT_URL = "http://127.0.0.1:8080"

# Modules contributing more command groups (``users`` is here); a missing one is skipped.
GROUP_MODULES = ("tokenginx.cli.admin_clients",)


class AdminError(Exception):
    """The server refused a request (exit 1), or could not be reached (``exit_code`` 2)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class AdminAPI:
    """A small JSON client of the admin API (stdlib only: no extra dependency)."""

    def __init__(self, url: str, api_key: str | None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The ``data`` of the success envelope (or the message when there is none)."""
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        req = urllib.request.Request(self.url + path, payload, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise AdminError(_error_message(e.code, e.read())) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise AdminError(f"cannot reach {self.url}: {reason}", 2) from None
        try:
            doc = json.loads(raw)
        except ValueError:
            raise AdminError(f"unexpected answer from {self.url}{path}") from None
        return doc.get("data", doc.get("message")) if isinstance(doc, dict) else doc


def _error_message(status: int, raw: bytes) -> str:
    try:
        error = json.loads(raw)["error"]
        message = error["message"]
        details = error.get("details") or {}
        if details.get("field"):
            message += f" ({details['field']} {details.get('reason', '')})".rstrip()
    except (ValueError, KeyError, TypeError):
        message = raw.decode("utf-8", "replace").strip() or "no details"
    return f"HTTP {status}: {message}"


def read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if password.endswith("\r"):
            password = password[:-1]
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise AdminError("passwords do not match", 2)
    if not password:
        raise AdminError("empty password", 2)
    return password


def user_path(name: str, action: str = "") -> str:
    path = "/api/v1/admin/users/" + quote(name, safe="")
    return f"{path}/{action}" if action else path


# -- users ---------------------------------------------------------------------------------
def users_create(api: AdminAPI, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"username": args.name, "password": read_password(args)}
    for field in ("email", "phone", "nickname"):
        if getattr(args, field):
            body[field] = getattr(args, field)
    if args.disabled:
        body["disabled"] = True
    user = api.request("POST", "/api/v1/admin/users", body)
    print(f"created user {user['username']}")
    return 0


def users_list(api: AdminAPI, args: argparse.Namespace) -> int:
    users = api.request("GET", "/api/v1/admin/users")
    if args.json:
        print(json.dumps(users, indent=2))
        return 0
    rows = [("USERNAME", "STATUS", "EMAIL", "LAST LOGIN", "LAST IP")]
    for u in users:
        rows.append((u["username"], "enabled" if u["status"] else "disabled", u.get("email") or "-",
                     u.get("last_login_at") or "-", u.get("last_login_ip") or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def users_show(api: AdminAPI, args: argparse.Namespace) -> int:
    print(json.dumps(api.request("GET", user_path(args.name)), indent=2))
    return 0


def users_action(action: str, done: str) -> Any:
    def run(api: AdminAPI, args: argparse.Namespace) -> int:
        api.request("POST", user_path(args.name, action))
        print(f"{done} user {args.name}")
        return 0

    return run


def users_reset_password(api: AdminAPI, args: argparse.Namespace) -> int:
    api.request("POST", user_path(args.name, "password"), {"password": read_password(args)})
    print(f"password of {args.name} reset; its tokens and sessions were revoked")
    return 0


def users_delete(api: AdminAPI, args: argparse.Namespace) -> int:
    api.request("DELETE", user_path(args.name))
    print(f"deleted user {args.name}")
    return 0


def add_parser(subparsers: Any) -> None:
    """The ``users`` command group."""
    users = subparsers.add_parser("users", help="manage user accounts")
    sub = users.add_subparsers(dest="action", required=True, metavar="ACTION")

    def with_name(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("name", metavar="NAME")
        return p

    p = with_name("create", "create a user (password prompted, or --password-stdin)")
    p.add_argument("--email")
    p.add_argument("--phone")
    p.add_argument("--nickname")
    p.add_argument("--disabled", action="store_true", help="create it disabled")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=users_create)

    p = sub.add_parser("list", help="list users")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=users_list)

    with_name("show", "show one user as JSON").set_defaults(func=users_show)
    with_name("disable", "disable a user and revoke its tokens").set_defaults(
        func=users_action("disable", "disabled"))
    with_name("enable", "enable a user (and lift a lockout)").set_defaults(
        func=users_action("enable", "enabled"))
    p = with_name("reset-password", "set a new password and revoke the user's tokens")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=users_reset_password)
    with_name("delete", "delete a user and revoke its tokens").set_defaults(func=users_delete)


# -- entry point ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenginx-admin",
        description="Manage TokenginX identity-provider users (and clients) over the admin API.",
    )
    parser.add_argument("--url", default=os.environ.get("TOKENGINX_URL", DEFAULT_URL),
                        help="server HTTP URL (default $TOKENGINX_URL or %(default)s)")
    parser.add_argument("--api-key", default=os.environ.get("TOKENGINX_API_KEY"),
                        help="API key or requirepass password (default $TOKENGINX_API_KEY)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    subparsers = parser.add_subparsers(dest="group", required=True, metavar="GROUP")
    add_parser(subparsers)
    for name in GROUP_MODULES:
        try:
            module = import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        add = getattr(module, "add_parser", None)
        if add is not None:
            add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    api = AdminAPI(args.url, args.api_key, args.timeout)
    try:
        return args.func(api, args)
    except AdminError as e:
        print(f"tokenginx-admin: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
