"""CAS tickets: TGT, ST (one use, bound to a service), PGT, PT."""

from __future__ import annotations

import pytest

from tokenginx.errors import CommandError
from tokenginx.sso import cas, users

T0 = 1_700_000_000
APP = "https://app.example.com"

NOT_FOUND = {"valid": False, "code": "INVALID_TICKET", "message": "Ticket not found or expired"}


@pytest.fixture
def tgt(ctx):
    cas.set_tgt(ctx(), "TGT-1", "alice", attributes={"mail": "alice@example.com"})
    return "TGT-1"


def test_tgt_round_trip(ctx, db, protocols, tgt):
    assert db.pttl(b"cas:tgt:TGT-1") == protocols.cas.default_tgt_ttl * 1000
    assert cas.get_tgt(ctx(), tgt) == {
        "tgt_id": "TGT-1", "user_id": "alice", "attributes": {"mail": "alice@example.com"},
        "created_at": T0, "expires_at": T0 + 7200,
    }
    assert cas.get_tgt(ctx(), "TGT-0") is None


def test_st_needs_a_live_tgt(ctx, clock):
    with pytest.raises(CommandError, match="^ERR unknown or expired TGT$"):
        cas.set_st(ctx(), "ST-1", "TGT-0", APP)
    cas.set_tgt(ctx(), "TGT-1", "alice", expires_in=1)
    clock.advance(1000)
    with pytest.raises(CommandError):
        cas.set_st(ctx(), "ST-1", "TGT-1", APP)


def test_st_validates_once(ctx, db, tgt, protocols):
    cas.set_st(ctx(), "ST-1", tgt, APP)
    assert db.pttl(b"cas:st:ST-1") == protocols.cas.default_st_ttl * 1000
    assert cas.validate_st(ctx(), "ST-1", APP) == {
        "valid": True, "user_id": "alice", "attributes": {"mail": "alice@example.com"}, "service": APP}
    assert cas.validate_st(ctx(), "ST-1", APP) == NOT_FOUND


def test_wrong_service_consumes_the_ticket(ctx, tgt, events):
    cas.set_st(ctx(), "ST-1", tgt, APP)
    events.clear()
    assert cas.validate_st(ctx(), "ST-1", "https://evil.example.com") == {
        "valid": False, "code": "INVALID_SERVICE", "message": "Service mismatch"}
    assert events[:2] == [("consumed", b"cas:st:ST-1"), ("del", b"cas:st:ST-1")]
    assert cas.validate_st(ctx(), "ST-1", APP) == NOT_FOUND


def test_expired_st_is_invalid(ctx, clock, tgt):
    cas.set_st(ctx(), "ST-1", tgt, APP, expires_in=10)
    clock.advance(10_000)
    assert cas.validate_st(ctx(), "ST-1", APP) == NOT_FOUND


def test_destroying_the_tgt_takes_its_tickets(ctx, db, tgt, events):
    cas.set_st(ctx(), "ST-1", tgt, APP)
    cas.set_pgt(ctx(), "PGT-1", tgt, "alice", "https://proxy")
    cas.set_pt(ctx(), "PT-1", "PGT-1", "https://backend")
    cas.set_tgt(ctx(), "TGT-2", "alice")
    cas.set_st(ctx(), "ST-2", "TGT-2", APP)
    events.clear()
    assert cas.destroy_tgt(ctx(), tgt) == 1
    revoked = sorted(k for e, k in events if e == "revoked")
    assert revoked == [b"cas:pgt:PGT-1", b"cas:pt:PT-1", b"cas:st:ST-1", b"cas:tgt:TGT-1"]
    assert sorted(db.keys(b"cas:*")) == [b"cas:st:ST-2", b"cas:tgt:TGT-2"]
    assert [s["id"] for s in users.sessions(ctx(), "alice")] == ["ST-2", "TGT-2"]
    assert cas.destroy_tgt(ctx(), tgt) == 0


def test_st_of_an_ended_tgt_is_invalid_even_when_not_indexed(ctx, db):
    cas.set_tgt(ctx(), "TGT-9", "")  # no user: nothing filed in an index
    cas.set_st(ctx(), "ST-9", "TGT-9", APP)
    assert cas.destroy_tgt(ctx(), "TGT-9") == 1
    assert db.exists(b"cas:st:ST-9")
    assert cas.validate_st(ctx(), "ST-9", APP) == {
        "valid": False, "code": "INVALID_TICKET", "message": "Ticket-granting ticket not found or expired"}
    assert not db.exists(b"cas:st:ST-9")


def test_proxy_chain(ctx, db, tgt, protocols):
    cas.set_st(ctx(), "ST-1", tgt, "https://proxy")
    result = cas.validate_st(ctx(), "ST-1", "https://proxy", pgt_id="PGT-1")
    assert result["valid"] and result["pgt_id"] == "PGT-1"
    assert db.pttl(b"cas:pgt:PGT-1") == protocols.cas.default_pgt_ttl * 1000
    with pytest.raises(CommandError, match="^ERR unknown or expired PGT$"):
        cas.set_pt(ctx(), "PT-1", "PGT-0", "https://backend")
    cas.set_pt(ctx(), "PT-1", "PGT-1", "https://backend")
    assert db.pttl(b"cas:pt:PT-1") == protocols.cas.default_pt_ttl * 1000
    assert cas.validate_pt(ctx(), "PT-1", "https://backend") == {
        "valid": True, "user_id": "alice", "attributes": {"mail": "alice@example.com"},
        "service": "https://backend", "proxies": ["https://proxy"]}
    assert cas.validate_pt(ctx(), "PT-1", "https://backend") == NOT_FOUND


def test_failed_validation_issues_no_pgt(ctx, db, tgt):
    cas.set_st(ctx(), "ST-1", tgt, APP)
    assert not cas.validate_st(ctx(), "ST-1", "https://other", pgt_id="PGT-1")["valid"]
    assert not db.exists(b"cas:pgt:PGT-1")


def test_pt_of_an_ended_pgt_is_invalid(ctx, db, tgt):
    cas.set_pgt(ctx(), "PGT-1", tgt, "alice", "https://proxy")
    cas.set_pt(ctx(), "PT-1", "PGT-1", "https://backend")
    db.delete(b"cas:pgt:PGT-1")
    assert cas.validate_pt(ctx(), "PT-1", "https://backend")["message"] == (
        "Proxy-granting ticket not found or expired")


def test_pt_service_mismatch(ctx, tgt):
    cas.set_pgt(ctx(), "PGT-1", tgt, "alice", "https://proxy")
    cas.set_pt(ctx(), "PT-1", "PGT-1", "https://backend")
    assert cas.validate_pt(ctx(), "PT-1", "https://proxy")["code"] == "INVALID_SERVICE"
    assert cas.validate_pt(ctx(), "PT-1", "https://backend") == NOT_FOUND


def test_garbage_at_a_ticket_key_is_consumed_as_invalid(ctx, db):
    db.set_string(b"cas:st:ST-x", b"not json")
    assert cas.validate_st(ctx(), "ST-x", APP) == NOT_FOUND
    assert not db.exists(b"cas:st:ST-x")
