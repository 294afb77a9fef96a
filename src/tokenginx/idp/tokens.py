"""The token endpoint's grants: what is issued, rotated and revoked, and when.

Tokens are written through the SSO domain commands (``OAUTH.TOKEN.SET``,
``OAUTH.CODE.CONSUME``, ``OAUTH.TOKEN.INTROSPECT``/``REVOKE``), so every token this
server issues is introspectable over RESP, HTTP and gRPC and filed under its user.
Three small records of its own sit beside them, all with a TTL:

* ``idp:oauth:family:{id}`` — one per grant (a code exchange and every refresh that
  follows): client, user, granted scope, browser session ``sid``, ``auth_time`` and
  the one refresh token currently valid;
* ``idp:oauth:rt:{sha256(refresh token)}`` → family id (``{id}:rotated`` once
  used), for every refresh token the family ever had, so presenting a rotated one
  is recognised as reuse and revokes the family (RFC 9700 §4.14.2);
* ``idp:oauth:spent:{sha256(code)}`` → what a code's first use issued, so a second
  use revokes it (RFC 6749 §4.1.2).

Access tokens carry ``sid`` in their metadata, which is how a browser logout finds
and revokes (with ``CASCADE``) everything issued under that session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from tokenginx.idp.clients import USER_SCOPES, OAuthClient

if TYPE_CHECKING:
    from tokenginx.config import Config
    from tokenginx.idp import IdP

audit = logging.getLogger("tokenginx.security")

_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


@dataclass(frozen=True)
class Lifetimes:
    access: int
    refresh: int
    id_token: int
    code: int


def lifetimes(config: Config) -> Lifetimes:
    """``oauth.server.*_ttl``, falling back to the ``protocols.oauth`` defaults."""
    srv, proto = config.oauth.server, config.protocols.oauth
    return Lifetimes(
        access=srv.access_token_ttl or proto.default_token_ttl,
        refresh=srv.refresh_token_ttl or proto.default_refresh_token_ttl,
        id_token=srv.id_token_ttl or proto.default_id_token_ttl,
        code=proto.default_code_ttl,
    )


class GrantError(Exception):
    """An RFC 6749 §5.2 error (``invalid_grant``, ``invalid_scope``…)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def s256(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def verify_pkce(challenge: str | None, method: str | None, verifier: str | None,
                *, allow_plain: bool = False) -> bool:
    """RFC 7636 §4.6. ``plain`` only when allowed (decisions.md §14: refused by
    default — it protects nothing against an attacker who can read the request)."""
    if not challenge or not verifier or not _VERIFIER.fullmatch(verifier):
        return False
    method = method or "plain"
    if method == "S256":
        return hmac.compare_digest(s256(verifier), challenge)
    if method == "plain" and allow_plain:
        return hmac.compare_digest(verifier.encode(), challenge.encode())
    return False


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: left half of SHA-256 (RS256 and ES256 both use it)."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest()[:16])


def scope_set(scope: str | None) -> list[str]:
    return list(dict.fromkeys((scope or "").split()))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


class Tokens:
    """``idp.tokens``: the grants of ``POST /oauth/token``, userinfo claims,
    introspection and revocation for clients."""

    def __init__(self, idp: IdP) -> None:
        self.idp = idp
        self.calls = idp.calls
        self.life = lifetimes(idp.config)
        self.allow_plain_pkce = idp.config.oauth.server.allow_plain_pkce

    # -- grants -----------------------------------------------------------------------
    def authorization_code(self, client: OAuthClient, code: str, redirect_uri: str,
                           verifier: str | None) -> dict[str, Any]:
        if not client.allows_grant("authorization_code"):
            raise GrantError("unauthorized_client", "this client may not use the authorization_code grant")
        if not code:
            raise GrantError("invalid_request", "code is required")
        raw = self.calls("OAUTH.CODE.CONSUME", code)
        if raw is None:
            self._code_reused(code)
            raise GrantError("invalid_grant", "the authorization code is unknown, expired or already used")
        rec = orjson.loads(raw)
        data = rec.get("data") if isinstance(rec.get("data"), dict) else {}

        def field(name: str) -> Any:
            value = rec.get(name)
            return data.get(name) if value is None else value

        if _text(rec.get("client_id")) != client.client_id:
            raise GrantError("invalid_grant", "the authorization code was issued to another client")
        if (redirect_uri or "") != _text(rec.get("redirect_uri")):
            raise GrantError("invalid_grant", "redirect_uri does not match the authorization request")
        challenge = _text(rec.get("code_challenge")) or None
        if challenge is None:
            if client.public:
                raise GrantError("invalid_grant", "PKCE is required for public clients")
            if verifier:
                # RFC 9700 §2.1.1: a verifier without a challenge is a downgrade attempt.
                raise GrantError("invalid_grant", "code_verifier sent but no code_challenge was")
        elif not verify_pkce(challenge, _text(rec.get("code_challenge_method")) or None, verifier,
                             allow_plain=self.allow_plain_pkce):
            raise GrantError("invalid_grant", "PKCE verification failed")
        user_id = _text(rec.get("user_id"))
        self._active_account(user_id)
        scope = " ".join(scope_set(_text(rec.get("scope"))))
        auth_time = field("auth_time")
        sid = _text(field("sid")) or None
        family = secrets.token_urlsafe(16) if client.allows_grant("refresh_token") else None
        access = secrets.token_urlsafe(32)
        # What this code issued, written before the tokens: a replay racing this
        # request finds it (nothing awaits in between).
        self.calls("SET", f"idp:oauth:spent:{_digest(code)}",
                   orjson.dumps({"access_token": access, "family": family}),
                   "EX", max(self.life.access, self.life.code))
        return self._issue(client, "authorization_code", user_id, scope, access=access, family=family,
                           sid=sid, auth_time=int(auth_time) if isinstance(auth_time, (int, float)) else None,
                           nonce=_text(field("nonce")) or None)

    def refresh_token(self, client: OAuthClient, presented: str, scope: str | None) -> dict[str, Any]:
        if not client.allows_grant("refresh_token"):
            raise GrantError("unauthorized_client", "this client may not use the refresh_token grant")
        if not presented:
            raise GrantError("invalid_request", "refresh_token is required")
        info = orjson.loads(self.calls("OAUTH.TOKEN.INTROSPECT", presented, "TOKEN_TYPE_HINT", "refresh_token"))
        rt_key = f"idp:oauth:rt:{_digest(presented)}"
        fid, _, rotated = _text(self.calls("GET", rt_key)).partition(":")
        fid = fid or None
        if not info.get("active"):
            if fid is not None and rotated:
                n = self.revoke_family(fid)
                audit.warning("oauth refresh token reuse client=%s family=%s revoked=%d",
                              client.client_id, fid, n)
                raise GrantError("invalid_grant", "refresh token already used; its grant is revoked")
            raise GrantError("invalid_grant", "the refresh token is unknown, expired or revoked")
        if info.get("token_type") != "refresh_token":
            raise GrantError("invalid_grant", "not a refresh token")
        if info.get("client_id") != client.client_id:
            raise GrantError("invalid_grant", "the refresh token was issued to another client")
        fam = self._family(fid) if fid else None
        if fam is None or fam.get("current") != presented:
            raise GrantError("invalid_grant", "the refresh token was not issued by this server")
        granted = scope_set(fam.get("scope"))
        wanted = scope_set(scope) or granted
        if not set(wanted) <= set(granted):
            raise GrantError("invalid_scope", "the requested scope exceeds the scope originally granted")
        user_id = _text(fam.get("user_id"))
        try:
            self._active_account(user_id)
        except GrantError:
            self.revoke_family(fid)  # type: ignore[arg-type]
            raise
        # Rotation: the presented token (and the access tokens issued with it) dies,
        # and is remembered as rotated: presenting it again is reuse.
        self.calls("OAUTH.TOKEN.REVOKE", presented, "TOKEN_TYPE_HINT", "refresh_token")
        self.calls("SET", rt_key, f"{fid}:rotated", "KEEPTTL")
        ordered = [s for s in granted if s in wanted]
        return self._issue(client, "refresh_token", user_id, " ".join(ordered), family=fid,
                           granted=" ".join(granted), sid=_text(fam.get("sid")) or None,
                           auth_time=fam.get("auth_time"))

    def client_credentials(self, client: OAuthClient, scope: str | None) -> dict[str, Any]:
        if client.public or not client.allows_grant("client_credentials"):
            raise GrantError("unauthorized_client", "this client may not use the client_credentials grant")
        wanted = scope_set(scope)
        if wanted:
            if set(wanted) & USER_SCOPES:
                raise GrantError("invalid_scope", "user scopes (openid, profile…) need a user: use the "
                                 "authorization_code grant")
            if not client.allows_scopes(wanted):
                raise GrantError("invalid_scope", "the requested scope is not allowed for this client")
        else:
            wanted = [s for s in client.scopes if s not in USER_SCOPES]
        return self._issue(client, "client_credentials", "", " ".join(wanted))

    # -- issuing ----------------------------------------------------------------------
    def _issue(self, client: OAuthClient, grant_type: str, user_id: str, scope: str, *,
               access: str | None = None, family: str | None = None, granted: str | None = None,
               sid: str | None = None, auth_time: Any = None, nonce: str | None = None) -> dict[str, Any]:
        life = self.life
        access = access or secrets.token_urlsafe(32)
        meta = {"grant_type": grant_type, "iss": self.idp.issuer}
        if sid:
            meta["sid"] = sid
        if family:
            meta["family"] = family
        argv: list[str | bytes | int] = [
            "OAUTH.TOKEN.SET", access, user_id, scope, "EXPIRES_IN", life.access,
            "CLIENT_ID", client.client_id, "METADATA", orjson.dumps(meta),
        ]
        refresh = None
        if family is not None:
            refresh = secrets.token_urlsafe(32)
            argv += ["REFRESH_TOKEN", refresh, "REFRESH_EXPIRES_IN", life.refresh]
        self.calls(*argv)
        out: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": life.access}
        if refresh is not None:
            assert family is not None
            self.calls("SET", f"idp:oauth:rt:{_digest(refresh)}", family, "EX", life.refresh)
            fam = {
                "client_id": client.client_id, "user_id": user_id, "scope": granted or scope,
                "sid": sid, "auth_time": auth_time, "current": refresh, "created_at": int(time.time()),
            }
            self.calls("SET", f"idp:oauth:family:{family}", orjson.dumps(fam), "EX", life.refresh)
            out["refresh_token"] = refresh
        out["scope"] = scope
        if user_id and "openid" in scope.split():
            out["id_token"] = self.id_token(client, user_id, scope, access, sid=sid,
                                            auth_time=auth_time, nonce=nonce)
        return out

    def id_token(self, client: OAuthClient, user_id: str, scope: str, access_token: str, *,
                 sid: str | None, auth_time: Any, nonce: str | None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.idp.issuer,
            "sub": user_id,
            "aud": client.client_id,
            "azp": client.client_id,
            "iat": now,
            "exp": now + self.life.id_token,
            "at_hash": at_hash(access_token),
        }
        if isinstance(auth_time, (int, float)):
            claims["auth_time"] = int(auth_time)
        if nonce:
            claims["nonce"] = nonce
        if sid:
            claims["sid"] = sid
        claims.update({k: v for k, v in self.user_claims(user_id, scope).items() if k != "sub"})
        return self.idp.keys.sign(claims, client.id_token_signed_response_alg)

    # -- users --------------------------------------------------------------------------
    def _active_account(self, user_id: str) -> Any:
        account = self.idp.accounts.get(user_id) if user_id else None
        if account is None or account.disabled:
            raise GrantError("invalid_grant", "the user of this grant no longer exists or is disabled")
        return account

    def user_claims(self, user_id: str, scope: str) -> dict[str, Any]:
        """OIDC Core §5.4 standard claims released by ``scope`` (whole-token match)."""
        scopes = set(scope.split())
        out: dict[str, Any] = {"sub": user_id}
        account = self.idp.accounts.get(user_id)
        if account is None:
            return out
        if "profile" in scopes:
            out["name"] = account.nickname or account.username
            out["preferred_username"] = account.username
            if account.nickname:
                out["nickname"] = account.nickname
            if getattr(account, "avatar", None):
                out["picture"] = account.avatar
        if "email" in scopes and account.email:
            out["email"] = account.email
            # The provider does not verify addresses.
            out["email_verified"] = bool(getattr(account, "email_verified", False))
        if "phone" in scopes and account.phone:
            out["phone_number"] = account.phone
            out["phone_number_verified"] = bool(getattr(account, "phone_verified", False))
        return out

    def userinfo(self, access_token: str) -> tuple[dict[str, Any] | None, str]:
        """``(claims, "")`` or ``(None, error)`` with ``invalid_token`` or
        ``insufficient_scope`` (RFC 6750 §3.1)."""
        raw = self.calls("OAUTH.TOKEN.GET", access_token) if access_token else None
        if raw is None:
            return None, "invalid_token"
        rec = orjson.loads(raw)
        user_id = _text(rec.get("user_id"))
        if rec.get("token_type") not in (None, "Bearer", "bearer") or not user_id:
            return None, "invalid_token"
        scope = _text(rec.get("scope"))
        if "openid" not in scope.split():
            return None, "insufficient_scope"
        account = self.idp.accounts.get(user_id)
        if account is None or account.disabled:
            return None, "invalid_token"
        return self.user_claims(user_id, scope), ""

    # -- revocation ---------------------------------------------------------------------
    def _family(self, fid: str) -> dict[str, Any] | None:
        raw = self.calls("GET", f"idp:oauth:family:{fid}")
        if raw is None:
            return None
        try:
            fam = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return fam if isinstance(fam, dict) else None

    def revoke_family(self, fid: str) -> int:
        """Revoke the grant's live refresh token (which takes its access tokens) and
        forget the family; how many tokens were revoked."""
        fam = self._family(fid)
        self.calls("DEL", f"idp:oauth:family:{fid}")
        if fam is None or not isinstance(fam.get("current"), str):
            return 0
        return int(self.calls("OAUTH.TOKEN.REVOKE", fam["current"], "TOKEN_TYPE_HINT",
                              "refresh_token", "CASCADE"))

    def _code_reused(self, code: str) -> None:
        key = f"idp:oauth:spent:{_digest(code)}"
        raw = self.calls("GET", key)
        if raw is None:
            return
        self.calls("DEL", key)
        spent = orjson.loads(raw)
        n = int(self.calls("OAUTH.TOKEN.REVOKE", spent["access_token"], "TOKEN_TYPE_HINT",
                           "access_token", "CASCADE"))
        if spent.get("family"):
            n += self.revoke_family(spent["family"])
        audit.warning("oauth authorization code replay; revoked %d token(s) it had issued", n)
        raise GrantError("invalid_grant", "the authorization code was already used; "
                         "the tokens it issued are revoked")

    def introspect(self, client: OAuthClient, token: str, hint: str | None) -> dict[str, Any]:
        """RFC 7662 for ``client``: a resource server sees any token; any other client
        only the tokens issued to it (others answer inactive, §2.2)."""
        info = self._lookup(token, hint)
        if not info.get("active"):
            return {"active": False}
        if not client.resource_server and info.get("client_id") != client.client_id:
            return {"active": False}
        info["iss"] = self.idp.issuer
        return info

    def _lookup(self, token: str, hint: str | None) -> dict[str, Any]:
        if not token:
            return {"active": False}
        argv: list[str | bytes | int] = ["OAUTH.TOKEN.INTROSPECT", token]
        if hint in ("access_token", "refresh_token"):
            argv += ["TOKEN_TYPE_HINT", hint]
        return orjson.loads(self.calls(*argv))

    def revoke(self, client: OAuthClient, token: str, hint: str | None) -> int:
        """RFC 7009: only the caller's own tokens; an unknown or foreign token is a
        no-op (§2.2: the answer is 200 either way). A refresh token takes its access
        tokens and its grant's future rotations with it; an access token goes alone
        (contract §5.6)."""
        own = self._lookup(token, hint)
        if not own.get("active") or own.get("client_id") != client.client_id:
            return 0
        if own.get("token_type") == "refresh_token":
            fid = _text(self.calls("GET", f"idp:oauth:rt:{_digest(token)}")).partition(":")[0] or None
            if fid is not None:
                self.calls("DEL", f"idp:oauth:family:{fid}")
            return int(self.calls("OAUTH.TOKEN.REVOKE", token, "TOKEN_TYPE_HINT", "refresh_token"))
        return int(self.calls("OAUTH.TOKEN.REVOKE", token, "TOKEN_TYPE_HINT", "access_token"))
