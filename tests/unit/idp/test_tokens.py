"""Token-endpoint logic in-process: PKCE, at_hash, lifetimes, and the grants' rules
(rotation, reuse, disabled users) through the real gate."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import orjson
import pytest

from tests.conftest import GateHarness
from tokenginx.config import Config
from tokenginx.idp import IdP
from tokenginx.idp.tokens import GrantError, at_hash, lifetimes, s256, verify_pkce

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 Appendix B
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_s256_matches_rfc7636_example() -> None:
    assert s256(VERIFIER) == CHALLENGE


@pytest.mark.parametrize("challenge,method,verifier,plain,expected", [
    (CHALLENGE, "S256", VERIFIER, False, True),
    (CHALLENGE, "S256", VERIFIER[:-1] + "Y", False, False),
    (CHALLENGE, "S256", None, False, False),
    (CHALLENGE, "S256", "short", False, False),          # RFC 7636 §4.1: 43..128 characters
    (CHALLENGE, "S256", VERIFIER + "!", False, False),    # outside the unreserved set
    (VERIFIER, "plain", VERIFIER, False, False),          # plain refused by default
    (VERIFIER, "plain", VERIFIER, True, True),
    (VERIFIER, None, VERIFIER, True, True),               # no method = plain
    (CHALLENGE, "S512", VERIFIER, True, False),
    (None, "S256", VERIFIER, False, False),
])
def test_verify_pkce(challenge: str | None, method: str | None, verifier: str | None, plain: bool,
                     expected: bool) -> None:
    assert verify_pkce(challenge, method, verifier, allow_plain=plain) is expected


def test_at_hash() -> None:
    digest = hashlib.sha256(b"token").digest()[:16]
    assert at_hash("token") == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_lifetimes_fall_back_to_protocol_defaults() -> None:
    config = Config()
    assert lifetimes(config).access == 3600 and lifetimes(config).refresh == 2592000
    config.oauth.server.access_token_ttl = 600
    config.oauth.server.id_token_ttl = 300
    life = lifetimes(config)
    assert (life.access, life.id_token, life.refresh) == (600, 300, 2592000)


# -- grants, in-process ------------------------------------------------------------------------
@pytest.fixture
def idp() -> IdP:
    config = Config()
    config.oauth.server.enabled = True
    config.idp.lockout_delay_ms = 0
    config.oauth.server.clients = [
        {"client_id": "web", "client_secret": "s", "redirect_uris": ["https://rp/cb"],
         "scopes": ["openid", "email", "api"]},
    ]
    h = GateHarness(config)
    assert h.server.idp is not None
    asyncio.run(h.server.idp.accounts.create("bob", "a long password", email="bob@example.com"))
    return h.server.idp


def code(idp: IdP, user: str = "bob", scope: str = "openid email") -> str:
    idp.calls("OAUTH.CODE.SET", "c-" + user + scope, "web", "https://rp/cb", user, scope,
              "CODE_CHALLENGE", CHALLENGE, "CODE_CHALLENGE_METHOD", "S256",
              "DATA", orjson.dumps({"sid": "S1", "auth_time": 1700000000}))
    return "c-" + user + scope


def active(idp: IdP, token: str) -> bool:
    return orjson.loads(idp.calls("OAUTH.TOKEN.INTROSPECT", token))["active"]


def test_code_then_refresh_rotation(idp: IdP) -> None:
    web = idp.clients.get("web")
    assert web is not None
    first = idp.tokens.authorization_code(web, code(idp), "https://rp/cb", VERIFIER)
    assert idp.keys.verify(first["id_token"])["sid"] == "S1"
    second = idp.tokens.refresh_token(web, first["refresh_token"], None)
    assert not active(idp, first["refresh_token"]) and not active(idp, first["access_token"])
    assert active(idp, second["refresh_token"])
    with pytest.raises(GrantError) as e:
        idp.tokens.refresh_token(web, first["refresh_token"], None)
    assert e.value.error == "invalid_grant"
    assert not active(idp, second["refresh_token"]) and not active(idp, second["access_token"])


def test_disabled_user_cannot_refresh(idp: IdP) -> None:
    web = idp.clients.get("web")
    assert web is not None
    first = idp.tokens.authorization_code(web, code(idp), "https://rp/cb", VERIFIER)
    idp.accounts.set_disabled("bob", True)
    with pytest.raises(GrantError) as e:
        idp.tokens.refresh_token(web, first["refresh_token"], None)
    assert e.value.error == "invalid_grant" and "already used" not in e.value.description
    assert not active(idp, first["refresh_token"])
    claims, error = idp.tokens.userinfo(first["access_token"])
    assert claims is None and error == "invalid_token"


def test_code_record_fields_at_top_level(idp: IdP) -> None:
    """auth_time/sid may sit in the code record itself as well as in its data."""
    web = idp.clients.get("web")
    assert web is not None
    idp.calls("OAUTH.CODE.SET", "plain-code", "web", "https://rp/cb", "bob", "openid")
    out = idp.tokens.authorization_code(web, "plain-code", "https://rp/cb", None)
    claims = idp.keys.verify(out["id_token"])
    assert claims["sub"] == "bob" and "sid" not in claims and "auth_time" not in claims


def test_refresh_checks_the_account_each_time(idp: IdP) -> None:
    """An account disabled behind the provider's back (its record edited directly, no
    revocation) still cannot refresh, and its grant is ended."""
    web = idp.clients.get("web")
    assert web is not None
    first = idp.tokens.authorization_code(web, code(idp), "https://rp/cb", VERIFIER)
    idp.calls("HSET", "idp:user:bob", "disabled", "1")
    assert active(idp, first["refresh_token"])
    with pytest.raises(GrantError, match="disabled"):
        idp.tokens.refresh_token(web, first["refresh_token"], None)
    assert not active(idp, first["refresh_token"]) and not active(idp, first["access_token"])
