"""The CAS 1.0/2.0/3.0 server endpoints under ``/cas`` (CAS Protocol 3.0, contract §7).

``/login`` and ``/logout`` share the identity provider's login page and browser
session with the OAuth server; the validation endpoints answer in the protocol's own
formats (plain text for 1.0, namespaced XML or JSON for 2.0/3.0), never in the REST
envelope. The ticket logic lives in :mod:`tokenginx.idp.cas_service`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from tokenginx.idp import cas_service as cas
from tokenginx.idp.browser import Login
from tokenginx.idp.calls import StoreError
from tokenginx.idp.cas_service import CASError, CASService
from tokenginx.idp.logout import end_session
from tokenginx.transport.http import idp_pages
from tokenginx.transport.http.forms import FormError, read_form

if TYPE_CHECKING:
    from tokenginx.idp import IdP
    from tokenginx.idp.browser import BrowserSessions
    from tokenginx.transport.http.metrics import Metrics

log = logging.getLogger("tokenginx.cas")

LOGIN = "/cas/login"
XML = "application/xml;charset=UTF-8"
JSON = "application/json"
TEXT = "text/plain;charset=UTF-8"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
BAD_FORM = idp_pages.BAD_FORM

Handler = Callable[[Request], Awaitable[Response]]
Source = QueryParams | FormData


def _param(source: Source, name: str) -> str | None:
    value = source.get(name)
    return value if isinstance(value, str) and value else None


def _flag(source: Source, name: str) -> bool:
    """CAS 3.0 §2.1.1: a parameter that is "set"; ``false``/``0`` count as unset."""
    value = source.get(name)
    return isinstance(value, str) and value.lower() not in ("false", "0")


class CASServer:
    def __init__(self, idp: IdP, metrics: Metrics) -> None:
        self.idp = idp
        self.metrics = metrics
        self.service = CASService(idp, metrics)
        idp.logout.on_end(self.service.on_session_end)

    @property
    def sessions(self) -> BrowserSessions:
        return self.idp.sessions

    # -- /login ------------------------------------------------------------------------
    def _form(self, request: Request, service: str | None, renew: bool, *,
              error: str | None = None, username: str = "", status: int = 200) -> Response:
        hidden = {"service": service} if service else {}
        if renew:
            hidden["renew"] = "true"
        return idp_pages.login_page(
            action=LOGIN, hidden=hidden, csrf=self.sessions.csrf_token(request), error=error,
            username=username, status=status, secure=self.sessions.secure,
        )

    def _unauthorized_service(self) -> Response:
        return idp_pages.error_page(
            "Application not authorized",
            "The application that sent you here is not authorized to use this sign-in service.",
            403,
        )

    async def login(self, request: Request) -> Response:
        source: Source = request.query_params
        if request.method == "POST":
            try:
                source = await read_form(request)
            except FormError as e:
                return idp_pages.error_page("Invalid form", e.message, e.status)
        service = _param(source, "service") or _param(request.query_params, "service")
        if service is not None and not self.service.allowed(service):
            return self._unauthorized_service()
        renew = _flag(source, "renew")
        if request.method == "POST":
            return await self._sign_in(request, source, service, renew)
        login = self.sessions.current(request)
        if login is not None:
            account = self.idp.accounts.get(login.username)
            if account is None or account.disabled:
                login = None  # deleted or disabled since signing in: no more SSO
        if login is not None and not renew:
            if service is None:
                return idp_pages.info_page("Signed in", f"You are signed in as {login.username}.")
            st = self.service.service_ticket(login.sid, login.username, login.auth_time,
                                             service, new_login=False)
            return RedirectResponse(cas.with_ticket(service, st), 302, headers=NO_STORE)
        # CAS 3.0 §2.1.1: gateway is ignored when renew is set.
        if service is not None and not renew and _flag(source, "gateway"):
            return RedirectResponse(service, 302, headers=NO_STORE)
        return self._form(request, service, renew)

    async def _sign_in(self, request: Request, form: Source, service: str | None,
                       renew: bool) -> Response:
        if not self.sessions.check_csrf(request, _param(form, "csrf")):
            return idp_pages.error_page("Invalid form", BAD_FORM, 400)
        previous = self.sessions.current(request)
        login = await idp_pages.sign_in_from_form(
            self.sessions, request, form,
            lambda error, username, status: self._form(request, service, renew, error=error,
                                                       username=username, status=status))
        if not isinstance(login, Login):
            return login
        self.metrics.cas_logins.inc()
        if previous is not None and previous.sid != login.sid:
            if previous.username == login.username:
                self.service.rebind(previous.sid, login.sid)
            await end_session(self.idp, previous.sid)  # one browser, one login
        if service is None:
            self.service.tgt_for(login.sid, login.username, login.auth_time)
            response: Response = idp_pages.info_page(
                "Signed in", f"You are signed in as {login.username}.")
        else:
            st = self.service.service_ticket(login.sid, login.username, login.auth_time,
                                             service, new_login=True)
            response = RedirectResponse(cas.with_ticket(service, st), 302, headers=NO_STORE)
        self.sessions.attach(response, login)
        return response

    # -- /logout -----------------------------------------------------------------------
    async def logout(self, request: Request) -> Response:
        login = self.sessions.current(request)
        if login is not None:
            await end_session(self.idp, login.sid)  # the on_end hook destroys the TGTs
        # CAS 3.0 §2.3.1 names it "service"; CAS 2.0 clients send "url".
        target = _param(request.query_params, "service") or _param(request.query_params, "url")
        response: Response
        if target is not None and self.service.allowed(target):
            response = RedirectResponse(target, 302, headers=NO_STORE)
        else:
            response = idp_pages.logged_out_page()
        self.sessions.clear(response)
        return response

    # -- /validate (CAS 1.0) -----------------------------------------------------------
    async def validate_v1(self, request: Request) -> Response:
        q = request.query_params
        t0 = time.perf_counter()
        ticket, service = _param(q, "ticket"), _param(q, "service")
        try:
            kind = self.service.check_request(ticket, service, proxy_tickets=False)
            assert ticket is not None and service is not None
            v = self.service.validate(ticket, service, kind, renew=_flag(q, "renew"))
            body = f"yes\n{v.user}\n"
        except CASError:
            body = "no\n\n"  # CAS 3.0 §2.4.2
        finally:
            self.metrics.cas_validation.observe(time.perf_counter() - t0)
        return PlainTextResponse(body, media_type=TEXT, headers=NO_STORE)

    # -- /serviceValidate, /proxyValidate, /p3/… (CAS 2.0/3.0) ---------------------------
    def validator(self, *, proxy_tickets: bool) -> Handler:
        async def endpoint(request: Request) -> Response:
            q = request.query_params
            as_json = (q.get("format") or "").upper() == "JSON"
            try:
                if (q.get("format") or "XML").upper() not in ("XML", "JSON"):
                    raise CASError(cas.INVALID_REQUEST, "format must be XML or JSON")
                ticket, service = _param(q, "ticket"), _param(q, "service")
                pgt_url = _param(q, "pgtUrl")
                t0 = time.perf_counter()
                kind = self.service.check_request(ticket, service, proxy_tickets=proxy_tickets)
                assert ticket is not None and service is not None
                try:
                    v = self.service.validate(ticket, service, kind, renew=_flag(q, "renew"))
                finally:
                    self.metrics.cas_validation.observe(time.perf_counter() - t0)
                if pgt_url is not None:
                    # After validation: a refused callback still consumed the ticket
                    # (CAS 3.0 §2.5.1, every attempt invalidates it).
                    self.service.check_pgt_url(pgt_url)
                    v.pgt_iou = await self.service.grant_pgt(v, pgt_url)
            except CASError as e:
                body = cas.failure_json(e) if as_json else cas.failure_xml(e).encode()
            else:
                body = (cas.success_json(v, attributes=True) if as_json
                        else cas.success_xml(v, attributes=True).encode())
            return Response(body, media_type=JSON if as_json else XML, headers=NO_STORE)

        return endpoint

    # -- /proxy ------------------------------------------------------------------------
    async def proxy(self, request: Request) -> Response:
        q = request.query_params
        as_json = (q.get("format") or "").upper() == "JSON"
        try:
            pt = self.service.proxy_ticket(_param(q, "pgt"), _param(q, "targetService"))
        except CASError as e:
            body = (cas.failure_json(e, "proxyFailure") if as_json
                    else cas.failure_xml(e, "proxyFailure").encode())
        else:
            body = cas.proxy_success_json(pt) if as_json else cas.proxy_success_xml(pt).encode()
        return Response(body, media_type=JSON if as_json else XML, headers=NO_STORE)


def _endpoint(server: CASServer, handler: Handler, path: str, kind: str) -> Handler:
    """HTTPS rule, metrics, and errors in the endpoint's own format (never a bare 500)."""
    cfg = server.idp.config.cas.server

    async def endpoint(request: Request) -> Response:
        t0 = time.perf_counter()
        response: Response
        if cfg.require_https and request.url.scheme != "https":
            response = PlainTextResponse("HTTPS required", 403)  # contract §7.3
        else:
            try:
                response = await handler(request)
            except Exception as e:
                if not isinstance(e, StoreError):
                    log.exception("%s %s failed", request.method, path)
                response = _internal_error(kind, e)
        server.metrics.observe_http(request.method, path, response.status_code,
                                    time.perf_counter() - t0)
        return response

    return endpoint


def _internal_error(kind: str, e: Exception) -> Response:
    if kind == "page":
        return idp_pages.error_page(
            "Something went wrong", "The server could not complete this request. "
            "Try again in a moment.", 503 if isinstance(e, StoreError) else 500)
    if kind == "text":
        return PlainTextResponse("no\n\n", media_type=TEXT, headers=NO_STORE)
    element = "proxyFailure" if kind == "proxy" else "authenticationFailure"
    error = CASError(cas.INTERNAL_ERROR, "The server could not complete this request")
    return Response(cas.failure_xml(error, element), media_type=XML, headers=NO_STORE)


def routes(idp: IdP, metrics: Metrics) -> list[BaseRoute]:
    if not idp.config.cas.server.enabled:
        return []
    server = CASServer(idp, metrics)
    table: list[tuple[str, Handler, list[str], str]] = [
        (LOGIN, server.login, ["GET", "POST"], "page"),
        ("/cas/logout", server.logout, ["GET", "POST"], "page"),
        ("/cas/validate", server.validate_v1, ["GET"], "text"),
        ("/cas/serviceValidate", server.validator(proxy_tickets=False), ["GET"], "xml"),
        ("/cas/p3/serviceValidate", server.validator(proxy_tickets=False), ["GET"], "xml"),
        ("/cas/proxyValidate", server.validator(proxy_tickets=True), ["GET"], "xml"),
        ("/cas/p3/proxyValidate", server.validator(proxy_tickets=True), ["GET"], "xml"),
        ("/cas/proxy", server.proxy, ["GET"], "proxy"),
    ]
    return [Route(path, _endpoint(server, handler, path, kind), methods=methods)
            for path, handler, methods, kind in table]
