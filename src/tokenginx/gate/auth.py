"""Credential checks shared by every door.

RESP's ``AUTH``/``HELLO AUTH``, HTTP's ``Authorization`` header and gRPC's
``authorization`` metadata all end here, so a password or API key means the same
thing whichever door presents it. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import TYPE_CHECKING

from tokenginx.errors import WrongPassError

if TYPE_CHECKING:
    from tokenginx.client import Client
    from tokenginx.config import Config


def auth_required(config: Config) -> bool:
    """Authentication is on when a password or any API key is configured."""
    return bool(config.server.requirepass or config.security.api_keys)


def secret_matches(config: Config, secret: bytes) -> bool:
    """True if ``secret`` is the ``requirepass`` password or one of the API keys.

    Every candidate is compared (no early exit), so timing does not tell which one
    matched or how many there are to try.
    """
    ok = False
    candidates = [config.server.requirepass, *config.security.api_keys]
    for candidate in candidates:
        if candidate and hmac.compare_digest(secret, candidate.encode()):
            ok = True
    return ok


def check_password(client: Client, username: bytes, password: bytes) -> None:
    """Authenticate ``client`` as ``username`` or raise ``WrongPassError``.

    Only the ``default`` user exists until ACLs; it accepts the password and API keys.
    """
    config = client.state.config
    if username != b"default":
        raise WrongPassError()
    if auth_required(config) and not secret_matches(config, password):
        raise WrongPassError()
    client.authenticated = True
    client.user = "default"
    client.update_restricted()


def authenticate_header(client: Client, authorization: str | None, x_api_key: str | None = None) -> bool:
    """Authenticate from an HTTP ``Authorization`` header (or gRPC metadata).

    Accepts ``Bearer <api-key or password>``, ``Basic base64(user:password)`` and the
    ``X-API-Key`` header. Returns whether the client is authenticated afterwards;
    with no auth configured every client already is.
    """
    if client.authenticated:
        return True
    user, secret = b"default", None
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and value:
            secret = value.encode()
        elif scheme == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return False
            name, sep, pw = decoded.partition(b":")
            if not sep:
                return False
            user, secret = name or b"default", pw
    elif x_api_key:
        secret = x_api_key.encode()
    if secret is None:
        return False
    try:
        check_password(client, user, secret)
    except WrongPassError:
        return False
    return True
