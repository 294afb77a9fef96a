"""The browser side of the authorization server over real HTTP: /oauth/authorize errors
(shown vs redirected), sign-in and consent forms with CSRF, SSO across clients, and
RP-initiated logout with token revocation and back-channel logout tokens."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
import redis
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import RunningServer
from tests.integration.oauth.browser_support import (
    PASSWORD,
    Browser,
    Receiver,
    create_user,
    idp_server,
    only_form,
    pkce_pair,
    query,
)

WEB_CB = "http://127.0.0.1:9/web/callback"
WEB_BYE = "http://127.0.0.1:9/web/signed-out"
OTHER_CB = "http://127.0.0.1:9/other/callback"
OTHER_BYE = "http://127.0.0.1:9/other/bye"
SPA_CB = "http://127.0.0.1:9/spa/callback?tenant=a"
M2M_CB = "http://127.0.0.1:9/m2m/callback"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rp = Receiver()
    yield rp
    rp.close()


@pytest.fixture(scope="module")
def srv(receiver: Receiver) -> Iterator[RunningServer]:
    clients = [
        {"client_id": "web", "client_secret": "web-secret", "name": "Web <Shop>",
         "redirect_uris": [WEB_CB, WEB_BYE], "scopes": ["openid", "profile", "email"],
         "backchannel_logout_uri": receiver.url},
        {"client_id": "other", "client_secret": "other-secret", "name": "Other App",
         "redirect_uris": [OTHER_CB], "post_logout_redirect_uris": [OTHER_BYE],
         "scopes": ["openid", "profile"]},
        {"client_id": "spa", "token_endpoint_auth_method": "none", "redirect_uris": [SPA_CB],
         "scopes": ["openid"]},
        {"client_id": "m2m", "client_secret": "m2m-secret", "redirect_uris": [M2M_CB],
         "grant_types": ["client_credentials"], "scopes": ["openid"]},
    ]
    with idp_server(clients, lockout_threshold=3, lockout_ip_threshold=1000) as s:
        for name in ("alice", "bob", "carol", "dave", "erin", "mallory"):
            create_user(s, name, email=f"{name}@example.com")
        yield s


@pytest.fixture
def browser(srv: RunningServer) -> Iterator[Browser]:
    b = Browser(srv)
    yield b
    b.close()


def web(**extra: str) -> dict[str, str]:
    return {"client_id": "web", "redirect_uri": WEB_CB, "response_type": "code",
            "scope": "openid profile", "state": "st-123", **extra}


def exchange(srv: RunningServer, code: str, client: str = "web", redirect_uri: str = WEB_CB) -> dict:
    r = httpx.post(f"{srv.http_url}/oauth/token", auth=(client, f"{client}-secret"),
                   data={"grant_type": "authorization_code", "code": code,
                         "redirect_uri": redirect_uri}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def introspect(srv: RunningServer, token: str, client: str = "web") -> dict:
    r = httpx.post(f"{srv.http_url}/oauth/introspect", auth=(client, f"{client}-secret"),
                   data={"token": token}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


# -- errors that are shown, never redirected -------------------------------------------------
@pytest.mark.parametrize("params", [
    {"client_id": "nobody", "redirect_uri": WEB_CB, "response_type": "code"},
    {"redirect_uri": WEB_CB, "response_type": "code"},
    {"client_id": "web", "response_type": "code"},
    {"client_id": "web", "redirect_uri": WEB_CB + "/", "response_type": "code"},
    {"client_id": "web", "redirect_uri": "https://evil.example/cb", "response_type": "code"},
    {"client_id": "spa", "redirect_uri": "http://127.0.0.1:9/spa/callback", "response_type": "code"},
    {"client_id": "spa", "redirect_uri": SPA_CB + "&x=1", "response_type": "code"},
])
def test_unknown_client_or_unregistered_redirect_uri_is_shown(browser: Browser, params) -> None:
    r = browser.authorize(**params, state="s")
    assert r.status_code == 400
    assert "location" not in r.headers
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "<form" not in r.text


def test_repeated_client_id_is_shown(browser: Browser) -> None:
    r = browser.http.get("/oauth/authorize?client_id=web&client_id=other&redirect_uri="
                         + httpx.URL(WEB_CB).raw_path.decode() + "&response_type=code")
    assert r.status_code == 400 and "location" not in r.headers


# -- errors that go back to the client ----------------------------------------------------------
@pytest.mark.parametrize(("params", "error"), [
    (web(response_type="token"), "unsupported_response_type"),
    (web(response_type="id_token token"), "unsupported_response_type"),
    ({k: v for k, v in web().items() if k != "response_type"}, "invalid_request"),
    (web(scope="openid admin"), "invalid_scope"),
    (web(scope="openid email phone"), "invalid_scope"),
    (web(code_challenge_method="S256"), "invalid_request"),
    (web(code_challenge=pkce_pair()[1], code_challenge_method="plain"), "invalid_request"),
    (web(code_challenge="too-short", code_challenge_method="S256"), "invalid_request"),
    (web(max_age="soon"), "invalid_request"),
    (web(prompt="none login"), "invalid_request"),
    (web(prompt="none"), "login_required"),
    ({"client_id": "spa", "redirect_uri": SPA_CB, "response_type": "code", "scope": "openid",
      "state": "st-123"}, "invalid_request"),
    ({"client_id": "m2m", "redirect_uri": M2M_CB, "response_type": "code", "scope": "openid",
      "state": "st-123"}, "unauthorized_client"),
])
def test_errors_are_redirected_with_state_and_iss(browser: Browser, srv: RunningServer,
                                                   params, error) -> None:
    r = browser.authorize(**params)
    assert r.status_code == 302, r.text[:300]
    location = r.headers["location"]
    assert location.startswith(params["redirect_uri"].split("?")[0])
    q = query(location)
    assert q["error"] == error
    assert q["error_description"]
    assert q["state"] == "st-123"
    assert q["iss"] == srv.http_url


def test_redirect_keeps_the_registered_query(browser: Browser) -> None:
    r = browser.authorize(client_id="spa", redirect_uri=SPA_CB, response_type="token", state="x")
    q = query(r.headers["location"])
    assert q["tenant"] == "a" and q["error"] == "unsupported_response_type"


# -- sign-in page and CSRF ------------------------------------------------------------------------
def test_login_page_is_a_protected_form_carrying_the_request(browser: Browser) -> None:
    r = browser.authorize(**web(nonce="n-1"))
    assert r.status_code == 200
    assert r.headers["x-frame-options"] == "DENY"
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script" not in csp
    assert r.headers["cache-control"] == "no-store"
    assert "<script" not in r.text
    form = only_form(r)
    assert form.action == "/oauth/login"
    assert {"username", "password", "csrf"} <= set(form.fields)
    assert form.fields["client_id"] == "web" and form.fields["nonce"] == "n-1"
    # Signed double submit: the cookie is a nonce, the field a timestamped MAC of it.
    nonce, field = browser.http.cookies["tokenginx_csrf"], form.fields["csrf"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", nonce)
    assert re.fullmatch(r"\d{10}\.[0-9a-f]{64}", field)


def test_output_is_escaped(browser: Browser) -> None:
    r = browser.authorize(**web(login_hint='"><script>alert(1)</script>'))
    assert "<script>alert" not in r.text
    assert "&lt;script&gt;" in r.text
    assert only_form(r).fields["username"] == '"><script>alert(1)</script>'


@pytest.mark.parametrize("csrf", [None, "", "forged-token-forged-token-forged-token-00"])
def test_login_without_the_right_csrf_token_is_refused(browser: Browser, csrf) -> None:
    form = only_form(browser.authorize(**web()))
    data = {**form.fields, "username": "alice", "password": PASSWORD}
    if csrf is None:
        del data["csrf"]
    else:
        data["csrf"] = csrf
    r = browser.http.post("/oauth/login", data=data)
    assert r.status_code == 400
    assert "tokenginx_sso" not in r.headers.get("set-cookie", "")


def test_an_attacker_chosen_cookie_and_field_pair_is_refused(browser: Browser) -> None:
    # A plain double submit let any equal pair through: cookie "attacker", field "attacker".
    form = only_form(browser.authorize(**web()))
    data = {**form.fields, "username": "alice", "password": PASSWORD}
    chosen = "attacker-chosen-nonce-attacker-chosen-nonce"
    for field in (chosen, form.fields["csrf"]):
        browser.http.cookies.set("tokenginx_csrf", chosen, domain=browser.http.base_url.host)
        r = browser.http.post("/oauth/login", data={**data, "csrf": field})
        assert r.status_code == 400, field
        assert "tokenginx_sso" not in r.headers.get("set-cookie", "")


def test_a_field_made_for_another_browser_is_refused(browser: Browser, srv: RunningServer) -> None:
    other = Browser(srv)
    other_form = only_form(other.authorize(**web()))
    only_form(browser.authorize(**web()))  # this browser has its own nonce
    data = {**other_form.fields, "username": "alice", "password": PASSWORD}
    r = browser.http.post("/oauth/login", data=data)
    assert r.status_code == 400
    # ... and in its own browser the same form signs in.
    signed_in = other.http.post("/oauth/login", data=data)
    other.close()
    assert signed_in.status_code in (200, 302, 303)
    assert "tokenginx_sso" in signed_in.headers.get("set-cookie", "")


def test_login_from_another_origin_is_refused(browser: Browser) -> None:
    form = only_form(browser.authorize(**web()))
    r = browser.http.post("/oauth/login", data={**form.fields, "username": "alice",
                                                "password": PASSWORD},
                          headers={"Origin": "https://evil.example"})
    assert r.status_code == 400


def test_wrong_password_shows_the_form_again_with_a_generic_message(browser: Browser) -> None:
    r = browser.sign_in(browser.authorize(**web()), "alice", "wrong password!")
    assert r.status_code == 401
    assert "Invalid username or password" in r.text
    form = only_form(r)
    assert form.fields["username"] == "alice" and form.fields["client_id"] == "web"
    unknown = browser.sign_in(browser.authorize(**web()), "nobody-here", "wrong password!")
    assert "Invalid username or password" in unknown.text  # no hint that the user is unknown


def test_lockout_shows_the_wait(browser: Browser) -> None:
    for _ in range(3):
        r = browser.sign_in(browser.authorize(**web()), "mallory", "not the password")
    r = browser.sign_in(browser.authorize(**web()), "mallory")  # right password, locked
    assert r.status_code == 429
    assert "Try again in 15 minutes" in r.text
    assert int(r.headers["retry-after"]) > 800


# -- the happy path, consent and SSO ----------------------------------------------------------------
def test_login_consent_code_and_sso_to_a_second_client(browser: Browser, srv: RunningServer) -> None:
    verifier, challenge = pkce_pair()
    r = browser.authorize(**web(nonce="n-42", code_challenge=challenge, code_challenge_method="S256"))
    r = browser.sign_in(r, "alice")
    assert r.status_code == 200, r.text[:300]
    assert "Web &lt;Shop&gt;" in r.text  # the consent page names the client, escaped
    assert "set-cookie" in r.headers and "HttpOnly" in r.headers["set-cookie"]
    sso_cookie = browser.http.cookies["tokenginx_sso"]
    r = browser.consent(r)
    assert r.status_code == 303
    q = query(r.headers["location"])
    assert q["state"] == "st-123" and q["iss"] == srv.http_url and len(q["code"]) >= 43

    tokens = httpx.post(f"{srv.http_url}/oauth/token", auth=("web", "web-secret"), data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": WEB_CB,
        "code_verifier": verifier}, timeout=10)
    assert tokens.status_code == 200, tokens.text
    claims = jwt.decode(tokens.json()["id_token"],
                        KeySet.import_key_set(httpx.get(f"{srv.http_url}/oauth/jwks").json())).claims
    assert claims["sub"] == "alice" and claims["nonce"] == "n-42" and claims["aud"] == "web"
    assert abs(claims["auth_time"] - time.time()) < 60 and claims["sid"]

    # Consent is remembered: the same request now goes straight back with a code.
    again = browser.authorize(**web())
    assert again.status_code == 302 and "code" in query(again.headers["location"])

    # SSO: another client asks only for consent, no password.
    other = browser.authorize(client_id="other", redirect_uri=OTHER_CB, response_type="code",
                              scope="openid", state="o-1")
    assert other.status_code == 200
    assert "password" not in only_form(other).fields
    r = browser.consent(other)
    q2 = query(r.headers["location"])
    assert q2["state"] == "o-1" and "code" in q2
    assert browser.http.cookies["tokenginx_sso"] == sso_cookie
    other_claims = jwt.decode(exchange(srv, q2["code"], "other", OTHER_CB)["id_token"],
                              KeySet.import_key_set(httpx.get(f"{srv.http_url}/oauth/jwks").json())).claims
    assert other_claims["sid"] == claims["sid"]  # one browser session behind both


def test_prompt_none_after_login_and_consent_required(browser: Browser) -> None:
    browser.code_for("bob", **web())
    r = browser.authorize(**web(prompt="none"))
    assert r.status_code == 302 and "code" in query(r.headers["location"])
    r = browser.authorize(client_id="other", redirect_uri=OTHER_CB, response_type="code",
                          scope="openid", state="s", prompt="none")
    assert query(r.headers["location"])["error"] == "consent_required"


@pytest.mark.parametrize("extra", [{"prompt": "login"}, {"max_age": "0"}])
def test_prompt_login_and_max_age_ask_for_the_password_again(browser: Browser, srv: RunningServer,
                                                             extra) -> None:
    before = exchange(srv, browser.code_for("carol", **web())["code"])
    old_cookie = browser.http.cookies["tokenginx_sso"]
    time.sleep(1.1)
    r = browser.authorize(**web(**extra))
    assert r.status_code == 200 and "password" in only_form(r).fields
    r = browser.sign_in(r, "carol")
    assert r.status_code == 303 and "code" in query(r.headers["location"])
    after = exchange(srv, query(r.headers["location"])["code"])
    jwks = KeySet.import_key_set(httpx.get(f"{srv.http_url}/oauth/jwks").json())
    old, new = (jwt.decode(t["id_token"], jwks).claims for t in (before, after))
    # Re-authentication: same session, later auth_time, earlier tokens untouched...
    assert new["sid"] == old["sid"] and new["auth_time"] > old["auth_time"]
    assert introspect(srv, before["access_token"])["active"] is True
    # ...but a new cookie secret: the old cookie no longer signs anyone in.
    assert browser.http.cookies["tokenginx_sso"] != old_cookie
    stale = Browser(srv)
    try:
        stale.http.cookies.set("tokenginx_sso", old_cookie, domain="127.0.0.1")
        r = stale.authorize(**web())
        assert r.status_code == 200 and "password" in only_form(r).fields
    finally:
        stale.close()


def test_signing_in_as_someone_else_ends_the_first_session(browser: Browser,
                                                          srv: RunningServer) -> None:
    first = exchange(srv, browser.code_for("dave", **web())["code"])
    r = browser.sign_in(browser.authorize(**web(prompt="login")), "bob")
    assert r.status_code in (200, 303)
    assert introspect(srv, first["access_token"]) == {"active": False}


def test_a_password_reset_ends_the_browser_sessions_of_the_user(browser: Browser,
                                                                srv: RunningServer) -> None:
    create_user(srv, "frank")
    tokens = exchange(srv, browser.code_for("frank", **web())["code"])
    assert browser.authorize(**web()).status_code == 302  # signed in: straight to a code
    r = httpx.post(f"{srv.http_url}/api/v1/admin/users/frank/password",
                   json={"password": "a brand new passphrase"}, timeout=10)
    assert r.status_code == 200, r.text
    assert introspect(srv, tokens["access_token"]) == {"active": False}
    r = browser.authorize(**web())
    assert r.status_code == 200 and "password" in only_form(r).fields  # asked to sign in again


def test_prompt_consent_asks_again(browser: Browser) -> None:
    browser.code_for("carol", **web())
    r = browser.authorize(**web(prompt="consent"))
    assert r.status_code == 200 and ("decision", "allow") in only_form(r).buttons


def test_consent_deny_redirects_access_denied(browser: Browser, srv: RunningServer) -> None:
    r = browser.sign_in(browser.authorize(**web(scope="openid email")), "dave")
    r = browser.consent(r, "deny")
    assert r.status_code == 303
    q = query(r.headers["location"])
    assert q["error"] == "access_denied" and q["state"] == "st-123" and "code" not in q


def test_consent_post_needs_csrf_and_a_session(browser: Browser, srv: RunningServer) -> None:
    page = browser.sign_in(browser.authorize(**web(scope="openid email")), "dave")
    form = only_form(page)
    bad = browser.http.post("/oauth/consent", data={**form.fields, "csrf": "x" * 43,
                                                    "decision": "allow"})
    assert bad.status_code == 400
    stranger = Browser(srv)  # same form, other browser: no session, no CSRF cookie
    try:
        r = stranger.http.post("/oauth/consent", data={**form.fields, "decision": "allow"})
        assert r.status_code == 400 and "location" not in r.headers
    finally:
        stranger.close()


def test_a_forged_session_cookie_is_ignored(browser: Browser) -> None:
    browser.http.cookies.set("tokenginx_sso", "abc.def", domain="127.0.0.1")
    r = browser.authorize(**web())
    assert r.status_code == 200 and "password" in only_form(r).fields


# -- logout --------------------------------------------------------------------------------------
def test_rp_initiated_logout_revokes_tokens_and_notifies_back_channel(
        browser: Browser, srv: RunningServer, receiver: Receiver) -> None:
    web_tokens = exchange(srv, browser.code_for("erin", **web())["code"])
    q = browser.code_for("erin", client_id="other", redirect_uri=OTHER_CB, response_type="code",
                         scope="openid", state="o")
    other_tokens = exchange(srv, q["code"], "other", OTHER_CB)
    sid = jwt.decode(web_tokens["id_token"], KeySet.import_key_set(
        httpx.get(f"{srv.http_url}/oauth/jwks").json())).claims["sid"]
    old_cookie = browser.http.cookies["tokenginx_sso"]
    assert introspect(srv, web_tokens["access_token"])["active"] is True
    receiver.received.clear()
    receiver.event.clear()

    r = browser.http.get("/oauth/logout", params={
        "id_token_hint": web_tokens["id_token"], "post_logout_redirect_uri": WEB_BYE,
        "state": "bye-1"})
    assert r.status_code == 302, r.text[:300]
    assert query(r.headers["location"]) == {"state": "bye-1"}
    assert r.headers["location"].startswith(WEB_BYE)
    assert 'tokenginx_sso=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]

    # Every token issued under the session is gone, whichever client holds it.
    for token in (web_tokens["access_token"], web_tokens["refresh_token"]):
        assert introspect(srv, token) == {"active": False}
    for token in (other_tokens["access_token"], other_tokens["refresh_token"]):
        assert introspect(srv, token, "other") == {"active": False}

    # The back-channel receiver of "web" got a valid logout token ("other" has none).
    assert receiver.event.wait(10)
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got["content_type"][0].startswith("application/x-www-form-urlencoded")
    jwks = KeySet.import_key_set(httpx.get(f"{srv.http_url}/oauth/jwks").json())
    token = jwt.decode(got["logout_token"][0], jwks)
    assert token.header["typ"] == "logout+jwt"
    claims = token.claims
    assert claims["iss"] == srv.http_url and claims["aud"] == "web"
    assert claims["sub"] == "erin" and claims["sid"] == sid
    assert claims["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
    assert claims["jti"] and abs(claims["iat"] - time.time()) < 60
    assert "nonce" not in claims

    # The old cookie is dead even if a browser replays it.
    browser.http.cookies.clear()
    browser.http.cookies.set("tokenginx_sso", old_cookie, domain="127.0.0.1")
    r = browser.authorize(**web())
    assert r.status_code == 200 and "password" in only_form(r).fields


def test_logout_without_hint_asks_for_confirmation(browser: Browser, srv: RunningServer) -> None:
    tokens = exchange(srv, browser.code_for("bob", **web())["code"])
    page = browser.http.get("/oauth/logout")
    assert page.status_code == 200
    form = only_form(page)
    assert ("decision", "logout") in form.buttons
    assert introspect(srv, tokens["access_token"])["active"] is True  # a GET alone ends nothing

    forged = browser.http.post("/oauth/logout", data={"decision": "logout", "csrf": "y" * 43})
    assert forged.status_code == 400
    assert introspect(srv, tokens["access_token"])["active"] is True

    r = browser.submit(form, ("decision", "logout"))
    assert r.status_code == 200 and "Signed out" in r.text
    assert introspect(srv, tokens["access_token"]) == {"active": False}
    again = browser.authorize(**web())
    assert again.status_code == 200 and "password" in only_form(again).fields


def test_logout_refuses_an_unregistered_return_address(browser: Browser, srv: RunningServer) -> None:
    tokens = exchange(srv, browser.code_for("bob", **web())["code"])
    r = browser.http.get("/oauth/logout", params={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://evil.example/"})
    assert r.status_code == 400 and "location" not in r.headers
    r = browser.http.get("/oauth/logout", params={"id_token_hint": "not.a.jwt",
                                                  "post_logout_redirect_uri": WEB_BYE})
    assert r.status_code == 400 and "location" not in r.headers
    assert introspect(srv, tokens["access_token"])["active"] is True


def test_logout_returns_only_to_a_registered_post_logout_address(browser: Browser,
                                                                  srv: RunningServer) -> None:
    create_user(srv, "grace")
    other = {"client_id": "other", "redirect_uri": OTHER_CB, "response_type": "code",
             "scope": "openid", "state": "g"}
    tokens = exchange(srv, browser.code_for("grace", **other)["code"], "other", OTHER_CB)
    # A redirect URI is not a logout address once post_logout_redirect_uris are registered.
    r = browser.http.get("/oauth/logout", params={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": OTHER_CB})
    assert r.status_code == 400 and "location" not in r.headers
    assert introspect(srv, tokens["access_token"], "other")["active"] is True
    r = browser.http.get("/oauth/logout", params={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": OTHER_BYE, "state": "x"})
    assert r.status_code in (302, 303) and r.headers["location"] == OTHER_BYE + "?state=x"
    assert introspect(srv, tokens["access_token"], "other") == {"active": False}


def test_logout_by_hint_alone_ends_the_session_it_names(browser: Browser, srv: RunningServer) -> None:
    tokens = exchange(srv, browser.code_for("carol", **web())["code"])
    elsewhere = Browser(srv)  # the RP's logout call arrives without the SSO cookie
    try:
        r = elsewhere.http.get("/oauth/logout", params={"id_token_hint": tokens["id_token"]})
        assert r.status_code == 200 and "Signed out" in r.text
    finally:
        elsewhere.close()
    assert introspect(srv, tokens["access_token"]) == {"active": False}
    r = browser.authorize(**web())
    assert r.status_code == 200 and "password" in only_form(r).fields


def test_the_code_record_carries_the_request_and_the_session(browser: Browser,
                                                             srv: RunningServer) -> None:
    _, challenge = pkce_pair()
    q = browser.code_for("bob", **web(nonce="n-rec", code_challenge=challenge,
                                      code_challenge_method="S256"))
    r = redis.Redis(port=srv.port, socket_timeout=10)
    try:
        key = f"oauth:auth_code:{q['code']}"
        record = orjson.loads(r.get(key))
        assert 0 < r.ttl(key) <= 600
    finally:
        r.close()
    assert record["client_id"] == "web" and record["redirect_uri"] == WEB_CB
    assert record["user_id"] == "bob" and record["scope"] == "openid profile"
    assert record["code_challenge"] == challenge and record["code_challenge_method"] == "S256"
    assert record["nonce"] == "n-rec"
    assert record["data"]["sid"] and abs(record["data"]["auth_time"] - time.time()) < 60
