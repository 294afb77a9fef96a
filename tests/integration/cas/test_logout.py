"""/cas/logout: the browser login ends (OAuth tokens too), the TGT and its tickets die,
and every service that got a ticket receives a back-channel LogoutRequest."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import orjson
import pytest
import redis
from cas import CASClientV3

from tests.conftest import RunningServer, stop_process
from tests.integration.cas.conftest import (
    Receiver,
    add_users,
    csrf_of,
    sign_in,
    start_cas,
    ticket_of,
)

SAMLP = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
         "saml": "urn:oasis:names:tc:SAML:2.0:assertion"}


def _tgts(r: redis.Redis, user: str) -> list[str]:
    listed = orjson.loads(r.execute_command("SSO.USER.SESSIONS", user))
    return [e["id"] for e in listed if e["type"] == "cas_tgt"]


def test_logout_sends_slo_and_kills_the_tgt(browser: httpx.Client, receiver: Receiver,
                                            r: redis.Redis) -> None:
    one, two = receiver.url("/slo-one"), receiver.url("/slo-two?x=1")
    st1 = ticket_of(sign_in(browser, one, user="carol"), one)
    st2 = ticket_of(browser.get("/cas/login", params={"service": two}), two)
    unused = ticket_of(browser.get("/cas/login", params={"service": two}), two)
    assert len(_tgts(r, "carol")) == 1
    assert browser.get("/cas/validate", params={"ticket": st1, "service": one}).text == "yes\ncarol\n"

    out = browser.get("/cas/logout")
    assert out.status_code == 200
    assert "tokenginx_sso=" in out.headers["set-cookie"]  # cookie cleared
    assert _tgts(r, "carol") == []
    assert browser.get("/cas/validate", params={"ticket": unused, "service": two}).text == "no\n\n"

    for service, st in ((one, st1), (two, st2), (two, unused)):
        path = service.split("127.0.0.1:")[1].split("/", 1)[1].split("?")[0]

        def is_slo(h, path=path, st=st) -> bool:
            return (h.method == "POST" and h.path == "/" + path
                    and st.encode() in h.body)

        hit = receiver.wait(is_slo)[0]
        request = parse_qs(hit.body.decode())["logoutRequest"][0]
        # python-cas's own check of a LogoutRequest: SessionIndex is the ST it validated.
        assert CASClientV3.verify_logout_request(request, st)
        root = ET.fromstring(request)
        assert root.attrib["Version"] == "2.0" and root.attrib["ID"]
        assert root.findtext("saml:NameID", namespaces=SAMLP) == "carol"

    # The browser is signed out: the next login asks for credentials again.
    page = browser.get("/cas/login", params={"service": one})
    assert page.status_code == 200 and 'name="password"' in page.text


def test_logout_redirects_only_to_allowed_services(browser: httpx.Client,
                                                   receiver: Receiver) -> None:
    r = browser.get("/cas/logout", params={"service": receiver.url("/bye")})
    assert r.status_code == 302 and r.headers["location"] == receiver.url("/bye")
    r = browser.get("/cas/logout", params={"url": receiver.url("/bye2")})
    assert r.status_code == 302 and r.headers["location"] == receiver.url("/bye2")
    r = browser.get("/cas/logout", params={"service": "https://evil.example/"})
    assert r.status_code == 200 and "location" not in r.headers


def test_logout_ends_oauth_session_too(browser: httpx.Client, receiver: Receiver,
                                       r: redis.Redis) -> None:
    service = receiver.url("/shared")
    ticket_of(sign_in(browser, service), service)
    sid = browser.cookies["tokenginx_sso"].split(".")[0]
    assert r.exists(f"idp:session:{sid}") == 1
    browser.get("/cas/logout")
    assert r.exists(f"idp:session:{sid}") == 0
    page = browser.get("/cas/login", params={"service": service})
    assert page.status_code == 200 and 'name="password"' in page.text


def test_oauth_logout_ends_the_tgt(browser: httpx.Client, receiver: Receiver,
                                   r: redis.Redis) -> None:
    """The hook works both ways: OIDC RP-initiated logout destroys the CAS TGT and
    sends the CAS LogoutRequests."""
    service = receiver.url("/via-oauth-logout")
    st = ticket_of(sign_in(browser, service, user="dave"), service)
    assert _tgts(r, "dave")
    confirm = browser.get("/oauth/logout")
    assert confirm.status_code == 200
    done = browser.post("/oauth/logout", data={"csrf": csrf_of(confirm.text),
                                               "decision": "logout"})
    assert done.status_code in (200, 302, 303), done.text
    assert _tgts(r, "dave") == []
    receiver.wait(lambda h: h.method == "POST" and h.path == "/via-oauth-logout"
                  and st.encode() in h.body)


@pytest.fixture(scope="module")
def xml_slo_server() -> Iterator[RunningServer]:
    """Contract §7.2's LogoutRequest variant, and https-only proxy callbacks."""
    srv = start_cas("--set", "cas.server.slo_format=xml")
    try:
        add_users(srv)
        yield srv
    finally:
        stop_process(srv.proc)
        shutil.rmtree(srv.data_dir, ignore_errors=True)


def test_xml_slo_and_https_only_pgt_url(xml_slo_server: RunningServer,
                                        receiver: Receiver) -> None:
    with httpx.Client(base_url=xml_slo_server.http_url, timeout=15) as b:
        service = receiver.url("/xml-app")
        st = ticket_of(sign_in(b, service), service)
        doc = b.get("/cas/serviceValidate", params={"ticket": st, "service": service,
                                                    "pgtUrl": receiver.url("/pgt")})
        node = ET.fromstring(doc.content)[0]
        assert node.attrib["code"] == "INVALID_PROXY_CALLBACK"
        again = b.get("/cas/validate", params={"ticket": st, "service": service})
        assert again.text == "no\n\n"  # the refused attempt consumed the ticket
        b.get("/cas/logout")
    hit = receiver.wait(lambda h: h.path == "/xml-app/cas-logout")[0]
    assert hit.headers["Content-Type"] == "application/xml"
    root = ET.fromstring(hit.body)
    index = root.findtext("samlp:SessionIndex", namespaces=SAMLP)
    assert index and index.startswith("TGT-")


def test_require_https(receiver: Receiver) -> None:
    srv = start_cas("--set", "cas.server.require_https=true")
    try:
        with httpx.Client(base_url=srv.http_url, timeout=10) as b:
            for path in ("/cas/login", "/cas/serviceValidate", "/cas/validate", "/cas/proxy"):
                r = b.get(path)
                assert r.status_code == 403 and r.text == "HTTPS required", path
    finally:
        stop_process(srv.proc)
        shutil.rmtree(srv.data_dir, ignore_errors=True)
