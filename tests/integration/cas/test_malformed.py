"""Hostile or broken input never makes a CAS endpoint answer 500 or leave its format."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest

from tests.integration.cas.conftest import Receiver

ENDPOINTS = ("/cas/serviceValidate", "/cas/p3/serviceValidate", "/cas/proxyValidate",
             "/cas/p3/proxyValidate", "/cas/proxy")
NASTY = [
    "", " ", "\x00", "ST-\x00\x01", "ST-" + "A" * 5000, "<cas:user>x</cas:user>", "]]>",
    "ST-1-\ud7ff", "%ZZ", "ST-1-é漢字", "PGT-1-x&targetService=x", "\r\nSet-Cookie: a=b",
    "http://127.0.0.1/" + "a" * 9000, "http://127.0.0.1:99999/x", "http://[::1", "ftp://127.0.0.1/",
]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_xml_endpoints_answer_xml(browser: httpx.Client, path: str) -> None:
    for value in NASTY:
        for params in ({"ticket": value, "service": value, "pgtUrl": value},
                       {"ticket": "ST-1-x", "service": value},
                       {"pgt": value, "targetService": value},
                       {"ticket": value, "service": "http://127.0.0.1/a", "format": value}):
            r = browser.get(path, params=params)
            assert r.status_code == 200, (path, params, r.text)
            root = ET.fromstring(r.content)  # well-formed, whatever was echoed
            assert root.tag == "{http://www.yale.edu/tp/cas}serviceResponse"
            assert root[0].tag.endswith(("Failure",)), r.text


def test_raw_query_strings(browser: httpx.Client) -> None:
    for raw in ("ticket=%FF%FE&service=%C0%AF", "ticket&service", "ticket=a&ticket=b&service=",
                "%%%", "service=http%3A%2F%2F127.0.0.1%2Fa&ticket=ST-1-%00"):
        for path in (*ENDPOINTS, "/cas/validate", "/cas/login", "/cas/logout"):
            r = browser.get(f"{path}?{raw}")
            assert r.status_code < 500, (path, raw, r.status_code, r.text[:300])


def test_login_post_garbage(browser: httpx.Client, receiver: Receiver) -> None:
    cases = [
        {"content": b"\xff\xfe\x00garbage", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"content": b"--x\r\nnot multipart", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
        {"content": b"{}", "headers": {"Content-Type": "application/json"}},
        {"data": {"csrf": "a" * 10000, "username": "\x00", "password": "p",
                  "service": receiver.url("/x")}},
        {"files": {"username": ("u.txt", b"alice"), "password": ("p.txt", b"pw")}},
    ]
    for kw in cases:
        r = browser.post("/cas/login", **kw)
        assert r.status_code in (400, 403, 415), (kw, r.status_code, r.text[:300])


def test_validate_v1_nasty(browser: httpx.Client) -> None:
    for value in NASTY:
        r = browser.get("/cas/validate", params={"ticket": value, "service": value})
        assert r.status_code == 200 and r.text == "no\n\n"


def test_login_nasty_service(browser: httpx.Client) -> None:
    for value in NASTY:
        r = browser.get("/cas/login", params={"service": value, "renew": value, "gateway": value})
        assert r.status_code in (200, 403), (value, r.status_code)
        r = browser.get("/cas/logout", params={"service": value})
        assert r.status_code == 200, value
