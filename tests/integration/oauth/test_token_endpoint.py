"""The protocol back half of the authorization server over real HTTP, against a real
``tokenginx-server`` with ``oauth.server.enabled`` and clients from a YAML file:
/oauth/token (every grant and client authentication method), ID tokens checked with
joserfc against /oauth/jwks, userinfo, introspection, revocation, discovery, key
rotation and the admin API. Codes are written with ``OAUTH.CODE.SET`` over RESP, as
the /authorize page does (its own tests drive the real browser flow)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
import yaml
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tests.conftest import RunningServer, start_tokenginx, stop_process

API_KEY = "oauth-test-api-key-0123456789"
PASSWORD = "s3cret-pass"
RP = "https://rp.example/callback?tenant=a"
SPA = "http://127.0.0.1:9999/spa/cb"
SCOPES = ["openid", "profile", "email", "phone", "api.read", "api.write"]

CLIENTS: list[dict[str, Any]] = [
    {"client_id": "web", "client_secret": "web-secret", "redirect_uris": [RP], "scopes": SCOPES},
    {"client_id": "poster", "client_secret": "poster-secret", "redirect_uris": [RP], "scopes": SCOPES,
     "token_endpoint_auth_method": "client_secret_post"},
    {"client_id": "spa", "redirect_uris": [SPA], "scopes": ["openid", "profile", "email"],
     "token_endpoint_auth_method": "none"},
    {"client_id": "ec", "client_secret": "ec-secret", "redirect_uris": [RP], "scopes": SCOPES,
     "id_token_signed_response_alg": "ES256"},
    {"client_id": "rs", "client_secret": "rs-secret", "grant_types": ["client_credentials"],
     "scopes": ["introspect"], "resource_server": True},
]


def write_config(path: str) -> None:
    config = {
        "oauth": {"server": {"enabled": True, "clients": CLIENTS}},
        "server": {"requirepass": "redis-pass"},
        "security": {"api_keys": [API_KEY]},
    }
    with open(path, "w") as f:
        yaml.safe_dump(config, f)


@pytest.fixture(scope="module")
def config_path() -> Iterator[str]:
    fd, path = tempfile.mkstemp(suffix=".yaml", prefix="tokenginx-oauth-")
    os.close(fd)
    write_config(path)
    yield path
    os.unlink(path)


@pytest.fixture(scope="module")
def srv(config_path: str) -> Iterator[RunningServer]:
    server = start_tokenginx("--config", config_path)
    yield server
    stop_process(server.proc)
    shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def http(srv: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=srv.http_url, timeout=15) as client:
        yield client


@pytest.fixture(scope="module")
def r(srv: RunningServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=srv.port, password="redis-pass", decode_responses=True, socket_timeout=10)
    yield client
    client.close()


@pytest.fixture(scope="module")
def alice(http: httpx.Client) -> str:
    body = {"username": "alice", "password": PASSWORD, "email": "alice@example.com",
            "phone": "+1 555 0100", "nickname": "Al"}
    resp = http.post("/api/v1/admin/users", json=body, headers={"X-API-Key": API_KEY})
    assert resp.status_code == 201, resp.text
    return "alice"


# -- helpers -------------------------------------------------------------------------------
def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def new_code(r: redis.Redis, client_id: str, user: str, *, redirect_uri: str = RP,
             scope: str = "openid profile email", challenge: str | None = None,
             method: str = "S256", nonce: str | None = None, sid: str | None = None,
             auth_time: int | None = None) -> str:
    code = secrets.token_urlsafe(32)
    argv: list[Any] = ["OAUTH.CODE.SET", code, client_id, redirect_uri, user, scope]
    if challenge:
        argv += ["CODE_CHALLENGE", challenge, "CODE_CHALLENGE_METHOD", method]
    if nonce:
        argv += ["NONCE", nonce]
    argv += ["DATA", json.dumps({"sid": sid, "auth_time": auth_time})]
    assert r.execute_command(*argv) in ("OK", b"OK", True)
    return code


def token(http: httpx.Client, data: dict[str, str], auth: tuple[str, str] | None = None,
          **kw: Any) -> httpx.Response:
    return http.post("/oauth/token", data=data, auth=auth, **kw)


def ok(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["pragma"] == "no-cache"
    return resp.json()


def err(resp: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == error, body
    assert body["error_description"]
    assert resp.headers["cache-control"] == "no-store"
    return body


def exchange(http: httpx.Client, r: redis.Redis, client_id: str = "web", secret: str = "web-secret",
             scope: str = "openid profile email", **code_kw: Any) -> dict[str, Any]:
    verifier, challenge = pkce()
    code = new_code(r, client_id, "alice", scope=scope, challenge=challenge, **code_kw)
    return ok(token(http, {"grant_type": "authorization_code", "code": code, "redirect_uri": RP,
                           "code_verifier": verifier}, (client_id, secret)))


def introspect(http: httpx.Client, tok: str, client: tuple[str, str] = ("rs", "rs-secret"),
               **extra: str) -> dict[str, Any]:
    return ok(http.post("/oauth/introspect", data={"token": tok, **extra}, auth=client))


def jwks(http: httpx.Client) -> KeySet:
    resp = http.get("/oauth/jwks")
    assert resp.status_code == 200
    return KeySet.import_key_set(resp.json())


def verify_id_token(http: httpx.Client, id_token: str, alg: str) -> tuple[dict[str, Any], dict[str, Any]]:
    decoded = jwt.decode(id_token, jwks(http), algorithms=[alg])
    return dict(decoded.header), dict(decoded.claims)


def at_hash(access: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(access.encode()).digest()[:16]).rstrip(b"=").decode()


# -- discovery and JWKS ----------------------------------------------------------------------
def test_discovery_document(http: httpx.Client, srv: RunningServer) -> None:
    doc = http.get("/.well-known/openid-configuration").json()
    iss = srv.http_url
    assert doc["issuer"] == iss
    assert doc["authorization_endpoint"] == f"{iss}/oauth/authorize"
    assert doc["token_endpoint"] == f"{iss}/oauth/token"
    assert doc["userinfo_endpoint"] == f"{iss}/oauth/userinfo"
    assert doc["jwks_uri"] == f"{iss}/oauth/jwks"
    assert doc["end_session_endpoint"] == f"{iss}/oauth/logout"
    assert doc["introspection_endpoint"] == f"{iss}/oauth/introspect"
    assert doc["revocation_endpoint"] == f"{iss}/oauth/revoke"
    assert doc["backchannel_logout_supported"] is True
    assert set(doc["id_token_signing_alg_values_supported"]) == {"RS256", "ES256"}
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "none"}
    assert doc["response_types_supported"] == ["code"]


def test_jwks_has_public_rs256_and_es256_keys(http: httpx.Client) -> None:
    keys = http.get("/oauth/jwks").json()["keys"]
    assert {k["alg"] for k in keys} == {"RS256", "ES256"}
    for k in keys:
        assert k["kid"] and k["use"] == "sig"
        assert "d" not in k and "p" not in k  # public halves only


# -- client_credentials and client authentication ----------------------------------------
def test_client_credentials_basic(http: httpx.Client, r: redis.Redis) -> None:
    body = ok(token(http, {"grant_type": "client_credentials", "scope": "api.read"}, ("web", "web-secret")))
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["scope"] == "api.read"
    assert "refresh_token" not in body and "id_token" not in body
    info = introspect(http, body["access_token"])
    assert info["active"] is True and info["client_id"] == "web" and "sub" not in info
    # The same token over RESP, through the SSO domain.
    assert r.execute_command("OAUTH.INTROSPECT", body["access_token"])[0] == 1


def test_client_credentials_default_scope_and_post(http: httpx.Client) -> None:
    body = ok(token(http, {"grant_type": "client_credentials", "client_id": "poster",
                           "client_secret": "poster-secret"}))
    assert body["scope"] == "api.read api.write"  # user scopes are never granted here


def test_client_credentials_scope_rules(http: httpx.Client) -> None:
    err(token(http, {"grant_type": "client_credentials", "scope": "openid"}, ("web", "web-secret")),
        400, "invalid_scope")
    err(token(http, {"grant_type": "client_credentials", "scope": "admin"}, ("web", "web-secret")),
        400, "invalid_scope")
    # A public client has no credentials to speak of.
    err(token(http, {"grant_type": "client_credentials", "client_id": "spa"}), 400, "unauthorized_client")


@pytest.mark.parametrize("case", [
    "basic-wrong-secret", "post-wrong-secret", "unknown-client", "basic-client-using-post",
    "post-client-using-basic", "confidential-without-secret", "public-with-secret", "nothing",
    "malformed-basic",
])
def test_bad_client_authentication(http: httpx.Client, case: str) -> None:
    data = {"grant_type": "client_credentials"}
    auth = None
    headers = {}
    if case == "basic-wrong-secret":
        auth = ("web", "nope")
    elif case == "post-wrong-secret":
        data |= {"client_id": "poster", "client_secret": "nope"}
    elif case == "unknown-client":
        auth = ("ghost", "web-secret")
    elif case == "basic-client-using-post":
        data |= {"client_id": "web", "client_secret": "web-secret"}
    elif case == "post-client-using-basic":
        auth = ("poster", "poster-secret")
    elif case == "confidential-without-secret":
        data |= {"client_id": "web"}
    elif case == "public-with-secret":
        data |= {"client_id": "spa", "client_secret": "x"}
    elif case == "malformed-basic":
        headers = {"Authorization": "Basic !!!"}
    resp = token(http, data, auth, headers=headers)
    err(resp, 401, "invalid_client")
    assert resp.headers["www-authenticate"].startswith("Basic")


def test_two_authentication_methods_refused(http: httpx.Client) -> None:
    resp = token(http, {"grant_type": "client_credentials", "client_secret": "web-secret"}, ("web", "web-secret"))
    err(resp, 400, "invalid_request")


def test_basic_credentials_are_form_urlencoded(http: httpx.Client) -> None:
    # RFC 6749 §2.3.1: "web" and "web-secret" need no escaping, but an escaped id must work.
    raw = base64.b64encode(b"w%65b:web-secret").decode()
    ok(token(http, {"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {raw}"}))


@pytest.mark.parametrize("grant", ["password", "implicit", "urn:ietf:params:oauth:grant-type:device_code"])
def test_unsupported_grants(http: httpx.Client, grant: str) -> None:
    data = {"grant_type": grant, "username": "alice", "password": PASSWORD}
    err(token(http, data, ("web", "web-secret")), 400, "unsupported_grant_type")


def test_malformed_token_requests(http: httpx.Client) -> None:
    err(token(http, {}, ("web", "web-secret")), 400, "invalid_request")
    err(http.post("/oauth/token", json={"grant_type": "client_credentials"}, auth=("web", "web-secret")),
        400, "invalid_request")
    err(http.post("/oauth/token", content="grant_type=client_credentials&grant_type=password",
                  headers={"Content-Type": "application/x-www-form-urlencoded"}, auth=("web", "web-secret")),
        400, "invalid_request")
    assert http.get("/oauth/token").status_code == 405
    err(token(http, {"grant_type": "authorization_code", "code": "x" * 100_000, "redirect_uri": RP},
              ("web", "web-secret")), 400, "invalid_request")


# -- authorization_code ---------------------------------------------------------------------
def test_code_flow_with_rs256_id_token(http: httpx.Client, r: redis.Redis, alice: str, srv: RunningServer) -> None:
    now = int(time.time())
    body = exchange(http, r, scope="openid profile email phone", nonce="n-123", sid="sid-1", auth_time=now)
    assert body["scope"] == "openid profile email phone"
    assert body["refresh_token"] and body["access_token"]
    header, claims = verify_id_token(http, body["id_token"], "RS256")
    assert header["alg"] == "RS256" and header["kid"]
    assert claims["iss"] == srv.http_url and claims["aud"] == "web" and claims["sub"] == "alice"
    assert claims["nonce"] == "n-123" and claims["sid"] == "sid-1" and claims["auth_time"] == now
    assert claims["at_hash"] == at_hash(body["access_token"])
    assert claims["iat"] <= time.time() + 5 < claims["exp"]
    assert claims["email"] == "alice@example.com" and claims["email_verified"] is False
    assert claims["preferred_username"] == "alice" and claims["name"] == "Al"
    assert claims["phone_number"] == "+1 555 0100"
    # The access token is in the store, filed under alice, with the browser session id.
    record = json.loads(r.execute_command("OAUTH.TOKEN.GET", body["access_token"]))
    assert record["user_id"] == "alice" and record["client_id"] == "web"
    assert record["metadata"]["sid"] == "sid-1"
    sessions = json.loads(r.execute_command("SSO.USER.SESSIONS", "alice"))
    assert any(e["id"] == body["access_token"] for e in sessions)


def test_id_token_claims_follow_scope(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    body = exchange(http, r, scope="openid")
    _, claims = verify_id_token(http, body["id_token"], "RS256")
    assert "email" not in claims and "name" not in claims and "nonce" not in claims
    no_oidc = exchange(http, r, scope="api.read")
    assert "id_token" not in no_oidc


def test_es256_client_gets_es256_id_token(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    body = exchange(http, r, client_id="ec", secret="ec-secret", nonce="n-ec")
    header, claims = verify_id_token(http, body["id_token"], "ES256")
    assert header["alg"] == "ES256" and claims["aud"] == "ec" and claims["nonce"] == "n-ec"
    with pytest.raises(JoseError):
        jwt.decode(body["id_token"], jwks(http), algorithms=["RS256"])


def test_code_post_auth_and_public_client_with_pkce(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    verifier, challenge = pkce()
    code = new_code(r, "poster", "alice", challenge=challenge)
    ok(token(http, {"grant_type": "authorization_code", "code": code, "redirect_uri": RP,
                    "code_verifier": verifier, "client_id": "poster", "client_secret": "poster-secret"}))
    verifier, challenge = pkce()
    code = new_code(r, "spa", "alice", redirect_uri=SPA, challenge=challenge)
    body = ok(token(http, {"grant_type": "authorization_code", "code": code, "redirect_uri": SPA,
                           "code_verifier": verifier, "client_id": "spa"}))
    assert body["refresh_token"]
    verify_id_token(http, body["id_token"], "RS256")


def test_public_client_needs_pkce(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    code = new_code(r, "spa", "alice", redirect_uri=SPA)
    err(token(http, {"grant_type": "authorization_code", "code": code, "redirect_uri": SPA,
                     "client_id": "spa"}), 400, "invalid_grant")


@pytest.mark.parametrize("case", ["wrong-verifier", "no-verifier", "plain-method", "verifier-without-challenge"])
def test_pkce_failures(http: httpx.Client, r: redis.Redis, alice: str, case: str) -> None:
    verifier, challenge = pkce()
    if case == "plain-method":
        code = new_code(r, "web", "alice", challenge=verifier, method="plain")
    elif case == "verifier-without-challenge":
        code = new_code(r, "web", "alice")
    else:
        code = new_code(r, "web", "alice", challenge=challenge)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": RP}
    if case != "no-verifier":
        data["code_verifier"] = pkce()[0] if case == "wrong-verifier" else verifier
    body = err(token(http, data, ("web", "web-secret")), 400, "invalid_grant")
    assert "PKCE" in body["error_description"] or "code_verifier" in body["error_description"]


def test_confidential_client_without_pkce(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    code = new_code(r, "web", "alice")
    ok(token(http, {"grant_type": "authorization_code", "code": code, "redirect_uri": RP}, ("web", "web-secret")))


def test_code_bound_to_client_and_redirect_uri(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    code = new_code(r, "web", "alice")
    err(token(http, {"grant_type": "authorization_code", "code": code, "redirect_uri": RP},
              ("ec", "ec-secret")), 400, "invalid_grant")
    code = new_code(r, "web", "alice")
    err(token(http, {"grant_type": "authorization_code", "code": code,
                     "redirect_uri": "https://rp.example/callback"}, ("web", "web-secret")), 400, "invalid_grant")
    err(token(http, {"grant_type": "authorization_code", "code": "nope", "redirect_uri": RP},
              ("web", "web-secret")), 400, "invalid_grant")


def test_code_for_unknown_or_disabled_user(http: httpx.Client, r: redis.Redis) -> None:
    code = new_code(r, "web", "nobody")
    err(token(http, {"grant_type": "authorization_code", "code": code, "redirect_uri": RP},
              ("web", "web-secret")), 400, "invalid_grant")


def test_code_reuse_revokes_what_the_first_use_issued(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    verifier, challenge = pkce()
    code = new_code(r, "web", "alice", challenge=challenge)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": RP, "code_verifier": verifier}
    first = ok(token(http, data, ("web", "web-secret")))
    assert introspect(http, first["access_token"])["active"] is True
    body = err(token(http, data, ("web", "web-secret")), 400, "invalid_grant")
    assert "already used" in body["error_description"]
    assert introspect(http, first["access_token"]) == {"active": False}
    assert introspect(http, first["refresh_token"]) == {"active": False}
    assert r.execute_command("OAUTH.INTROSPECT", first["access_token"]) == [0]
    err(token(http, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
              ("web", "web-secret")), 400, "invalid_grant")


# -- refresh_token ------------------------------------------------------------------------------
def test_refresh_rotation_and_reuse_detection(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    first = exchange(http, r, scope="openid profile email", sid="sid-rot", auth_time=1700000000)
    second = ok(token(http, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                      ("web", "web-secret")))
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == "openid profile email"
    _, claims = verify_id_token(http, second["id_token"], "RS256")
    assert claims["auth_time"] == 1700000000 and claims["sid"] == "sid-rot"
    # the presented refresh token and its access token are dead, the new pair lives
    assert introspect(http, first["refresh_token"]) == {"active": False}
    assert introspect(http, first["access_token"]) == {"active": False}
    assert introspect(http, second["access_token"])["active"] is True
    assert introspect(http, second["refresh_token"])["token_type"] == "refresh_token"
    third = ok(token(http, {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
                     ("web", "web-secret")))
    # reuse of a rotated token: invalid_grant, and the whole family goes
    body = err(token(http, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                     ("web", "web-secret")), 400, "invalid_grant")
    assert "revoked" in body["error_description"]
    for tok in (third["access_token"], third["refresh_token"]):
        assert introspect(http, tok) == {"active": False}
        info = json.loads(r.execute_command("OAUTH.TOKEN.INTROSPECT", tok))
        assert info == {"active": False}
    assert r.execute_command("OAUTH.INTROSPECT", third["access_token"]) == [0]
    err(token(http, {"grant_type": "refresh_token", "refresh_token": third["refresh_token"]},
              ("web", "web-secret")), 400, "invalid_grant")


def test_refresh_scope_narrowing_and_widening(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    first = exchange(http, r, scope="openid profile email api.read")
    narrow = ok(token(http, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                             "scope": "api.read"}, ("web", "web-secret")))
    assert narrow["scope"] == "api.read" and "id_token" not in narrow
    # the grant keeps its original scope: a later refresh may ask for all of it again
    full = ok(token(http, {"grant_type": "refresh_token", "refresh_token": narrow["refresh_token"],
                           "scope": "openid api.read email profile"}, ("web", "web-secret")))
    assert set(full["scope"].split()) == {"openid", "profile", "email", "api.read"}
    err(token(http, {"grant_type": "refresh_token", "refresh_token": full["refresh_token"],
                     "scope": "openid api.write"}, ("web", "web-secret")), 400, "invalid_scope")
    # a refused request does not rotate: the token still works
    ok(token(http, {"grant_type": "refresh_token", "refresh_token": full["refresh_token"]},
             ("web", "web-secret")))


def test_refresh_token_bound_to_client(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    first = exchange(http, r)
    err(token(http, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
              ("ec", "ec-secret")), 400, "invalid_grant")
    err(token(http, {"grant_type": "refresh_token", "refresh_token": first["access_token"]},
              ("web", "web-secret")), 400, "invalid_grant")
    ok(token(http, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
             ("web", "web-secret")))


# -- userinfo -------------------------------------------------------------------------------------
def test_userinfo(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    body = exchange(http, r, scope="openid email")
    resp = http.get("/oauth/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"sub": "alice", "email": "alice@example.com", "email_verified": False}
    resp = http.post("/oauth/userinfo", data={"access_token": body["access_token"]})
    assert resp.json()["sub"] == "alice"

    resp = http.get("/oauth/userinfo")
    err(resp, 401, "invalid_token")
    assert resp.headers["www-authenticate"].startswith("Bearer")
    resp = http.get("/oauth/userinfo", headers={"Authorization": "Bearer nope"})
    err(resp, 401, "invalid_token")
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]

    no_openid = exchange(http, r, scope="api.read")
    resp = http.get("/oauth/userinfo", headers={"Authorization": f"Bearer {no_openid['access_token']}"})
    err(resp, 403, "insufficient_scope")
    assert 'error="insufficient_scope"' in resp.headers["www-authenticate"]


# -- introspection and revocation -------------------------------------------------------------
def test_introspection_visibility(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    body = exchange(http, r, scope="openid api.read")
    own = introspect(http, body["access_token"], ("web", "web-secret"))
    assert own["active"] is True and own["sub"] == "alice" and own["username"] == "alice"
    assert own["scope"] == "openid api.read" and own["client_id"] == "web" and own["token_type"] == "Bearer"
    assert own["exp"] > own["iat"]
    # another client does not learn about it; a resource server does
    assert introspect(http, body["access_token"], ("ec", "ec-secret")) == {"active": False}
    assert introspect(http, body["access_token"])["active"] is True
    assert introspect(http, "unknown-token") == {"active": False}
    # hints only order the search
    assert introspect(http, body["refresh_token"], token_type_hint="access_token")["active"] is True
    # a public client cannot introspect; nor can anybody unauthenticated
    err(http.post("/oauth/introspect", data={"token": body["access_token"], "client_id": "spa"}),
        401, "invalid_client")
    err(http.post("/oauth/introspect", data={"token": body["access_token"]}), 401, "invalid_client")


def test_introspection_metric(http: httpx.Client, srv: RunningServer) -> None:
    introspect(http, "whatever")
    text = http.get("/metrics", headers={"X-API-Key": API_KEY}).text
    assert "oauth_introspection_duration_seconds_count" in text
    assert 'oauth_tokens_issued_total{client_id="web",grant_type="client_credentials"}' in text


def test_revocation(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    body = exchange(http, r)
    # another client's revocation is a silent no-op
    resp = http.post("/oauth/revoke", data={"token": body["access_token"]}, auth=("ec", "ec-secret"))
    assert resp.status_code == 200 and resp.content == b""
    assert introspect(http, body["access_token"])["active"] is True
    # revoking the access token leaves the refresh token
    resp = http.post("/oauth/revoke", data={"token": body["access_token"], "token_type_hint": "access_token"},
                     auth=("web", "web-secret"))
    assert resp.status_code == 200
    assert introspect(http, body["access_token"]) == {"active": False}
    assert introspect(http, body["refresh_token"])["active"] is True
    again = ok(token(http, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                     ("web", "web-secret")))
    # revoking the refresh token takes its access token and ends the grant
    assert http.post("/oauth/revoke", data={"token": again["refresh_token"]},
                     auth=("web", "web-secret")).status_code == 200
    assert introspect(http, again["refresh_token"]) == {"active": False}
    assert introspect(http, again["access_token"]) == {"active": False}
    err(token(http, {"grant_type": "refresh_token", "refresh_token": again["refresh_token"]},
              ("web", "web-secret")), 400, "invalid_grant")
    # unknown tokens: 200 as well (RFC 7009 §2.2); bad client: 401
    assert http.post("/oauth/revoke", data={"token": "nope"}, auth=("web", "web-secret")).status_code == 200
    err(http.post("/oauth/revoke", data={"token": "nope"}, auth=("web", "bad")), 401, "invalid_client")


def test_public_client_revokes_its_own_token(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    verifier, challenge = pkce()
    code = new_code(r, "spa", "alice", redirect_uri=SPA, challenge=challenge)
    body = ok(token(http, {"grant_type": "authorization_code", "code": code, "redirect_uri": SPA,
                           "code_verifier": verifier, "client_id": "spa"}))
    assert http.post("/oauth/revoke", data={"token": body["refresh_token"], "client_id": "spa"}).status_code == 200
    assert introspect(http, body["refresh_token"]) == {"active": False}


# -- keys -------------------------------------------------------------------------------------------
def test_key_rotation_keeps_old_kid(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    before = exchange(http, r)
    old_kid = jwt.decode(before["id_token"], jwks(http)).header["kid"]
    assert http.post("/api/v1/admin/oauth/keys/rotate").status_code == 401
    resp = http.post("/api/v1/admin/oauth/keys/rotate", headers={"X-API-Key": API_KEY})
    assert resp.status_code == 200, resp.text
    new_kids = resp.json()["data"]["new"]
    assert len(new_kids) == 2 and old_kid not in new_kids
    after = exchange(http, r)
    new_kid = jwt.decode(after["id_token"], jwks(http)).header["kid"]
    assert new_kid in new_kids
    kids = [k["kid"] for k in http.get("/oauth/jwks").json()["keys"]]
    assert old_kid in kids and new_kid in kids
    assert kids.index(new_kid) < kids.index(old_kid)  # current keys first
    jwt.decode(before["id_token"], jwks(http))  # still verifiable
    listed = http.get("/api/v1/admin/oauth/keys", headers={"X-API-Key": API_KEY}).json()["data"]["keys"]
    retired = {k["kid"]: k["retired_at"] for k in listed}
    assert retired[old_kid] is not None and retired[new_kid] is None


# -- admin API for clients ----------------------------------------------------------------------
def test_admin_clients_api(http: httpx.Client) -> None:
    h = {"X-API-Key": API_KEY}
    assert http.get("/api/v1/admin/oauth/clients").status_code == 401
    listed = http.get("/api/v1/admin/oauth/clients", headers=h).json()["data"]["clients"]
    assert {c["client_id"] for c in listed} >= {"web", "spa", "rs"}
    for c in listed:
        assert "client_secret" not in c and "secret_sha256" not in c
        assert "web-secret" not in json.dumps(c) and hashlib.sha256(b"web-secret").hexdigest() not in json.dumps(c)

    resp = http.post("/api/v1/admin/oauth/clients", headers=h, json={
        "client_id": "svc", "name": "Service", "grant_types": ["client_credentials"], "scopes": ["jobs"]})
    assert resp.status_code == 201, resp.text
    secret = resp.json()["data"]["client_secret"]
    got = http.get("/api/v1/admin/oauth/clients/svc", headers=h).json()["data"]
    assert "client_secret" not in got and got["source"] == "api" and got["public"] is False
    ok(token(http, {"grant_type": "client_credentials"}, ("svc", secret)))

    again = {"grant_types": ["client_credentials"], "scopes": ["jobs"]}
    assert http.post("/api/v1/admin/oauth/clients", headers=h, json={"client_id": "svc", **again}).status_code == 409
    assert http.post("/api/v1/admin/oauth/clients", headers=h, json={"client_id": "web", **again}).status_code == 409
    bad = http.post("/api/v1/admin/oauth/clients", headers=h,
                    json={"client_id": "x", "redirect_uris": ["https://a.example/cb#frag"]})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "redirect_uris"
    bad = http.post("/api/v1/admin/oauth/clients", headers=h,
                    json={"client_id": "y", "grant_types": ["password"]})
    assert bad.status_code == 400

    assert http.delete("/api/v1/admin/oauth/clients/web", headers=h).status_code == 409
    assert http.delete("/api/v1/admin/oauth/clients/svc", headers=h).status_code == 200
    assert http.get("/api/v1/admin/oauth/clients/svc", headers=h).status_code == 404
    err(token(http, {"grant_type": "client_credentials"}, ("svc", secret)), 401, "invalid_client")


def test_admin_public_client_has_no_secret(http: httpx.Client, r: redis.Redis, alice: str) -> None:
    h = {"X-API-Key": API_KEY}
    resp = http.post("/api/v1/admin/oauth/clients", headers=h, json={
        "client_id": "mobile", "token_endpoint_auth_method": "none",
        "redirect_uris": ["com.example.app:/oauth/cb"], "scopes": ["openid"]})
    assert resp.status_code == 201, resp.text
    assert "client_secret" not in resp.json()["data"] and resp.json()["data"]["public"] is True
    verifier, challenge = pkce()
    code = new_code(r, "mobile", "alice", redirect_uri="com.example.app:/oauth/cb", scope="openid",
                    challenge=challenge)
    ok(token(http, {"grant_type": "authorization_code", "code": code, "redirect_uri": "com.example.app:/oauth/cb",
                    "code_verifier": verifier, "client_id": "mobile"}))


# -- persistence ----------------------------------------------------------------------------------
def test_keys_and_clients_survive_a_restart(config_path: str) -> None:
    first = start_tokenginx("--config", config_path)
    data_dir = first.data_dir
    try:
        with httpx.Client(base_url=first.http_url, timeout=15) as http:
            kids = {k["kid"] for k in http.get("/oauth/jwks").json()["keys"]}
            resp = http.post("/api/v1/admin/oauth/clients", headers={"X-API-Key": API_KEY},
                             json={"client_id": "kept", "grant_types": ["client_credentials"], "scopes": ["a"]})
            secret = resp.json()["data"]["client_secret"]
    finally:
        stop_process(first.proc)
    second = start_tokenginx("--config", config_path, "--data-dir", data_dir)
    try:
        with httpx.Client(base_url=second.http_url, timeout=15) as http:
            assert {k["kid"] for k in http.get("/oauth/jwks").json()["keys"]} == kids
            ok(token(http, {"grant_type": "client_credentials"}, ("kept", secret)))
    finally:
        stop_process(second.proc)
        shutil.rmtree(second.data_dir, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)


# -- tokenginx-admin clients / keys ---------------------------------------------------------------
def test_admin_cli_clients_and_keys(srv: RunningServer, http: httpx.Client,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from tokenginx.cli.admin_main import main

    base = ["--url", srv.http_url, "--api-key", API_KEY]
    assert main([*base, "clients", "create", "--id", "cli-app", "--grant", "client_credentials",
                 "--scope", "reports", "--json"]) == 0
    secret = json.loads(capsys.readouterr().out)["client_secret"]
    body = ok(token(http, {"grant_type": "client_credentials"}, ("cli-app", secret)))
    assert body["scope"] == "reports"

    assert main([*base, "clients", "create", "--id", "cli-spa", "--public", "--redirect-uri",
                 "http://127.0.0.1:5000/cb", "--scope", "openid profile"]) == 0
    out = capsys.readouterr().out
    assert "cli-spa" in out and "no secret" in out

    assert main([*base, "clients", "list"]) == 0
    out = capsys.readouterr().out
    assert "cli-app" in out and "cli-spa" in out and "web" in out and secret not in out
    assert main([*base, "clients", "show", "cli-spa"]) == 0
    assert json.loads(capsys.readouterr().out)["scopes"] == ["openid", "profile"]

    assert main([*base, "clients", "delete", "cli-app"]) == 0
    assert main([*base, "clients", "show", "cli-app"]) == 1
    assert "HTTP 404" in capsys.readouterr().err
    assert main(["--url", srv.http_url, "clients", "list"]) == 1  # no API key
    assert "HTTP 401" in capsys.readouterr().err

    assert main([*base, "keys", "list", "--json"]) == 0
    before = {k["kid"] for k in json.loads(capsys.readouterr().out)}
    assert main([*base, "keys", "rotate"]) == 0
    capsys.readouterr()
    assert main([*base, "keys", "list", "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert before < {k["kid"] for k in after}
    assert sum(1 for k in after if k["retired_at"] is None) == 2


def test_admin_endpoints_documented(http: httpx.Client) -> None:
    doc = http.get("/openapi.json").json()
    paths = doc["paths"]
    assert set(paths["/api/v1/admin/oauth/clients"]) >= {"get", "post"}
    assert set(paths["/api/v1/admin/oauth/clients/{client_id}"]) >= {"get", "delete"}
    assert "post" in paths["/api/v1/admin/oauth/keys/rotate"]


@pytest.mark.timeout(600)
def test_admin_api_fuzz(srv: RunningServer, tmp_path: Any) -> None:
    """The admin API's OpenAPI description is true: schemathesis (all checks) finds no
    schema-valid request refused, no schema-violating one accepted, no 500."""
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [str(exe), "run", f"{srv.http_url}/openapi.json", "--checks", "all",
         "--include-path-regex", "admin/oauth", "--max-examples", "25", "--seed", "7",
         "--request-timeout", "10", "--header", f"Authorization: Bearer {API_KEY}"],
        capture_output=True, text=True, timeout=500, cwd=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert srv.proc.poll() is None
