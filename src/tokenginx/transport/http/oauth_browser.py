"""The browser half of the OAuth 2.0 / OIDC server: authorization, sign-in, consent,
sign-out.

``GET|POST /oauth/authorize``  RFC 6749 §4.1.1, OIDC Core §3.1.2 (contract §5.3)
``POST /oauth/login``           the sign-in form (``GET`` shows it)
``POST /oauth/consent``         the Allow/Deny form
``GET|POST /oauth/logout``      OIDC RP-Initiated Logout 1.0 (the end_session_endpoint)

The authorization request travels through the forms as hidden fields and is checked
again, in full, on every step: a form is never trusted to carry a request that was
valid once. Errors follow RFC 6749 §4.1.2.1: an unknown client or a redirect URI that
is not registered byte for byte is *shown*, never redirected to; every other error is
redirected to the client with ``error``, ``error_description``, ``state`` and ``iss``
(RFC 9207).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from tokenginx.idp.browser import Login, client_ip
from tokenginx.idp.tokens import lifetimes
from tokenginx.transport.http import idp_pages
from tokenginx.transport.http.forms import FormError, read_form

if TYPE_CHECKING:
    from tokenginx.idp import IdP
    from tokenginx.idp.clients import OAuthClient
    from tokenginx.transport.http.metrics import Metrics

log = logging.getLogger("tokenginx.http")
audit = logging.getLogger("tokenginx.security")

AUTHORIZE = "/oauth/authorize"
LOGIN = "/oauth/login"
CONSENT = "/oauth/consent"
LOGOUT = "/oauth/logout"

# The authorization request parameters carried from page to page.
AUTH_PARAMS = (
    "response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
    "code_challenge", "code_challenge_method", "prompt", "max_age", "login_hint",
)
LOGOUT_PARAMS = ("id_token_hint", "post_logout_redirect_uri", "state", "client_id")
CONSENT_PREFIX = "idp:consent:"
MAX_CODE_TTL = 600
CONSENT_TTL = 365 * 86400  # a remembered consent is forgotten after a year unused
_MAX_PARAM = 2048
# RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is 43 characters.
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_PLAIN_CHALLENGE = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_PROMPTS = frozenset(("none", "login", "consent", "select_account"))

BAD_FORM = idp_pages.BAD_FORM


class ShowError(Exception):
    """An error we must not redirect (unknown client, unregistered redirect URI)."""

    def __init__(self, title: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.title, self.message, self.status = title, message, status


class RedirectError(Exception):
    """An RFC 6749 §4.1.2.1 error, sent back to the client's redirect URI."""

    def __init__(self, error: str, description: str, redirect_uri: str = "",
                 state: str | None = None) -> None:
        super().__init__(description)
        self.error, self.description = error, description
        self.redirect_uri, self.state = redirect_uri, state


@dataclass(frozen=True)
class AuthRequest:
    """A checked authorization request."""

    client: OAuthClient
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    prompt: frozenset[str]
    max_age: int | None
    params: dict[str, str]  # what the forms carry on

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)

    def fail(self, error: str, description: str) -> RedirectError:
        return RedirectError(error, description, self.redirect_uri, self.state)


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    """``uri`` with ``params`` added to its query (RFC 6749 §3.1.2: keep what is there)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _single(source: QueryParams | FormData, name: str) -> str | None:
    """The value of a parameter sent at most once; RFC 6749 §3.1: a repeated
    parameter is an invalid request."""
    values = source.getlist(name)
    if len(values) > 1:
        raise RedirectError("invalid_request", f"{name} is repeated")
    if not values:
        return None
    value = values[0]
    if not isinstance(value, str):
        raise RedirectError("invalid_request", f"{name} must be text")
    if len(value) > _MAX_PARAM:
        raise RedirectError("invalid_request", f"{name} is too long")
    return value or None


class BrowserFlow:
    def __init__(self, idp: IdP) -> None:
        self.idp = idp

    @property
    def sessions(self) -> Any:
        return self.idp.sessions

    # -- the authorization request ------------------------------------------------------
    def check(self, source: QueryParams | FormData) -> AuthRequest:
        """Validate an authorization request (contract §5.3, RFC 6749 §4.1.1, RFC 7636)."""
        try:
            client_id = _single(source, "client_id")
            redirect_uri = _single(source, "redirect_uri")
        except RedirectError as e:
            raise ShowError("Invalid request", e.description) from None
        client = self.idp.clients.get(client_id) if client_id else None
        if client is None:
            raise ShowError("Invalid client", "The application that sent you here is unknown.")
        if not redirect_uri or not client.redirect_uri_allowed(redirect_uri):
            audit.warning("authorize refused: unregistered redirect_uri client=%s uri=%r",
                          client.client_id, (redirect_uri or "")[:200])
            raise ShowError("Invalid redirect URI",
                            "The address the application wants you sent back to is not "
                            "registered for it.")
        params = {"client_id": client.client_id, "redirect_uri": redirect_uri}
        state: str | None = None
        try:
            state = _single(source, "state")
            for name in AUTH_PARAMS:
                if name in params:
                    continue
                value = _single(source, name)
                if value is not None:
                    params[name] = value
            return self._check_rest(client, redirect_uri, params)
        except RedirectError as e:
            e.redirect_uri, e.state = redirect_uri, state
            raise

    def _check_rest(self, client: OAuthClient, redirect_uri: str,
                    params: dict[str, str]) -> AuthRequest:
        response_type = params.get("response_type")
        if response_type is None:
            raise RedirectError("invalid_request", "response_type is required")
        if response_type != "code":
            raise RedirectError("unsupported_response_type", "only response_type=code is supported")
        if not client.allows_grant("authorization_code"):
            raise RedirectError("unauthorized_client",
                                "this client may not use the authorization code grant")
        requested = params.get("scope")
        # RFC 6749 §3.3: without a scope, the client's registered scopes are the default.
        scopes = tuple(dict.fromkeys(requested.split())) if requested else client.scopes
        if not client.allows_scopes(scopes):
            raise RedirectError("invalid_scope", "a requested scope is not allowed for this client")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if challenge is None:
            if method is not None:
                raise RedirectError("invalid_request", "code_challenge_method without code_challenge")
            if client.public:
                raise RedirectError("invalid_request", "code_challenge (PKCE) is required")
        else:
            method = method or "plain"  # RFC 7636 §4.3
            plain_ok = self.idp.config.oauth.server.allow_plain_pkce
            if method == "S256":
                if not _S256_CHALLENGE.fullmatch(challenge):
                    raise RedirectError("invalid_request", "code_challenge is not a S256 challenge")
            elif method == "plain" and plain_ok:
                if not _PLAIN_CHALLENGE.fullmatch(challenge):
                    raise RedirectError("invalid_request", "code_challenge is malformed")
            else:
                raise RedirectError("invalid_request", "code_challenge_method must be S256")
        prompt = frozenset((params.get("prompt") or "").split()) & _PROMPTS
        if "none" in prompt and len(prompt) > 1:
            raise RedirectError("invalid_request", "prompt=none cannot be combined")
        max_age: int | None = None
        if "max_age" in params:
            raw = params["max_age"]
            if not raw.isdigit() or len(raw) > 10:
                raise RedirectError("invalid_request", "max_age must be a number of seconds")
            max_age = int(raw)
        return AuthRequest(client, redirect_uri, scopes, params.get("state"),
                           params.get("nonce"), challenge, method, prompt, max_age, params)

    # -- responses ---------------------------------------------------------------------------
    def redirect(self, redirect_uri: str, params: Mapping[str, str | None],
                 status: int = 302) -> Response:
        target = with_query(redirect_uri, {**params, "iss": self.idp.issuer})
        return RedirectResponse(target, status_code=status, headers={"Cache-Control": "no-store"})

    def error_redirect(self, e: RedirectError, status: int = 302) -> Response:
        return self.redirect(e.redirect_uri, {"error": e.error, "error_description": e.description,
                                              "state": e.state}, status)

    def login_form(self, request: Request, req: AuthRequest | None, *, error: str | None = None,
                   username: str = "", status: int = 200) -> Response:
        hidden = dict(req.params) if req is not None else {}
        if not username and req is not None:
            username = req.params.get("login_hint", "")
        return idp_pages.login_page(action=LOGIN, hidden=hidden,
                                    csrf=self.sessions.csrf_token(request), error=error,
                                    username=username, status=status,
                                    secure=self.sessions.secure,
                                    client_name=req.client.name if req is not None else None)

    # -- consent -----------------------------------------------------------------------------
    def consented(self, username: str, req: AuthRequest) -> bool:
        raw = self.idp.calls("HGET", CONSENT_PREFIX + username, req.client.client_id)
        granted = set(raw.decode().split()) if type(raw) is bytes else set()
        return set(req.scopes) <= granted

    def remember_consent(self, username: str, req: AuthRequest) -> None:
        key = CONSENT_PREFIX + username
        raw = self.idp.calls("HGET", key, req.client.client_id)
        granted = raw.decode().split() if type(raw) is bytes else []
        scopes = " ".join(dict.fromkeys([*granted, *req.scopes]))
        self.idp.calls("HSET", key, req.client.client_id, scopes)
        self.idp.calls("EXPIRE", key, CONSENT_TTL)

    # -- the code ----------------------------------------------------------------------------
    def issue_code(self, req: AuthRequest, login: Login, status: int = 302) -> Response:
        """Store the code (contract §5.3 steps 6-8) and send the browser back with it."""
        code = secrets.token_urlsafe(32)
        argv: list[str | bytes | int] = [
            "OAUTH.CODE.SET", code, req.client.client_id, req.redirect_uri, login.username,
            req.scope,
        ]
        if req.code_challenge:
            argv += ["CODE_CHALLENGE", req.code_challenge,
                     "CODE_CHALLENGE_METHOD", req.code_challenge_method or "S256"]
        if req.nonce:
            argv += ["NONCE", req.nonce]
        argv += ["DATA", orjson.dumps({"auth_time": login.auth_time, "sid": login.sid})]
        # RFC 6749 §4.1.2: short-lived, at most 10 minutes whatever the configuration says.
        argv += ["EXPIRES_IN", min(lifetimes(self.idp.config).code, MAX_CODE_TTL)]
        self.idp.calls(*argv)
        self.sessions.add_client(login.sid, req.client.client_id)
        audit.info("authorization code issued user=%r client=%s scope=%r sid=%s",
                   login.username, req.client.client_id, req.scope, login.sid)
        return self.redirect(req.redirect_uri, {"code": code, "state": req.state}, status)

    def proceed(self, request: Request, req: AuthRequest, login: Login,
                status: int = 302) -> Response:
        """A signed-in user: consent (asked, or remembered), then the code."""
        if "consent" in req.prompt or not self.consented(login.username, req):
            if "none" in req.prompt:
                raise req.fail("consent_required", "the user has not consented")
            return idp_pages.consent_page(
                action=CONSENT, hidden=dict(req.params), csrf=self.sessions.csrf_token(request),
                client_name=req.client.name, scopes=req.scopes, username=login.username,
                secure=self.sessions.secure,
            )
        return self.issue_code(req, login, status)

    # -- endpoints ---------------------------------------------------------------------------
    async def authorize(self, request: Request) -> Response:
        source = request.query_params if request.method == "GET" else await read_form(request)
        req = self.check(source)
        login = self.sessions.current(request)
        stale = (login is not None and req.max_age is not None
                 and time.time() - login.auth_time > req.max_age)
        if login is None or "login" in req.prompt or stale:
            if "none" in req.prompt:
                raise req.fail("login_required", "the user is not signed in")
            return self.login_form(request, req)
        return self.proceed(request, req, login)

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            req = self.check(request.query_params) if "client_id" in request.query_params else None
            return self.login_form(request, req)
        form = await read_form(request)
        if not self.sessions.check_csrf(request, _text(form, "csrf")):
            return idp_pages.error_page("Invalid form", BAD_FORM, 400)
        req = self.check(form) if form.get("client_id") else None
        previous = self.sessions.current(request)
        login = await idp_pages.sign_in_from_form(
            self.sessions, request, form,
            lambda error, username, status: self.login_form(request, req, error=error,
                                                            username=username, status=status))
        if not isinstance(login, Login):
            return login
        if previous is not None and previous.sid != login.sid:
            await self.idp.logout.end(previous.sid)  # one browser, one login
        if req is None:
            response: Response = idp_pages.info_page(
                "Signed in", f"You are signed in as {login.username}.")
        else:
            response = self.proceed(request, req, login, status=303)
        self.sessions.attach(response, login)
        return response

    async def consent(self, request: Request) -> Response:
        form = await read_form(request)
        if not self.sessions.check_csrf(request, _text(form, "csrf")):
            return idp_pages.error_page("Invalid form", BAD_FORM, 400)
        req = self.check(form)
        login = self.sessions.current(request)
        if login is None:  # the session ended while the page was open
            return self.login_form(request, req, error="Your session has ended. Sign in again.")
        if _text(form, "decision") != "allow":
            audit.info("consent denied user=%r client=%s", login.username, req.client.client_id)
            raise req.fail("access_denied", "the user denied the request")
        self.remember_consent(login.username, req)
        audit.info("consent granted user=%r client=%s scope=%r", login.username,
                   req.client.client_id, req.scope)
        return self.issue_code(req, login, status=303)

    async def logout(self, request: Request) -> Response:
        """OIDC RP-Initiated Logout 1.0 §2-3."""
        is_post = request.method == "POST"
        source: QueryParams | FormData = await read_form(request) if is_post else request.query_params
        try:
            params = {n: v for n in LOGOUT_PARAMS if (v := _single(source, n)) is not None}
        except RedirectError as e:
            return idp_pages.error_page("Invalid sign-out request", e.description)
        hint: dict[str, Any] | None = None
        if "id_token_hint" in params:
            try:
                hint = self.idp.keys.verify(params["id_token_hint"])
            except ValueError:
                hint = None
            # §2: the OP need not accept an expired hint's exp, but the issuer must be us.
            if hint is None or hint.get("iss") != self.idp.issuer:
                return idp_pages.error_page("Invalid sign-out request",
                                            "The sign-out request carries an invalid ID token.")
        client_id = params.get("client_id")
        if hint is not None:
            aud = hint.get("aud")
            hinted = aud if isinstance(aud, str) else hint.get("azp") or (aud or [None])[0]
            if client_id and client_id != hinted:
                return idp_pages.error_page("Invalid sign-out request",
                                            "client_id does not match the ID token.")
            client_id = hinted
        back_to = params.get("post_logout_redirect_uri")
        if back_to is not None:
            client = self.idp.clients.get(client_id) if client_id else None
            if client is None or not client.post_logout_redirect_allowed(back_to):
                return idp_pages.error_page(
                    "Invalid sign-out request",
                    "The address to return to after signing out is not registered.")

        login = self.sessions.current(request)
        if login is not None:
            vouched = hint is not None and hint.get("sub") == login.username and (
                hint.get("sid") in (None, login.sid))
            confirmed = False
            if is_post:
                if not self.sessions.check_csrf(request, _text(source, "csrf")):
                    return idp_pages.error_page("Invalid form", BAD_FORM, 400)
                if _text(source, "decision") == "stay":
                    return idp_pages.info_page("Still signed in",
                                               f"You are still signed in as {login.username}.")
                confirmed = _text(source, "decision") == "logout"
            if not (vouched or confirmed):
                # §6: a bare GET could be a cross-site request; the user confirms.
                return idp_pages.logout_confirm_page(
                    action=LOGOUT, hidden=params, csrf=self.sessions.csrf_token(request),
                    username=login.username, secure=self.sessions.secure)
            await self.idp.logout.end(login.sid)
        elif hint is not None and isinstance(hint.get("sid"), str):
            # No cookie here (another browser profile, cleared cookies): the RP still
            # wants the session its ID token names ended.
            record = self.sessions.record(hint["sid"])
            if record is not None and record.get("username") == hint.get("sub"):
                await self.idp.logout.end(hint["sid"])
            elif record is None and isinstance(hint.get("sub"), str):
                # The session already expired; what was issued under it may not have.
                self.idp.logout.revoke_tokens(hint["sid"], hint["sub"])
        audit.info("rp-initiated logout client=%s ip=%s", client_id, client_ip(request))
        if back_to is not None:
            response = RedirectResponse(
                with_query(back_to, {"state": params.get("state")}),
                status_code=303 if is_post else 302, headers={"Cache-Control": "no-store"})
        else:
            response = idp_pages.logged_out_page()
        self.sessions.clear(response)
        return response


def _text(form: FormData | QueryParams, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


Handler = Callable[[Request], Awaitable[Response]]


def _endpoint(flow: BrowserFlow, handler: Handler, path: str, metrics: Metrics) -> Handler:
    """Errors as the protocol wants them, metrics, and never a bare 500."""

    async def endpoint(request: Request) -> Response:
        t0 = time.perf_counter()
        try:
            response = await handler(request)
        except ShowError as e:
            response = idp_pages.error_page(e.title, e.message, e.status)
        except FormError as e:
            response = idp_pages.error_page("Invalid form", e.message, e.status)
        except RedirectError as e:
            response = flow.error_redirect(e, 303 if request.method == "POST" else 302)
        except Exception:
            log.exception("%s %s failed", request.method, path)
            response = idp_pages.error_page(
                "Something went wrong", "The server could not complete this request. "
                "Try again in a moment.", 500)
        metrics.observe_http(request.method, path, response.status_code, time.perf_counter() - t0)
        return response

    return endpoint


def routes(idp: IdP, metrics: Metrics) -> list[BaseRoute]:
    if not idp.config.oauth.server.enabled:
        return []
    flow = BrowserFlow(idp)
    table: list[tuple[str, Handler, list[str]]] = [
        (AUTHORIZE, flow.authorize, ["GET", "POST"]),
        (LOGIN, flow.login, ["GET", "POST"]),
        (CONSENT, flow.consent, ["POST"]),
        (LOGOUT, flow.logout, ["GET", "POST"]),
    ]
    return [Route(path, _endpoint(flow, handler, path, metrics), methods=methods)
            for path, handler, methods in table]
