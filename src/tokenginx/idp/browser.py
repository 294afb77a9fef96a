"""The browser SSO session: one login shared by every OAuth client and the CAS server.

The cookie holds ``{sid}.{secret}``. ``sid`` is the public session id (the OIDC ``sid``
claim, the back-channel logout key); only a SHA-256 of ``secret`` is stored, in
``idp:session:{sid}`` with TTL ``idp.session_ttl``, so neither a keyspace dump nor an
ID token is enough to ride the session.

CSRF (signed double submit): the ``tokenginx_csrf`` cookie holds a random nonce, and
every HTML form carries ``{issued}.{HMAC-SHA256(server secret, nonce, issued)}``. A POST
passes only when its field is that MAC of its own cookie's nonce, recent
(:data:`CSRF_MAX_AGE_S`); so someone who can plant a cookie in the victim's browser
still cannot make up a field that matches it, as with a plain double submit. The
server secret lives in the keyspace (``idp:csrf:secret``, created once, shared by every
node on the same store). A POST whose ``Origin`` names another site is refused outright.
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
log = logging.getLogger("tokenginx.idp")

SESSION_PREFIX = "idp:session:"
CSRF_COOKIE = "tokenginx_csrf"
CSRF_SECRET_KEY = "idp:csrf:secret"
CSRF_MAX_AGE_S = 12 * 3600  # how long a rendered form stays usable
_TOKEN_BYTES = 32
_MAX_COOKIE = 200  # anything longer is not ours


@dataclass(frozen=True)
class Csrf:
    """What a page with a form needs: the cookie to set and the form field's value."""

    cookie: str
    field: str


def _is_nonce(value: str) -> bool:
    return (
        32 <= len(value) <= 64
        and value.isascii()
        and value.replace("-", "").replace("_", "").isalnum()
    )


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
        self._secret: bytes | None = None

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
    def _csrf_secret(self) -> bytes:
        secret = self._secret
        if secret is None:
            stored = self.idp.calls("GET", CSRF_SECRET_KEY)
            if not stored:
                # SET NX: when several nodes race on a fresh store, all keep the winner's.
                self.idp.calls("SET", CSRF_SECRET_KEY, secrets.token_urlsafe(_TOKEN_BYTES), "NX")
                stored = self.idp.calls("GET", CSRF_SECRET_KEY)
            if not isinstance(stored, bytes) or len(stored) < 32:
                raise RuntimeError("the CSRF secret could not be read from the store")
            secret = self._secret = stored
        return secret

    def _csrf_mac(self, nonce: str, issued: int) -> str:
        mac = hmac.new(self._csrf_secret(), f"csrf|{nonce}|{issued}".encode(), hashlib.sha256)
        return mac.hexdigest()

    def csrf_token(self, request: Request) -> Csrf:
        """The cookie and form value for a page with a form: this browser's nonce (or a
        new one) and a fresh MAC of it. The page sets the cookie (see ``idp_pages``)."""
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if not _is_nonce(nonce):
            nonce = secrets.token_urlsafe(_TOKEN_BYTES)
        issued = int(time.time())
        return Csrf(nonce, f"{issued}.{self._csrf_mac(nonce, issued)}")

    def check_csrf(self, request: Request, token: str | None) -> bool:
        """True when ``token`` is a recent MAC of this browser's cookie and the POST
        comes from our own origin. Any doubt (missing, malformed, old, an error) denies."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        try:
            valid = bool(token) and _is_nonce(cookie) and self._valid_csrf(cookie, token or "")
        except Exception:
            log.exception("csrf check failed")
            valid = False
        if not valid:
            audit.warning("idp csrf check failed path=%s ip=%s", request.url.path, client_ip(request))
            return False
        origin = request.headers.get("origin")
        if origin and origin != "null" and not self._same_origin(request, origin):
            audit.warning("idp cross-origin post origin=%r ip=%s", origin[:200], client_ip(request))
            return False
        return True

    def _valid_csrf(self, nonce: str, token: str) -> bool:
        issued_text, sep, mac = token.partition(".")
        if not sep or not issued_text.isdigit() or len(issued_text) > 12 or len(mac) != 64:
            return False
        issued = int(issued_text)
        if not 0 <= time.time() - issued <= CSRF_MAX_AGE_S:
            return False
        return hmac.compare_digest(mac.encode(), self._csrf_mac(nonce, issued).encode())

    def _same_origin(self, request: Request, origin: str) -> bool:
        own = {_origin(self.idp.issuer)}
        host = request.headers.get("host")
        if host:
            own.add(f"{request.url.scheme}://{host}".lower())
        return origin.lower() in own


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
