"""SAML sessions, NameID lookup, artifacts and logout requests."""

from __future__ import annotations

import json

from tokenginx.sso import index, saml

T0 = 1_700_000_000
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


def test_session_round_trip_with_defaults(ctx, db, protocols):
    saml.set_session(ctx(), "idx1", "alice@example.com", "PHNhbWw+")
    assert db.pttl(b"saml:session:idx1") == protocols.saml.default_session_ttl * 1000
    assert saml.get_session(ctx(), "idx1") == {
        "session_index": "idx1", "name_id": "alice@example.com", "name_id_format": saml.UNSPECIFIED,
        "assertion": "PHNhbWw+", "attributes": {}, "created_at": T0, "expires_at": T0 + 28800,
    }
    assert saml.get_session(ctx(), "nope") is None


def test_session_options(ctx):
    saml.set_session(ctx(), "idx1", "alice@example.com", "a", expires_in=60, name_id_format=EMAIL,
                     attributes={"groups": ["staff", "dev"], "email": "alice@example.com"})
    s = saml.get_session(ctx(), "idx1")
    assert s is not None and s["name_id_format"] == EMAIL and s["expires_at"] == T0 + 60
    assert s["attributes"]["groups"] == ["staff", "dev"]


def test_foreign_session_record_is_normalised(ctx, db, clock):
    db.set_string(b"saml:session:x", json.dumps({"name_id": "bob"}).encode(), clock() + 1000)
    assert saml.get_session(ctx(), "x") == {
        "session_index": "x", "name_id": "bob", "name_id_format": saml.UNSPECIFIED,
        "assertion": "", "attributes": {}, "created_at": None, "expires_at": T0 + 1,
    }


def test_sessions_of_a_name_id_for_single_logout(ctx, clock):
    saml.set_session(ctx(), "idx1", "alice@example.com", "a1")
    clock.advance(1000)
    saml.set_session(ctx(), "idx2", "alice@example.com", "a2", expires_in=5)
    saml.set_session(ctx(), "idx3", "bob@example.com", "b1")
    assert [s["session_index"] for s in saml.sessions_of(ctx(), "alice@example.com")] == ["idx1", "idx2"]
    clock.advance(5000)
    assert [s["session_index"] for s in saml.sessions_of(ctx(), "alice@example.com")] == ["idx1"]
    assert saml.sessions_of(ctx(), "nobody") == []


def test_delete_session_revokes_and_unfiles(ctx, db, events):
    saml.set_session(ctx(), "idx1", "alice@example.com", "a1")
    events.clear()
    assert saml.delete_session(ctx(), "idx1") == 1
    assert events[:2] == [("revoked", b"saml:session:idx1"), ("del", b"saml:session:idx1")]
    assert saml.delete_session(ctx(), "idx1") == 0
    assert not db.exists(index.index_key("alice@example.com"))


def test_artifact_resolves_once(ctx, db, clock, events):
    saml.set_artifact(ctx(), "AAQ", b"\x00binary payload")
    assert db.pttl(b"saml:artifact:AAQ") == 300_000
    events.clear()
    assert saml.resolve_artifact(ctx(), "AAQ") == b"\x00binary payload"
    assert events == [("consumed", b"saml:artifact:AAQ"), ("del", b"saml:artifact:AAQ")]
    assert saml.resolve_artifact(ctx(), "AAQ") is None
    saml.set_artifact(ctx(), "late", b"p", expires_in=1)
    clock.advance(1000)
    assert saml.resolve_artifact(ctx(), "late") is None


def test_logout_request_round_trip(ctx, db, clock):
    request = {"request_id": "r1", "name_id": "alice@example.com", "session_index": "idx1"}
    saml.set_logout(ctx(), "r1", request)
    assert saml.get_logout(ctx(), "r1") == request
    assert db.pttl(b"saml:logout:r1") == 300_000
    clock.advance(300_000)
    assert saml.get_logout(ctx(), "r1") is None
