"""An independent relying party, built with Authlib's OAuth 2.0 client (requests integration), against our
server: discovery, code + PKCE (S256) with the sign-in and consent forms posted over
real HTTP, ID-token validation against the JWKS (joserfc), userinfo, refresh with
rotation and reuse detection, introspection and revocation."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from tests.conftest import RunningServer
from tests.integration.oauth.browser_support import Browser, create_user, idp_server

SHOP_CB = "http://127.0.0.1:9/shop/auth/callback"
APP_CB = "http://127.0.0.1:9/app/callback"


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    clients = [
        {"client_id": "shop", "client_secret": "shop-secret-0123456789", "name": "Shop",
         "redirect_uris": [SHOP_CB], "scopes": ["openid", "profile", "email"]},
        {"client_id": "app", "token_endpoint_auth_method": "none", "name": "Mobile app",
         "redirect_uris": [APP_CB], "scopes": ["openid", "profile"],
         "id_token_signed_response_alg": "ES256"},
    ]
    with idp_server(clients) as s:
        create_user(s, "alice", email="alice@example.com", nickname="Alice")
        yield s


@pytest.fixture(scope="module")
def discovery(srv: RunningServer) -> dict:
    r = httpx.get(f"{srv.http_url}/.well-known/openid-configuration", timeout=10)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["issuer"] == srv.http_url
    assert "S256" in doc["code_challenge_methods_supported"]
    return doc


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: the left half of SHA-256 (RS256 and ES256 alike)."""
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def validate_id_token(id_token: str, discovery: dict, client_id: str, nonce: str,
                      access_token: str, alg: str) -> dict:
    jwks = KeySet.import_key_set(httpx.get(discovery["jwks_uri"], timeout=10).json())
    token = jwt.decode(id_token, jwks, algorithms=[alg])
    assert token.header["alg"] == alg and token.header["kid"]
    JWTClaimsRegistry(
        iss={"essential": True, "value": discovery["issuer"]},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    ).validate(token.claims)
    assert token.claims["at_hash"] == at_hash(access_token)
    assert abs(token.claims["auth_time"] - time.time()) < 120
    return token.claims


def front_channel(srv: RunningServer, url: str, username: str = "alice") -> str:
    """The user in a browser: sign in, allow; returns where the browser was sent."""
    browser = Browser(srv)
    try:
        r = browser.http.get(url)
        assert r.status_code == 200, r.text[:300]
        r = browser.sign_in(r, username)
        if r.status_code == 200:
            r = browser.consent(r)
        assert r.status_code in (302, 303), r.text[:300]
        return r.headers["location"]
    finally:
        browser.close()


def test_confidential_rp_full_lifecycle(srv: RunningServer, discovery: dict) -> None:
    rp = OAuth2Session(client_id="shop", client_secret="shop-secret-0123456789",
                      scope="openid profile email", redirect_uri=SHOP_CB,
                      code_challenge_method="S256",
                      token_endpoint_auth_method="client_secret_basic")
    try:
        verifier, nonce = generate_token(48), generate_token(20)
        url, state = rp.create_authorization_url(discovery["authorization_endpoint"],
                                                 code_verifier=verifier, nonce=nonce)
        callback = front_channel(srv, url)
        assert callback.startswith(SHOP_CB)

        # Authlib checks the state and exchanges the code with the verifier.
        token = rp.fetch_token(discovery["token_endpoint"], authorization_response=callback,
                               state=state, code_verifier=verifier)
        assert token["token_type"].lower() == "bearer" and token["expires_in"] > 0
        claims = validate_id_token(token["id_token"], discovery, "shop", nonce,
                                   token["access_token"], "RS256")
        assert claims["sub"] == "alice"
        rp.token = token

        info = rp.get(discovery["userinfo_endpoint"])
        assert info.status_code == 200, info.text
        assert info.json()["sub"] == "alice" and info.json()["email"] == "alice@example.com"

        seen = rp.introspect_token(discovery["introspection_endpoint"],
                                   token=token["access_token"]).json()
        assert seen["active"] is True and seen["client_id"] == "shop" and seen["sub"] == "alice"

        # Refresh rotates the refresh token.
        first_refresh = token["refresh_token"]
        fresh = rp.refresh_token(discovery["token_endpoint"], refresh_token=first_refresh)
        assert fresh["access_token"] != token["access_token"]
        assert fresh["refresh_token"] and fresh["refresh_token"] != first_refresh

        # Revocation (RFC 7009) of the new access token.
        r = rp.revoke_token(discovery["revocation_endpoint"], token=fresh["access_token"],
                            token_type_hint="access_token")
        assert r.status_code == 200
        assert rp.introspect_token(discovery["introspection_endpoint"],
                                   token=fresh["access_token"]).json() == {"active": False}
        rp.token = fresh
        assert rp.get(discovery["userinfo_endpoint"]).status_code == 401

        # Presenting the rotated refresh token again is reuse: the family is revoked.
        with pytest.raises(OAuthError) as replay:
            rp.refresh_token(discovery["token_endpoint"], refresh_token=first_refresh)
        assert replay.value.error == "invalid_grant"
        with pytest.raises(OAuthError) as family:
            rp.refresh_token(discovery["token_endpoint"], refresh_token=fresh["refresh_token"])
        assert family.value.error == "invalid_grant"
        assert rp.introspect_token(discovery["introspection_endpoint"],
                                   token=fresh["refresh_token"]).json() == {"active": False}
    finally:
        rp.close()


def test_public_rp_with_pkce_and_es256(srv: RunningServer, discovery: dict) -> None:
    rp = OAuth2Session(client_id="app", scope="openid profile", redirect_uri=APP_CB,
                      code_challenge_method="S256", token_endpoint_auth_method="none")
    try:
        verifier, nonce = generate_token(64), generate_token(20)
        url, state = rp.create_authorization_url(discovery["authorization_endpoint"],
                                                 code_verifier=verifier, nonce=nonce)
        callback = front_channel(srv, url)
        # With another verifier the code is useless (RFC 7636 §4.6)...
        with pytest.raises(OAuthError) as missing:
            rp.fetch_token(discovery["token_endpoint"], authorization_response=callback,
                           state=state, code_verifier=generate_token(48))
        assert missing.value.error == "invalid_grant"
        # ...so the user signs in again, and with the verifier it works.
        url, state = rp.create_authorization_url(discovery["authorization_endpoint"],
                                                 code_verifier=verifier, nonce=nonce)
        callback = front_channel(srv, url)
        token = rp.fetch_token(discovery["token_endpoint"], authorization_response=callback,
                               state=state, code_verifier=verifier)
        validate_id_token(token["id_token"], discovery, "app", nonce, token["access_token"],
                          "ES256")
        rp.token = token
        assert rp.get(discovery["userinfo_endpoint"]).json()["sub"] == "alice"

        # A second exchange of the same code fails, and revokes what the first issued
        # (RFC 6749 §4.1.2).
        with pytest.raises(OAuthError) as reuse:
            rp.fetch_token(discovery["token_endpoint"], authorization_response=callback,
                           state=state, code_verifier=verifier)
        assert reuse.value.error == "invalid_grant"
        rp.token = token
        assert rp.get(discovery["userinfo_endpoint"]).status_code == 401
    finally:
        rp.close()
