"""The browser SSO session: one login shared by every OAuth client and the CAS server.

The cookie holds ``{sid}.{secret}``. ``sid`` is the public session id (the OIDC ``sid``
claim, the back-channel logout key); only a SHA-256 of ``secret`` is stored, in
``idp:session:{sid}`` with TTL ``idp.session_ttl``, so neither a keyspace dump nor an
ID token is enough to ride the session.

CSRF: every HTML form carries a token that must equal the ``tokenginx_csrf`` cookie
(double submit; the pages set that cookie whenever they render a form), and a POST whose
``Origin`` names another site is refused outright.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tokenginx.sso.context import parse as parse_record

if TYPE_CHECKING:
    from tokenginx.idp import IdP

audit = logging.getLogger("tokenginx.security")

SESSION_PREFIX = "idp:session:"
CSRF_COOKIE = "tokenginx_csrf"
_TOKEN_BYTES = 32
_MAX_COOKIE = 200  # anything longer is not ours


@dataclass(frozen=True)
class Login:
    """A signed-in browser: who, since when (``auth_time``, Unix s), under which sid."""

    sid: str
    username: str
    auth_time: int
    # Only on the Login sign_in() returns: what attach() puts in the cookie.
    secret: str = field(default="", repr=False, compare=False)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


class BrowserSessions:
    """``idp.sessions``: read, create and end browser logins."""

    COOKIE = "tokenginx_sso"

    def __init__(self, idp: IdP) -> None:
        self.idp = idp

    @property
    def ttl(self) -> int:
        return self.idp.config.idp.session_ttl

    @property
    def secure(self) -> bool:
        return self.idp.issuer.startswith("https:")

    # -- the session record ------------------------------------------------------------
    def _load(self, sid: str) -> dict[str, Any] | None:
        return parse_record(self.idp.calls("GET", SESSION_PREFIX + sid))

    def record(self, sid: str) -> dict[str, Any] | None:
        """The stored session (``sid``, ``username``, ``auth_time``, ``clients``…)."""
        return self._load(sid)

    def _save(self, sid: str, record: dict[str, Any], *, keep_ttl: bool) -> None:
        value = orjson.dumps(record)
        if keep_ttl:
            self.idp.calls("SET", SESSION_PREFIX + sid, value, "XX", "KEEPTTL")
        else:
            self.idp.calls("SET", SESSION_PREFIX + sid, value, "EX", self.ttl)

    def add_client(self, sid: str, client_id: str) -> None:
        """Remember that ``client_id`` got a code under this session (back-channel logout
        goes to exactly these clients)."""
        record = self._load(sid)
        if record is None:
            return
        clients = [c for c in record.get("clients") or () if type(c) is str]
        if client_id not in clients:
            record["clients"] = [*clients, client_id]
            self._save(sid, record, keep_ttl=True)

    def delete(self, sid: str) -> dict[str, Any] | None:
        """Remove the session; returns what it held (None if it was already gone)."""
        record = self._load(sid)
        self.idp.calls("DEL", SESSION_PREFIX + sid)
        return record

    # -- the cookie ----------------------------------------------------------------------
    def current(self, request: Request) -> Login | None:
        """The live login of this browser, or None (no cookie, forged, expired, ended)."""
        raw = request.cookies.get(self.COOKIE, "")
        if not raw or len(raw) > _MAX_COOKIE or raw.count(".") != 1:
            return None
        sid, secret = raw.split(".")
        if not sid or not secret:
            return None
        record = self._load(sid)
        if record is None:
            return None
        stored = record.get("secret_sha256")
        if type(stored) is not str or not hmac.compare_digest(stored, _digest(secret)):
            return None
        username, auth_time = record.get("username"), record.get("auth_time")
        if type(username) is not str or type(auth_time) is not int:
            return None
        account = self.idp.accounts.get(username)
        if account is None or account.disabled:
            return None  # deleted or disabled since: the session dies with the account
        since_ms = record.get("since_ms")
        if type(since_ms) is not int or since_ms < account.credentials_changed_ms:
            return None  # signed in before the password was reset
        return Login(sid, username, auth_time)

    async def sign_in(self, request: Request, username: str, password: str) -> Login:
        """Check the password (raises ``accounts.LoginFailed``) and sign the browser in; the
        caller sets the cookie with :meth:`attach`.

        The cookie secret is new every time (no session fixation). Re-authenticating
        the same user (``prompt=login``, ``max_age``) keeps the sid, so what was issued
        under the session stays tied to it; another user gets a new sid (the caller
        ends the old session). The account's own ``username`` is used, so case
        variants of a name map to one subject.
        """
        ip = client_ip(request)
        # Failures are counted and logged by accounts (tokenginx.security).
        account = await self.idp.accounts.authenticate(username, password, ip)
        name = getattr(account, "username", username)
        previous = self.current(request)
        record = self._load(previous.sid) if previous and previous.username == name else None
        sid = previous.sid if previous and record is not None else secrets.token_urlsafe(18)
        secret = secrets.token_urlsafe(_TOKEN_BYTES)
        login = Login(sid, name, int(time.time()), secret)
        clients = (record or {}).get("clients") or []
        self._save(sid, {
            "sid": sid,
            "username": name,
            "auth_time": login.auth_time,
            "since_ms": int(time.time() * 1000),
            "secret_sha256": _digest(secret),
            "ip": ip,
            "clients": clients,
        }, keep_ttl=False)
        audit.info("idp login user=%r sid=%s ip=%s reauth=%s", name, sid, ip, record is not None)
        return login

    def attach(self, response: Response, login: Login) -> None:
        """Set the session cookie of a login :meth:`sign_in` just made."""
        if not login.secret:
            raise ValueError("attach() needs the Login returned by sign_in()")
        response.set_cookie(
            self.COOKIE, f"{login.sid}.{login.secret}", max_age=self.ttl, path="/",
            secure=self.secure, httponly=True, samesite="lax",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(self.COOKIE, path="/", secure=self.secure, httponly=True,
                               samesite="lax")

    # -- CSRF ------------------------------------------------------------------------------
    def csrf_token(self, request: Request) -> str:
        """The token to put in a form: this browser's CSRF cookie, or a new one (the page
        that renders the form sets it: see ``idp_pages``)."""
        token = request.cookies.get(CSRF_COOKIE, "")
        if 32 <= len(token) <= 64 and token.isascii() and token.replace("-", "").replace("_", "").isalnum():
            return token
        return secrets.token_urlsafe(_TOKEN_BYTES)

    def check_csrf(self, request: Request, token: str | None) -> bool:
        """True when ``token`` matches the cookie and the POST comes from our own origin."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not token or not cookie or not hmac.compare_digest(cookie.encode(), token.encode()):
            audit.warning("idp csrf check failed path=%s ip=%s", request.url.path, client_ip(request))
            return False
        origin = request.headers.get("origin")
        if origin and origin != "null" and not self._same_origin(request, origin):
            audit.warning("idp cross-origin post origin=%r ip=%s", origin[:200], client_ip(request))
            return False
        return True

    def _same_origin(self, request: Request, origin: str) -> bool:
        own = {_origin(self.idp.issuer)}
        host = request.headers.get("host")
        if host:
            own.add(f"{request.url.scheme}://{host}".lower())
        return origin.lower() in own


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
