"""The built-in CAS server's logic (CAS Protocol 3.0), between HTTP and the CAS.* commands.

Tickets are created, validated and destroyed only through the ``CAS.*`` commands run by
:class:`~tokenginx.idp.GateCalls`, so they are indexed to their user and visible over
RESP and gRPC like tickets an application stores itself. What this module adds:

* the service allow-list (prefix match, ending at a URL boundary);
* one TGT per browser login: the TGT is bound to the IdP's browser session
  (``{cas}:browser:{sid}`` maps the login's ``auth_time`` to its TGT), so a user signed
  in through OAuth gets CAS tickets without a password, and ending that session (CAS
  or OIDC logout) destroys the TGT and triggers single logout;
* ``{cas}:tgt_sts:{tgt}``: the STs issued under a TGT and their services, for the
  back-channel LogoutRequests (CAS 3.0 §2.3.3);
* ``{cas}:st_new:{st}``: set when an ST came from a presentation of primary
  credentials (``isFromNewLogin``, ``renew=true`` validation, CAS 3.0 §2.5.1);
* the proxy callback (CAS 3.0 §2.5.4) and the response documents (XML and JSON).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit
from xml.sax.saxutils import escape, quoteattr

import httpx
import orjson

from tokenginx.idp.calls import StoreError
from tokenginx.sso.context import parse as parse_record

if TYPE_CHECKING:
    from tokenginx.idp import IdP
    from tokenginx.idp.logout import EndedSession
    from tokenginx.transport.http.metrics import Metrics

log = logging.getLogger("tokenginx.cas")

CAS_NS = "http://www.yale.edu/tp/cas"
SAMLP_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"

# CAS 3.0 §2.5.3 / §2.7.2 error codes.
INVALID_REQUEST = "INVALID_REQUEST"
INVALID_TICKET_SPEC = "INVALID_TICKET_SPEC"
UNAUTHORIZED_SERVICE_PROXY = "UNAUTHORIZED_SERVICE_PROXY"
UNAUTHORIZED_SERVICE = "UNAUTHORIZED_SERVICE"
INVALID_PROXY_CALLBACK = "INVALID_PROXY_CALLBACK"
INVALID_TICKET = "INVALID_TICKET"
INVALID_SERVICE = "INVALID_SERVICE"
INTERNAL_ERROR = "INTERNAL_ERROR"

MAX_TICKET = 256  # CAS 3.0 §3.1.1: "RECOMMENDED that services support tickets of up to 256"
MAX_URL = 4096
_BOUNDARY = "/?#:"
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,127}")


class CASError(Exception):
    """A CAS failure response: ``code`` is one of the spec's codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Validation:
    """A successful ticket validation."""

    user: str
    attributes: dict[str, Any]
    tgt_id: str
    proxies: list[str] = field(default_factory=list)
    pgt_iou: str | None = None


def new_ticket(kind: str) -> str:
    """``TGT-1-…``, ``ST-1-…``: 32 random bytes (contract §7.1)."""
    return f"{kind}-1-{secrets.token_urlsafe(32)}"


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def with_ticket(service: str, ticket: str) -> str:
    """``service`` with ``ticket=…`` added to its query (before any fragment)."""
    base, hash_, fragment = service.partition("#")
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}{urlencode({'ticket': ticket})}{hash_}{fragment}"


def _text(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""


class CASService:
    """``routes()`` builds one per server; see the module docstring."""

    def __init__(self, idp: IdP, metrics: Metrics | None = None) -> None:
        self.idp = idp
        self.calls = idp.calls
        self.cfg = idp.config.cas.server
        self.ttls = idp.config.protocols.cas
        self.prefix = self.ttls.key_prefix
        self.metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()

    # -- allow-list --------------------------------------------------------------------
    def allowed(self, url: str | None) -> bool:
        """True when ``url`` starts with an allow-listed prefix at a URL boundary, so
        ``http://app`` admits ``http://app/x`` and ``http://app:8000`` but not
        ``http://app.evil.example``."""
        if not url or len(url) > MAX_URL or not url.isprintable() or " " in url:
            return False
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        for prefix in self.cfg.services:
            if not prefix or not url.startswith(prefix):
                continue
            if prefix.endswith("/") or len(url) == len(prefix) or url[len(prefix)] in _BOUNDARY:
                return True
        return False

    def _key(self, segment: str, id_: str) -> str:
        return f"{self.prefix}:{segment}:{id_}"

    @property
    def tgt_ttl(self) -> int:
        return self.cfg.tgt_ttl or self.idp.config.idp.session_ttl or self.ttls.default_tgt_ttl

    def _count(self, ticket_type: str) -> None:
        if self.metrics is not None:
            self.metrics.cas_tickets.labels(ticket_type).inc()

    # -- TGT per browser login ---------------------------------------------------------
    def _attributes(self, username: str, auth_time: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "authenticationDate": _iso(auth_time),
            "longTermAuthenticationRequestTokenUsed": False,
        }
        account = self.idp.accounts.get(username)
        if account is not None:
            for name in ("email", "nickname", "phone"):
                value = getattr(account, name, None)
                if value:
                    out[name] = value
        return out

    def tgt_for(self, sid: str, username: str, auth_time: int) -> str:
        """The live TGT of this browser login, created on first use."""
        binding = self._key("browser", sid)
        slot = str(auth_time)
        tgt_id = _text(self.calls("HGET", binding, slot))
        if tgt_id and self.calls("CAS.TGT.GET", tgt_id) is not None:
            return tgt_id
        tgt_id = new_ticket("TGT")
        ttl = self.tgt_ttl
        attributes = orjson.dumps(self._attributes(username, auth_time))
        self.calls("CAS.TGT.SET", tgt_id, username, "EXPIRES_IN", ttl, "ATTRIBUTES", attributes)
        self.calls("HSET", binding, slot, tgt_id)
        self.calls("EXPIRE", binding, ttl)
        self._count("TGT")
        return tgt_id

    def issue_st(self, tgt_id: str, service: str, *, new_login: bool) -> str:
        st_id = new_ticket("ST")
        self.calls("CAS.ST.SET", st_id, tgt_id, service)
        sts = self._key("tgt_sts", tgt_id)
        self.calls("HSET", sts, st_id, service)
        self.calls("EXPIRE", sts, self.tgt_ttl)
        if new_login:
            self.calls("SET", self._key("st_new", st_id), "1", "EX", self.ttls.default_st_ttl)
        self._count("ST")
        return st_id

    def service_ticket(self, sid: str, username: str, auth_time: int, service: str, *,
                       new_login: bool) -> str:
        tgt_id = self.tgt_for(sid, username, auth_time)
        try:
            return self.issue_st(tgt_id, service, new_login=new_login)
        except StoreError:
            # The TGT expired between the two calls: bind a fresh one and retry once.
            self.calls("HDEL", self._key("browser", sid), str(auth_time))
            tgt_id = self.tgt_for(sid, username, auth_time)
            return self.issue_st(tgt_id, service, new_login=new_login)

    # -- validation --------------------------------------------------------------------
    def check_request(self, ticket: str | None, service: str | None, *, proxy_tickets: bool) -> str:
        """Refusals that leave the ticket alone; returns the ticket kind ("ST" or "PT")."""
        if not ticket or not service:
            raise CASError(INVALID_REQUEST, "Missing required parameters: 'ticket' and 'service'")
        if len(ticket) > MAX_TICKET or len(service) > MAX_URL:
            raise CASError(INVALID_REQUEST, "Parameter too long")
        if ticket.startswith("PT-"):
            if not proxy_tickets:
                raise CASError(INVALID_TICKET_SPEC,
                               "Proxy tickets are not accepted here; validate them at /proxyValidate")
            return "PT"
        if not ticket.startswith("ST-"):
            raise CASError(INVALID_TICKET, f"Ticket '{ticket}' not recognized")
        return "ST"

    def check_pgt_url(self, pgt_url: str) -> None:
        if not self.cfg.proxy:
            raise CASError(UNAUTHORIZED_SERVICE_PROXY, "Proxy authentication is not enabled")
        try:
            scheme = urlsplit(pgt_url).scheme
        except ValueError:
            scheme = ""
        if scheme != "https" and not (scheme == "http" and self.cfg.allow_http_proxy_callback):
            raise CASError(INVALID_PROXY_CALLBACK, "The proxy callback URL must use https")
        if not self.allowed(pgt_url):
            raise CASError(INVALID_PROXY_CALLBACK, "The proxy callback URL is not an authorized service")

    def validate(self, ticket: str, service: str, kind: str, *, renew: bool) -> Validation:
        """Consume ``ticket`` (ST or PT) for ``service``; raises :class:`CASError`."""
        record = parse_record(self.calls("GET", self._key(kind.lower(), ticket))) or {}
        new_login = kind == "ST" and self.calls("GETDEL", self._key("st_new", ticket)) == b"1"
        command = "CAS.ST.VALIDATE" if kind == "ST" else "CAS.PT.VALIDATE"
        result = parse_record(self.calls(command, ticket, service))
        if result is None:
            raise CASError(INTERNAL_ERROR, "Unexpected reply from the ticket store")
        if not result.get("valid"):
            code = result.get("code") if result.get("code") in (INVALID_TICKET, INVALID_SERVICE) else INVALID_TICKET
            if code == INVALID_TICKET:
                raise CASError(code, f"Ticket '{ticket}' not recognized")
            raise CASError(code, f"Ticket '{ticket}' does not match the supplied service; it is now invalid")
        if renew and not new_login:
            raise CASError(INVALID_TICKET_SPEC,
                           "renew=true: the ticket was not issued from a presentation of primary credentials")
        attributes = result.get("attributes")
        attributes = dict(attributes) if type(attributes) is dict else {}
        attributes["isFromNewLogin"] = new_login
        proxies = result.get("proxies")
        return Validation(
            user=str(result.get("user_id") or ""),
            attributes=attributes,
            tgt_id=str(record.get("tgt_id") or ""),
            proxies=[p for p in proxies if type(p) is str] if type(proxies) is list else [],
        )

    async def grant_pgt(self, validation: Validation, pgt_url: str) -> str | None:
        """CAS 3.0 §2.5.4: create a PGT, hand it to ``pgt_url`` with its IOU, and return
        the IOU if the callback answered 200; otherwise the PGT is deleted and no IOU is
        returned (the validation itself still succeeds)."""
        if not validation.tgt_id:
            return None
        pgt_id, iou = new_ticket("PGT"), new_ticket("PGTIOU")
        try:
            self.calls("CAS.PGT.SET", pgt_id, validation.tgt_id, validation.user, pgt_url,
                       "EXPIRES_IN", self.ttls.default_pgt_ttl)
        except StoreError:
            return None  # the TGT ended meanwhile
        query = urlencode({"pgtId": pgt_id, "pgtIou": iou})
        url = f"{pgt_url}{'&' if '?' in pgt_url else '?'}{query}"
        ok = False
        try:
            async with httpx.AsyncClient(timeout=self.cfg.callback_timeout_s,
                                         follow_redirects=False) as http:
                ok = await self._callback(http, url)
        except Exception as e:  # unreachable, TLS failure, timeout: no PGT
            log.warning("CAS proxy callback %s failed: %r", pgt_url, e)
        if not ok:
            self.calls("DEL", self._key("pgt", pgt_id))
            return None
        self._count("PGT")
        return iou

    async def _callback(self, http: httpx.AsyncClient, url: str) -> bool:
        """GET the callback; 200 is success. Redirects are followed (CAS 3.0 §2.5.4
        excepts 3xx) but only to URLs a pgtUrl itself could name."""
        for _ in range(4):
            r = await http.get(url)
            if r.status_code == 200:
                return True
            location = r.headers.get("location")
            if not r.is_redirect or not location:
                log.warning("CAS proxy callback %s answered %d", url.split("?")[0], r.status_code)
                return False
            url = str(r.url.join(location))
            try:
                self.check_pgt_url(url)
            except CASError:
                log.warning("CAS proxy callback redirected to a refused URL %s", url.split("?")[0])
                return False
        return False

    def proxy_ticket(self, pgt: str | None, target: str | None) -> str:
        """CAS 3.0 §2.7: a PT for ``target`` from a PGT; raises :class:`CASError`."""
        if not pgt or not target:
            raise CASError(INVALID_REQUEST, "Missing required parameters: 'pgt' and 'targetService'")
        if not self.cfg.proxy:
            raise CASError(UNAUTHORIZED_SERVICE_PROXY, "Proxy authentication is not enabled")
        if not self.allowed(target):
            raise CASError(UNAUTHORIZED_SERVICE, "The target service is not authorized")
        if len(pgt) > MAX_TICKET or not pgt.startswith("PGT-"):
            raise CASError(INVALID_TICKET, f"Ticket '{pgt}' not recognized")
        pt_id = new_ticket("PT")
        try:
            self.calls("CAS.PT.SET", pt_id, pgt, target)
        except StoreError:
            raise CASError(INVALID_TICKET, "PGT not found or expired") from None
        self._count("PT")
        return pt_id

    def rebind(self, old_sid: str, new_sid: str) -> None:
        """Move the TGTs of login ``old_sid`` to ``new_sid`` (the same user signed in
        again, e.g. ``renew``): ending the old login then leaves them, and their
        services, to the new one."""
        old = self._key("browser", old_sid)
        bound = self.calls("HGETALL", old)
        if type(bound) is dict and bound:
            new = self._key("browser", new_sid)
            for slot, tgt_id in bound.items():
                self.calls("HSET", new, slot, tgt_id)
            self.calls("EXPIRE", new, self.tgt_ttl)
        self.calls("DEL", old)

    # -- logout ------------------------------------------------------------------------
    def end_login(self, sid: str) -> list[tuple[str, str, str, str]]:
        """Destroy every TGT of browser session ``sid``; the single-logout targets
        ``(service, st_id, tgt_id, username)`` of the STs they issued."""
        binding = self._key("browser", sid)
        tgts = [_text(t) for t in self.calls("HVALS", binding)]
        self.calls("DEL", binding)
        targets: list[tuple[str, str, str, str]] = []
        for tgt_id in filter(None, tgts):
            tgt = parse_record(self.calls("CAS.TGT.GET", tgt_id)) or {}
            user = str(tgt.get("user_id") or "")
            sts_key = self._key("tgt_sts", tgt_id)
            sts = self.calls("HGETALL", sts_key)
            self.calls("DEL", sts_key)
            self.calls("CAS.TGT.DEL", tgt_id)
            if type(sts) is dict:
                targets += [(_text(svc), _text(st), tgt_id, user) for st, svc in sts.items()]
        return targets

    async def on_session_end(self, ended: EndedSession) -> None:
        """``idp.logout`` hook: the browser login ended (CAS or OIDC logout)."""
        try:
            targets = self.end_login(ended.sid)
        except StoreError:
            log.exception("cannot end the CAS tickets of sid=%s", ended.sid)
            return
        if targets and self.cfg.single_logout:
            task = asyncio.get_running_loop().create_task(self.send_logout_requests(targets))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def send_logout_requests(self, targets: list[tuple[str, str, str, str]]) -> None:
        """Back-channel LogoutRequests, in parallel, each bounded by callback_timeout_s."""
        if self.cfg.slo_format == "xml":
            # Contract §7.2: one per service, SessionIndex = the TGT id.
            seen: dict[tuple[str, str], tuple[str, str, str, str]] = {}
            for t in targets:
                seen.setdefault((t[0], t[2]), t)
            targets = list(seen.values())
        async with httpx.AsyncClient(timeout=self.cfg.callback_timeout_s,
                                     follow_redirects=False) as http:
            await asyncio.gather(*(self._post_logout(http, *t) for t in targets))

    async def _post_logout(self, http: httpx.AsyncClient, service: str, st_id: str,
                           tgt_id: str, user: str) -> None:
        try:
            if self.cfg.slo_format == "xml":
                url = service.split("?", 1)[0].split("#", 1)[0].rstrip("/") + "/cas-logout"
                r = await http.post(url, content=logout_request(tgt_id, user).encode(),
                                    headers={"Content-Type": "application/xml"})
            else:
                url = service
                r = await http.post(url, data={"logoutRequest": logout_request(st_id, user)})
        except Exception as e:  # a service being down must not break the logout
            log.warning("CAS single logout to %s failed: %r", service, e)
            return
        if r.status_code >= 300:
            log.warning("CAS single logout to %s answered %d", url, r.status_code)


# -- documents -------------------------------------------------------------------------
def logout_request(session_index: str, user: str) -> str:
    """The SAML 2.0 LogoutRequest of CAS 3.0 §2.3.3 (and appendix C)."""
    request_id = "LR-" + secrets.token_hex(16)
    return (
        f'<samlp:LogoutRequest xmlns:samlp="{SAMLP_NS}" xmlns:saml="{SAML_NS}" '
        f'ID={quoteattr(request_id)} Version="2.0" IssueInstant={quoteattr(_iso(int(time.time())))}>'
        f"<saml:NameID>{escape(user or '@NOT_USED@')}</saml:NameID>"
        f"<samlp:SessionIndex>{escape(session_index)}</samlp:SessionIndex>"
        "</samlp:LogoutRequest>"
    )


def _values(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _values(item)]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if value is None:
        return []
    if isinstance(value, dict):
        return [orjson.dumps(value).decode()]
    return [str(value)]


def _clean(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (escape() handles the markup ones)."""
    return "".join(c for c in text if c in "\t\n\r" or (c >= " " and c not in "\ufffe\uffff"))


def success_xml(v: Validation, *, attributes: bool) -> str:
    parts = ["<cas:authenticationSuccess>", f"<cas:user>{escape(_clean(v.user))}</cas:user>"]
    if attributes and v.attributes:
        parts.append("<cas:attributes>")
        for name, value in v.attributes.items():
            if not _XML_NAME.fullmatch(name):
                continue  # not an XML element name: cannot be expressed as <cas:name>
            parts += [f"<cas:{name}>{escape(_clean(s))}</cas:{name}>" for s in _values(value)]
        parts.append("</cas:attributes>")
    if v.pgt_iou:
        parts.append(f"<cas:proxyGrantingTicket>{escape(v.pgt_iou)}</cas:proxyGrantingTicket>")
    if v.proxies:
        parts.append("<cas:proxies>")
        parts += [f"<cas:proxy>{escape(_clean(p))}</cas:proxy>" for p in v.proxies]
        parts.append("</cas:proxies>")
    parts.append("</cas:authenticationSuccess>")
    return _envelope("".join(parts))


def failure_xml(error: CASError, element: str = "authenticationFailure") -> str:
    body = f"<cas:{element} code={quoteattr(error.code)}>{escape(_clean(error.message))}</cas:{element}>"
    return _envelope(body)


def proxy_success_xml(pt_id: str) -> str:
    return _envelope(f"<cas:proxySuccess><cas:proxyTicket>{escape(pt_id)}</cas:proxyTicket></cas:proxySuccess>")


def _envelope(body: str) -> str:
    return f'<cas:serviceResponse xmlns:cas="{CAS_NS}">{body}</cas:serviceResponse>\n'


def success_json(v: Validation, *, attributes: bool) -> bytes:
    """CAS 3.0 appendix (JSON responses)."""
    inner: dict[str, Any] = {"user": v.user}
    if attributes and v.attributes:
        inner["attributes"] = v.attributes
    if v.pgt_iou:
        inner["proxyGrantingTicket"] = v.pgt_iou
    if v.proxies:
        inner["proxies"] = v.proxies
    return orjson.dumps({"serviceResponse": {"authenticationSuccess": inner}})


def failure_json(error: CASError, element: str = "authenticationFailure") -> bytes:
    return orjson.dumps({"serviceResponse": {element: {"code": error.code, "description": error.message}}})


def proxy_success_json(pt_id: str) -> bytes:
    return orjson.dumps({"serviceResponse": {"proxySuccess": {"proxyTicket": pt_id}}})
