"""CAS 2.0 proxy authentication: pgtUrl callback, /cas/proxy, /cas/proxyValidate."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import redis
from cas import CASClient, CASError

from tests.conftest import RunningServer
from tests.integration.cas.conftest import Receiver, sign_in, ticket_of

NS = {"cas": "http://www.yale.edu/tp/cas"}


def _pgt_for(receiver: Receiver, iou: str) -> str:
    hits = receiver.wait(lambda h: h.path == "/pgt" and h.query.get("pgtIou") == [iou])
    return hits[0].query["pgtId"][0]


def test_proxy_flow_with_python_cas(cas_server: RunningServer, browser: httpx.Client,
                                    receiver: Receiver, r: redis.Redis) -> None:
    portal, backend = receiver.url("/portal"), receiver.url("/backend")
    st = ticket_of(sign_in(browser, portal), portal)
    proxy = CASClient(version=3, service_url=portal, server_url=f"{cas_server.http_url}/cas/",
                      proxy_callback=receiver.url("/pgt"))
    user, _, iou = proxy.verify_ticket(st)
    assert user == "alice"
    assert iou and iou.startswith("PGTIOU-")
    pgt = _pgt_for(receiver, iou)  # delivered before the validation answered
    assert pgt.startswith("PGT-") and r.exists(f"cas:pgt:{pgt}") == 1

    target = CASClient(version=3, service_url=backend, server_url=f"{cas_server.http_url}/cas/")
    pt = target.get_proxy_ticket(pgt)
    assert pt.startswith("PT-")

    # A proxy ticket is refused by /serviceValidate…
    refused = browser.get("/cas/p3/serviceValidate", params={"ticket": pt, "service": backend})
    node = ET.fromstring(refused.content).find("cas:authenticationFailure", NS)
    assert node is not None and node.attrib["code"] == "INVALID_TICKET_SPEC"
    # …and accepted, once, by /proxyValidate, with the proxy chain.
    target.url_suffix = "p3/proxyValidate"
    user, attributes, _ = target.verify_ticket(pt)
    assert user == "alice"
    assert attributes["email"] == "alice@example.com"
    raw = browser.get("/cas/proxyValidate", params={"ticket": pt, "service": backend})
    assert ET.fromstring(raw.content).find("cas:authenticationFailure", NS) is not None

    pt2 = target.get_proxy_ticket(pgt)
    doc = browser.get("/cas/proxyValidate", params={"ticket": pt2, "service": backend})
    ok = ET.fromstring(doc.content).find("cas:authenticationSuccess", NS)
    assert ok is not None
    assert [p.text for p in ok.findall("cas:proxies/cas:proxy", NS)] == [receiver.url("/pgt")]
    # the proxyValidate endpoint also validates plain service tickets
    st2 = ticket_of(browser.get("/cas/login", params={"service": portal}), portal)
    doc = browser.get("/cas/p3/proxyValidate", params={"ticket": st2, "service": portal})
    assert ET.fromstring(doc.content).findtext("cas:authenticationSuccess/cas:user",
                                               namespaces=NS) == "alice"


def test_failed_callback_gives_no_iou_and_no_pgt(browser: httpx.Client, receiver: Receiver,
                                                 r: redis.Redis) -> None:
    service = receiver.url("/portal-fail")
    st = ticket_of(sign_in(browser, service), service)
    doc = browser.get("/cas/serviceValidate", params={"ticket": st, "service": service,
                                                      "pgtUrl": receiver.url("/fail/pgt")})
    ok = ET.fromstring(doc.content).find("cas:authenticationSuccess", NS)
    assert ok is not None
    assert ok.find("cas:proxyGrantingTicket", NS) is None
    hit = receiver.wait(lambda h: h.path == "/fail/pgt")[-1]
    assert r.exists(f"cas:pgt:{hit.query['pgtId'][0]}") == 0


def test_proxy_failures(browser: httpx.Client, receiver: Receiver) -> None:
    def code(params: dict[str, str]) -> str:
        doc = browser.get("/cas/proxy", params=params)
        assert doc.status_code == 200
        node = ET.fromstring(doc.content).find("cas:proxyFailure", NS)
        assert node is not None, doc.text
        return node.attrib["code"]

    assert code({}) == "INVALID_REQUEST"
    assert code({"pgt": "PGT-1-nope"}) == "INVALID_REQUEST"
    assert code({"pgt": "PGT-1-nope", "targetService": receiver.url("/t")}) == "INVALID_TICKET"
    assert code({"pgt": "ST-1-nope", "targetService": receiver.url("/t")}) == "INVALID_TICKET"
    assert code({"pgt": "PGT-1-x", "targetService": "https://evil.example/"}) == "UNAUTHORIZED_SERVICE"
    target = CASClient(version=3, service_url=receiver.url("/t"),
                       server_url=f"{browser.base_url}/cas/")
    try:
        target.get_proxy_ticket("PGT-1-nope")
    except CASError:
        pass
    else:
        raise AssertionError("python-cas accepted a proxy failure")
    doc = browser.get("/cas/proxy", params={"pgt": "PGT-1-n", "targetService": receiver.url("/t"),
                                            "format": "JSON"})
    assert doc.json()["serviceResponse"]["proxyFailure"]["code"] == "INVALID_TICKET"


def test_logout_kills_the_pgt(cas_server: RunningServer, browser: httpx.Client,
                              receiver: Receiver, r: redis.Redis) -> None:
    portal = receiver.url("/portal-logout")
    st = ticket_of(sign_in(browser, portal), portal)
    proxy = CASClient(version=3, service_url=portal, server_url=f"{cas_server.http_url}/cas/",
                      proxy_callback=receiver.url("/pgt"))
    _, _, iou = proxy.verify_ticket(st)
    pgt = _pgt_for(receiver, iou)
    assert browser.get("/cas/logout").status_code == 200
    assert r.exists(f"cas:pgt:{pgt}") == 0
    doc = browser.get("/cas/proxy", params={"pgt": pgt, "targetService": receiver.url("/t")})
    assert ET.fromstring(doc.content).find("cas:proxyFailure", NS) is not None


def test_pgt_url_not_allow_listed(browser: httpx.Client, receiver: Receiver) -> None:
    service = receiver.url("/portal-evil")
    st = ticket_of(sign_in(browser, service), service)
    doc = browser.get("/cas/serviceValidate", params={"ticket": st, "service": service,
                                                      "pgtUrl": "https://evil.example/cb"})
    node = ET.fromstring(doc.content).find("cas:authenticationFailure", NS)
    assert node is not None and node.attrib["code"] == "INVALID_PROXY_CALLBACK"
    assert browser.get("/cas/validate", params={"ticket": st, "service": service}).text == "no\n\n"


def test_callback_redirects_are_followed_within_the_allow_list(
        browser: httpx.Client, receiver: Receiver, r: redis.Redis) -> None:
    service = receiver.url("/portal-redir")
    st = ticket_of(sign_in(browser, service), service)
    doc = browser.get("/cas/serviceValidate", params={"ticket": st, "service": service,
                                                      "pgtUrl": receiver.url("/redir")})
    iou = ET.fromstring(doc.content).findtext("cas:authenticationSuccess/cas:proxyGrantingTicket",
                                              namespaces=NS)
    assert iou and iou.startswith("PGTIOU-")
    assert r.exists(f"cas:pgt:{_pgt_for(receiver, iou)}") == 1

    st = ticket_of(browser.get("/cas/login", params={"service": service}), service)
    doc = browser.get("/cas/serviceValidate", params={"ticket": st, "service": service,
                                                      "pgtUrl": receiver.url("/redir-away")})
    ok = ET.fromstring(doc.content).find("cas:authenticationSuccess", NS)
    assert ok is not None and ok.find("cas:proxyGrantingTicket", NS) is None
    hit = receiver.wait(lambda h: h.path == "/redir-away")[-1]
    assert r.exists(f"cas:pgt:{hit.query['pgtId'][0]}") == 0
