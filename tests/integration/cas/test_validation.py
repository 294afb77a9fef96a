"""Tickets from /cas/login validated by an independent CAS client (python-cas) over
CAS 1.0, 2.0 and 3.0, plus the protocol's failure responses."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import orjson
import pytest
import redis
from cas import CASClient

from tests.conftest import RunningServer
from tests.integration.cas.conftest import USERS, Receiver, sign_in, ticket_of

NS = {"cas": "http://www.yale.edu/tp/cas"}


def client(server: RunningServer, service: str, version: int, **kw: object):
    return CASClient(version=version, service_url=service,
                     server_url=f"{server.http_url}/cas/", **kw)


def failure(xml: bytes | str) -> tuple[str, str]:
    root = ET.fromstring(xml)
    assert root.tag == "{http://www.yale.edu/tp/cas}serviceResponse"
    assert len(root) == 1
    node = root.find("cas:authenticationFailure", NS)
    assert node is not None, xml
    return node.attrib["code"], node.text or ""


@pytest.mark.parametrize("version", [1, 2, 3])
def test_python_cas_validates_a_login_ticket(cas_server: RunningServer, browser: httpx.Client,
                                             receiver: Receiver, version: int) -> None:
    service = receiver.url(f"/app{version}")
    st = ticket_of(sign_in(browser, service), service)
    user, attributes, pgt_iou = client(cas_server, service, version).verify_ticket(st)
    assert user == "alice"
    assert pgt_iou is None
    if version == 1:
        assert attributes is None
    else:
        # CAS 3.0 attributes on /p3/serviceValidate (and, as CAS 3.0 servers do, on 2.0).
        assert attributes["email"] == USERS["alice"]["email"]
        assert attributes["nickname"] == USERS["alice"]["nickname"]  # <&>" escaped and back
        assert attributes["isFromNewLogin"] == "true"
        assert attributes["longTermAuthenticationRequestTokenUsed"] == "false"
        assert attributes["authenticationDate"].endswith("Z")
    # Single use: the same ticket is refused by every version.
    assert client(cas_server, service, version).verify_ticket(st)[0] is None


def test_success_document_is_cas3_xml(cas_server: RunningServer, browser: httpx.Client,
                                      receiver: Receiver) -> None:
    service = receiver.url("/doc?x=1&y=2")
    st = ticket_of(sign_in(browser, service), service)
    r = browser.get("/cas/p3/serviceValidate", params={"ticket": st, "service": service})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/xml")
    assert r.headers["cache-control"] == "no-store"
    root = ET.fromstring(r.content)
    ok = root.find("cas:authenticationSuccess", NS)
    assert ok is not None
    assert [c.tag.split("}")[1] for c in ok] == ["user", "attributes"]
    assert ok.findtext("cas:user", namespaces=NS) == "alice"
    assert b'xmlns:cas="http://www.yale.edu/tp/cas"' in r.content
    assert b"Al &lt;&amp;&gt;" in r.content


def test_sso_second_service_without_password(cas_server: RunningServer, browser: httpx.Client,
                                             receiver: Receiver) -> None:
    first, second = receiver.url("/one"), receiver.url("/two")
    ticket_of(sign_in(browser, first), first)
    r = browser.get("/cas/login", params={"service": second})
    st = ticket_of(r, second)
    user, attributes, _ = client(cas_server, second, 3).verify_ticket(st)
    assert user == "alice"
    assert attributes["isFromNewLogin"] == "false"


def test_renew_requires_a_ticket_from_credentials(cas_server: RunningServer,
                                                  browser: httpx.Client,
                                                  receiver: Receiver) -> None:
    service = receiver.url("/renew")
    fresh = ticket_of(sign_in(browser, service), service)
    r = browser.get("/cas/serviceValidate", params={"ticket": fresh, "service": service,
                                                    "renew": "true"})
    assert ET.fromstring(r.content).find("cas:authenticationSuccess", NS) is not None
    sso = ticket_of(browser.get("/cas/login", params={"service": service}), service)
    r = browser.get("/cas/serviceValidate", params={"ticket": sso, "service": service,
                                                    "renew": "true"})
    assert failure(r.content)[0] == "INVALID_TICKET_SPEC"
    r = browser.get("/cas/validate", params={"ticket": sso, "service": service})
    assert r.text == "no\n\n"  # consumed by the failed attempt


def test_wrong_service_fails_and_consumes(cas_server: RunningServer, browser: httpx.Client,
                                          receiver: Receiver) -> None:
    service = receiver.url("/right")
    st = ticket_of(sign_in(browser, service), service)
    r = browser.get("/cas/serviceValidate", params={"ticket": st, "service": receiver.url("/wrong")})
    code, message = failure(r.content)
    assert code == "INVALID_SERVICE"
    assert st in message
    # CAS 3.0 §2.5.1: the ticket is invalidated by the failed attempt.
    assert client(cas_server, service, 2).verify_ticket(st)[0] is None


def test_validate_v1_text(cas_server: RunningServer, browser: httpx.Client,
                          receiver: Receiver) -> None:
    service = receiver.url("/v1")
    st = ticket_of(sign_in(browser, service), service)
    r = browser.get("/cas/validate", params={"ticket": st, "service": service})
    assert r.text == "yes\nalice\n"
    assert r.headers["content-type"].startswith("text/plain")
    assert browser.get("/cas/validate", params={"ticket": st, "service": service}).text == "no\n\n"
    assert browser.get("/cas/validate").text == "no\n\n"


@pytest.mark.parametrize("params, code", [
    ({}, "INVALID_REQUEST"),
    ({"ticket": "ST-1-x"}, "INVALID_REQUEST"),
    ({"service": "http://127.0.0.1/a"}, "INVALID_REQUEST"),
    ({"ticket": "ST-1-unknown", "service": "http://127.0.0.1/a"}, "INVALID_TICKET"),
    ({"ticket": "XX-1-unknown", "service": "http://127.0.0.1/a"}, "INVALID_TICKET"),
    ({"ticket": "PT-1-unknown", "service": "http://127.0.0.1/a"}, "INVALID_TICKET_SPEC"),
    ({"ticket": "ST-1-x", "service": "http://127.0.0.1/a", "format": "YAML"}, "INVALID_REQUEST"),
])
def test_failure_codes(browser: httpx.Client, params: dict[str, str], code: str) -> None:
    for path in ("/cas/serviceValidate", "/cas/p3/serviceValidate"):
        r = browser.get(path, params=params)
        assert r.status_code == 200
        assert failure(r.content)[0] == code


def test_unknown_ticket_message_is_escaped(browser: httpx.Client) -> None:
    r = browser.get("/cas/serviceValidate",
                    params={"ticket": "ST-<x>&\"'", "service": "http://127.0.0.1/a"})
    code, message = failure(r.content)
    assert code == "INVALID_TICKET"
    assert "ST-<x>&\"'" in message


def test_json_format(cas_server: RunningServer, browser: httpx.Client, receiver: Receiver) -> None:
    service = receiver.url("/json")
    st = ticket_of(sign_in(browser, service), service)
    r = browser.get("/cas/p3/serviceValidate",
                    params={"ticket": st, "service": service, "format": "JSON"})
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()["serviceResponse"]["authenticationSuccess"]
    assert body["user"] == "alice"
    assert body["attributes"]["email"] == USERS["alice"]["email"]
    assert body["attributes"]["isFromNewLogin"] is True
    r = browser.get("/cas/p3/serviceValidate",
                    params={"ticket": st, "service": service, "format": "json"})
    assert orjson.loads(r.content)["serviceResponse"]["authenticationFailure"]["code"] == "INVALID_TICKET"


def test_tickets_are_visible_over_resp(cas_server: RunningServer, browser: httpx.Client,
                                       receiver: Receiver, r: redis.Redis) -> None:
    service = receiver.url("/resp")
    st = ticket_of(sign_in(browser, service, user="bob"), service)
    assert r.exists(f"cas:st:{st}") == 1
    listed = orjson.loads(r.execute_command("SSO.USER.SESSIONS", "bob"))
    kinds = {e["type"] for e in listed}
    assert {"cas_tgt", "cas_st"} <= kinds
    assert client(cas_server, service, 3).verify_ticket(st)[0] == "bob"
    assert r.exists(f"cas:st:{st}") == 0


def test_metrics(cas_server: RunningServer, browser: httpx.Client, receiver: Receiver) -> None:
    service = receiver.url("/metrics")
    st = ticket_of(sign_in(browser, service), service)
    client(cas_server, service, 3).verify_ticket(st)
    text = browser.get("/metrics").text
    assert "cas_logins_total " in text
    assert 'cas_tickets_issued_total{type="ST"}' in text
    assert 'cas_tickets_issued_total{type="TGT"}' in text
    assert "cas_validation_duration_seconds_count " in text
