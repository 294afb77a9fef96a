"""Ending a browser session: everything that was granted under it goes too.

``idp.logout.end(sid)`` (or :func:`end_session`) deletes the session, revokes the
OAuth tokens and unused codes issued under it (they carry ``sid``), runs the hooks
other servers registered with :meth:`Logout.on_end` (the CAS server ends the TGT
of that login), and notifies every client that took part and registered a
``backchannel_logout_uri`` (OpenID Connect Back-Channel Logout 1.0 §2.4-2.5).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from tokenginx.idp.calls import StoreError
from tokenginx.sso.context import parse as parse_record

if TYPE_CHECKING:
    from tokenginx.idp import IdP

audit = logging.getLogger("tokenginx.security")
log = logging.getLogger("tokenginx.idp")

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TTL = 120  # seconds a logout token is acceptable (§2.4 leaves it to the OP)
BACKCHANNEL_TIMEOUT = 5.0


@dataclass(frozen=True)
class EndedSession:
    """What a hook is told about a session that just ended."""

    sid: str
    username: str
    clients: tuple[str, ...]


Hook = Callable[[EndedSession], "Awaitable[None] | None"]


def _sid_of(record: dict[str, Any]) -> str | None:
    """The browser session a token or code record was issued under, wherever the
    issuer put it (top level, ``metadata`` of a token, ``data`` of a code)."""
    for holder in (record, record.get("metadata"), record.get("data")):
        if type(holder) is dict and type(holder.get("sid")) is str:
            return holder["sid"]
    return None


class Logout:
    """``idp.logout``."""

    def __init__(self, idp: IdP) -> None:
        self.idp = idp
        self._hooks: list[Hook] = []

    def on_end(self, callback: Hook) -> Hook:
        """Call ``callback(EndedSession)`` (sync or async) whenever a session ends."""
        self._hooks.append(callback)
        return callback

    async def end(self, sid: str) -> bool:
        """End session ``sid``; False if there was no such live session."""
        record = self.idp.sessions.delete(sid)
        if record is None:
            return False
        username = record.get("username") if type(record.get("username")) is str else ""
        clients = tuple(c for c in record.get("clients") or () if type(c) is str)
        revoked = self.revoke_tokens(sid, username) if username else 0
        ended = EndedSession(sid, username, clients)
        for hook in list(self._hooks):
            try:
                result = hook(ended)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("logout hook %r failed for sid=%s", hook, sid)
        await self.notify(ended)
        audit.info("idp logout user=%r sid=%s tokens_revoked=%d clients=%s",
                   username, sid, revoked, ",".join(clients))
        return True

    # -- tokens ----------------------------------------------------------------------------
    def revoke_tokens(self, sid: str, username: str) -> int:
        """Revoke the user's tokens and codes that carry this ``sid``; how many."""
        calls = self.idp.calls
        try:
            entries = orjson.loads(calls("SSO.USER.SESSIONS", username))
        except (StoreError, orjson.JSONDecodeError):
            log.exception("cannot list the tokens of %r", username)
            return 0
        n = 0
        for entry in entries:
            kind, token_id, key = entry.get("type"), entry.get("id"), entry.get("key")
            if kind not in ("access_token", "refresh_token", "auth_code") or not token_id:
                continue
            record = parse_record(calls("GET", key))
            if record is None or _sid_of(record) != sid:
                continue
            if kind == "auth_code":
                n += calls("OAUTH.CODE.CONSUME", token_id) is not None
            else:
                n += int(calls("OAUTH.TOKEN.REVOKE", token_id, "TOKEN_TYPE_HINT", kind, "CASCADE"))
        return n

    # -- back-channel logout -----------------------------------------------------------------
    def logout_token(self, client: Any, ended: EndedSession) -> str:
        """The signed logout token for one client (Back-Channel Logout 1.0 §2.4)."""
        now = int(time.time())
        claims = {
            "iss": self.idp.issuer,
            "aud": client.client_id,
            "iat": now,
            "exp": now + LOGOUT_TOKEN_TTL,
            "jti": secrets.token_urlsafe(16),
            "sub": ended.username,
            "sid": ended.sid,
            "events": {BACKCHANNEL_EVENT: {}},
        }
        alg = getattr(client, "id_token_signed_response_alg", None) or "RS256"
        # §2.4: explicit typing keeps a logout token from passing for an ID token.
        return self.idp.keys.sign(claims, alg, typ="logout+jwt")

    async def notify(self, ended: EndedSession) -> None:
        """POST a logout token to each participating client's back-channel URI, in
        parallel, each bounded by :data:`BACKCHANNEL_TIMEOUT`; failures are logged."""
        targets = []
        for client_id in ended.clients:
            client = self.idp.clients.get(client_id)
            uri = getattr(client, "backchannel_logout_uri", None) if client else None
            if uri:
                targets.append((client, uri))
        if not targets:
            return
        await self.idp.keys.ready()  # key creation off the event loop
        async with httpx.AsyncClient(timeout=BACKCHANNEL_TIMEOUT, follow_redirects=False) as http:
            await asyncio.gather(*(self._post(http, c, uri, ended) for c, uri in targets))

    async def _post(self, http: httpx.AsyncClient, client: Any, uri: str,
                    ended: EndedSession) -> None:
        try:
            token = self.logout_token(client, ended)
            r = await http.post(uri, data={"logout_token": token},
                                headers={"Cache-Control": "no-store"})
        except Exception as e:  # an RP being down must not break the user's logout
            log.warning("back-channel logout to %s (%s) failed: %r", client.client_id, uri, e)
            return
        if r.status_code >= 300:
            log.warning("back-channel logout to %s (%s) answered %d",
                        client.client_id, uri, r.status_code)


async def end_session(idp: IdP, sid: str) -> None:
    """End browser session ``sid`` (see :class:`Logout`)."""
    await idp.logout.end(sid)
