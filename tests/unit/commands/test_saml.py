"""SAML.* commands through the gate."""

from __future__ import annotations

import json

from tests.conftest import GateHarness
from tokenginx.config import Config
from tokenginx.replies import OK

T0 = 1_700_000_000
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"


def test_variant_a(gate):
    assert gate.ok("SAML.SET", "idx1", "alice@example.com", "PHNhbWw+", 1800) == OK
    assert gate.ok("SAML.GET", "idx1") == ["alice@example.com", "PHNhbWw+", T0, T0 + 1800]
    assert gate.ok("SAML.GET", "nope") is None
    assert gate.err("SAML.SET", "idx1", "n", "a", 0) == "ERR invalid expire time in 'saml.set' command"
    assert gate.err("SAML.SET", "idx1", "n", "a") == "ERR wrong number of arguments for 'saml.set' command"


def test_session_set_get_del(gate, events):
    assert gate.ok("SAML.SESSION.SET", "idx1", "alice@example.com", "PHNhbWw+",
                   "NAME_ID_FORMAT", EMAIL, "attributes", '{"groups":["a","b"]}',
                   "EXPIRES_IN", 600) == OK
    assert json.loads(gate.ok("SAML.SESSION.GET", "idx1")) == {
        "session_index": "idx1", "name_id": "alice@example.com", "name_id_format": EMAIL,
        "assertion": "PHNhbWw+", "attributes": {"groups": ["a", "b"]},
        "created_at": T0, "expires_at": T0 + 600,
    }
    assert gate.ok("SAML.GET", "idx1")[0] == "alice@example.com"  # Variant A reads it too
    events.clear()
    assert gate.ok("SAML.SESSION.DEL", "idx1") == 1
    assert ("revoked", "g", b"saml:session:idx1") in events
    assert gate.ok("SAML.SESSION.DEL", "idx1") == 0
    assert gate.ok("SAML.SESSION.GET", "idx1") is None


def test_session_default_ttl(gate):
    gate.ok("SAML.SESSION.SET", "idx1", "alice", "a")
    assert gate.ok("TTL", "saml:session:idx1") == 28800
    assert json.loads(gate.ok("SAML.SESSION.GET", "idx1"))["name_id_format"] == UNSPECIFIED


def test_session_list_by_name_id(gate):
    gate.ok("SAML.SESSION.SET", "idx1", "alice", "a1")
    gate.clock.advance(1000)
    gate.ok("SAML.SESSION.SET", "idx2", "alice", "a2")
    gate.ok("SAML.SESSION.SET", "idx3", "bob", "b1")
    gate.ok("OAUTH.TOKEN.SET", "at1", "alice", "read")  # same user, not a SAML session
    listed = json.loads(gate.ok("SAML.SESSION.LIST", "alice"))
    assert [s["session_index"] for s in listed] == ["idx1", "idx2"]
    assert listed[1]["assertion"] == "a2"
    assert gate.ok("SAML.SESSION.LIST", "nobody") == b"[]"


def test_artifact_one_use(gate, events):
    assert gate.ok("SAML.ARTIFACT.SET", "AAQAAMh48", "PHNhbWxwOlJlc3BvbnNlPg==", "EXPIRES_IN", 30) == OK
    assert gate.ok("TTL", "saml:artifact:AAQAAMh48") == 30
    events.clear()
    assert gate.ok("SAML.ARTIFACT.RESOLVE", "AAQAAMh48") == b"PHNhbWxwOlJlc3BvbnNlPg=="
    assert events[0] == ("consumed", "g", b"saml:artifact:AAQAAMh48")
    assert gate.ok("SAML.ARTIFACT.RESOLVE", "AAQAAMh48") is None


def test_logout_request(gate):
    body = {"request_id": "r1", "name_id": "alice", "session_index": "idx1", "issuer": "https://sp"}
    assert gate.ok("SAML.LOGOUT.SET", "r1", json.dumps(body)) == OK
    assert json.loads(gate.ok("SAML.LOGOUT.GET", "r1")) == body
    assert gate.ok("TTL", "saml:logout:r1") == 300
    assert gate.err("SAML.LOGOUT.SET", "r2", "[]") == "ERR invalid JSON in REQUEST: expected an object"


def test_errors(gate):
    assert gate.err("SAML.SESSION.SET", "i", "n", "a", "ATTRIBUTES", "{").startswith(
        "ERR invalid JSON in ATTRIBUTES: ")
    assert gate.err("SAML.SESSION.SET", "i", "n", "a", "TTL", "5") == "ERR syntax error"
    assert gate.err("SAML.ARTIFACT.SET", "a", "p", "EXPIRES_IN", "-1") == (
        "ERR invalid expire time in 'saml.artifact.set' command")
    assert gate.err("COMMAND", "GETKEYS", "SAML.SESSION.GET", "idx") == "ERR The command has no key arguments"


def test_saml_disabled():
    config = Config()
    config.protocols.saml.enabled = False
    g = GateHarness(config)
    assert g.err("SAML.SESSION.GET", "i") == "ERR SAML support is disabled (protocols.saml.enabled)"
    assert g.ok("OAUTH.TOKEN.SET", "t", "u", "s") == OK
