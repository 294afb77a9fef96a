"""/cas/login: the shared login page, CSRF, SSO (also from an OAuth login), renew,
gateway and the service allow-list."""

from __future__ import annotations

import httpx

from tests.integration.cas.conftest import PASSWORD, Receiver, csrf_of, sign_in, ticket_of


def test_login_page_carries_the_service(browser: httpx.Client, receiver: Receiver) -> None:
    service = receiver.url("/page?a=1&b=<2>")
    r = browser.get("/cas/login", params={"service": service})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert 'action="/cas/login"' in r.text
    assert 'name="service" value="http://127.0.0.1:' in r.text
    assert "a=1&amp;b=&lt;2&gt;" in r.text
    assert 'name="password"' in r.text
    assert "tokenginx_csrf" in r.headers["set-cookie"]


def test_post_without_csrf_is_refused(browser: httpx.Client, receiver: Receiver) -> None:
    service = receiver.url("/csrf")
    browser.get("/cas/login", params={"service": service})
    r = browser.post("/cas/login", data={"username": "alice", "password": PASSWORD,
                                         "service": service})
    assert r.status_code == 400
    assert "location" not in r.headers
    r = browser.post("/cas/login", data={"username": "alice", "password": PASSWORD,
                                         "service": service, "csrf": "x" * 43})
    assert r.status_code == 400


def test_wrong_password_shows_the_form_again(browser: httpx.Client, receiver: Receiver) -> None:
    service = receiver.url("/badpw")
    r = sign_in(browser, service, password="not the password")
    assert r.status_code == 401
    assert "Invalid username or password." in r.text
    assert 'name="service"' in r.text
    assert "tokenginx_sso" not in r.headers.get("set-cookie", "")
    # and a later good password still works from that page
    r = browser.post("/cas/login", data={"csrf": csrf_of(r.text), "username": "alice",
                                         "password": PASSWORD, "service": service})
    ticket_of(r, service)


def test_login_without_service(browser: httpx.Client, receiver: Receiver) -> None:
    r = sign_in(browser, None)
    assert r.status_code == 200
    assert "signed in as alice" in r.text
    r = browser.get("/cas/login")
    assert r.status_code == 200 and "signed in as alice" in r.text
    service = receiver.url("/after")
    ticket_of(browser.get("/cas/login", params={"service": service}), service)


def test_service_not_on_the_allow_list(browser: httpx.Client) -> None:
    for bad in ("https://evil.example/app", "http://127.0.0.1.evil.example/app",
                "http://127.0.0.1@evil.example/", "javascript:alert(1)", "/relative"):
        r = browser.get("/cas/login", params={"service": bad})
        assert r.status_code == 403, bad
        assert "not authorized" in r.text
    r = browser.post("/cas/login", data={"service": "https://evil.example/"})
    assert r.status_code == 403
    for good in ("http://127.0.0.1", "http://127.0.0.1?x=1", "http://127.0.0.1:8000/a",
                 "http://127.0.0.1/#f"):
        r = browser.get("/cas/login", params={"service": good})
        assert r.status_code == 200 and 'name="password"' in r.text, good


def test_allow_listed_service_gets_no_ticket_when_signed_out_with_gateway(
        browser: httpx.Client, receiver: Receiver) -> None:
    service = receiver.url("/gw")
    r = browser.get("/cas/login", params={"service": service, "gateway": "true"})
    assert r.status_code == 302
    assert r.headers["location"] == service
    # renew wins over gateway (CAS 3.0 §2.1.1): the form is shown
    r = browser.get("/cas/login", params={"service": service, "gateway": "true", "renew": "true"})
    assert r.status_code == 200 and 'name="password"' in r.text


def test_renew_forces_credentials(browser: httpx.Client, receiver: Receiver) -> None:
    service = receiver.url("/renew-login")
    ticket_of(sign_in(browser, service), service)
    r = browser.get("/cas/login", params={"service": service, "renew": "true"})
    assert r.status_code == 200 and 'name="password"' in r.text
    assert 'name="renew" value="true"' in r.text
    r = browser.post("/cas/login", data={"csrf": csrf_of(r.text), "username": "alice",
                                         "password": PASSWORD, "service": service,
                                         "renew": "true"})
    st = ticket_of(r, service)
    v = browser.get("/cas/validate", params={"ticket": st, "service": service, "renew": "true"})
    assert v.text == "yes\nalice\n"


def test_sso_from_an_oauth_login(browser: httpx.Client, receiver: Receiver) -> None:
    """The browser session is the identity provider's: signing in at /oauth/login is
    enough for CAS to issue tickets without asking again."""
    page = browser.get("/oauth/login")
    assert page.status_code == 200, page.text
    r = browser.post("/oauth/login", data={"csrf": csrf_of(page.text), "username": "bob",
                                           "password": PASSWORD})
    assert r.status_code == 200, r.text
    service = receiver.url("/from-oauth")
    st = ticket_of(browser.get("/cas/login", params={"service": service}), service)
    v = browser.get("/cas/validate", params={"ticket": st, "service": service})
    assert v.text == "yes\nbob\n"


def test_ticket_keeps_the_service_query(browser: httpx.Client, receiver: Receiver) -> None:
    service = receiver.url("/q?next=%2Fhome#frag")
    r = sign_in(browser, service)
    assert r.status_code == 302
    loc = r.headers["location"]
    assert loc.startswith(receiver.url("/q?next=%2Fhome&ticket=ST-"))
    assert loc.endswith("#frag")


def test_disabled_account_gets_no_sso_ticket(browser: httpx.Client, receiver: Receiver) -> None:
    service = receiver.url("/disabled")
    ticket_of(sign_in(browser, service, user="erin"), service)
    assert browser.post("/api/v1/admin/users/erin/disable").status_code == 200
    try:
        r = browser.get("/cas/login", params={"service": service})
        assert r.status_code == 200 and 'name="password"' in r.text
    finally:
        assert browser.post("/api/v1/admin/users/erin/enable").status_code == 200
