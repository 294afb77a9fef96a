"""CAS.* commands through the gate."""

from __future__ import annotations

import json

from tests.conftest import GateHarness
from tokenginx.config import Config
from tokenginx.replies import OK

T0 = 1_700_000_000
APP = "https://app.example.com"


def test_variant_a(gate):
    assert gate.ok("CAS.SET_TGT", "TGT-1", "alice", 7200) == OK
    assert gate.ok("CAS.SET_ST", "ST-1", "TGT-1", APP, 300) == OK
    assert gate.ok("TTL", "cas:st:ST-1") == 300
    assert gate.ok("CAS.VALIDATE_ST", "ST-1", APP) == [1, "alice"]
    assert gate.ok("CAS.VALIDATE_ST", "ST-1", APP) == [0, ""]
    gate.ok("CAS.SET_ST", "ST-2", "TGT-1", APP, 300)
    assert gate.ok("CAS.VALIDATE_ST", "ST-2", "https://other") == [0, ""]
    assert gate.ok("CAS.VALIDATE_ST", "ST-2", APP) == [0, ""]  # consumed by the failed attempt
    assert gate.err("CAS.SET_ST", "ST-3", "TGT-0", APP, 300) == "ERR unknown or expired TGT"
    assert gate.err("CAS.SET_TGT", "T", "u", "1x") == "ERR value is not an integer or out of range"


def test_tgt_set_get_del(gate, events):
    assert gate.ok("CAS.TGT.SET", "TGT-1", "alice", "ATTRIBUTES", '{"mail":"a@x"}') == OK
    assert gate.ok("TTL", "cas:tgt:TGT-1") == 7200
    assert json.loads(gate.ok("CAS.TGT.GET", "TGT-1")) == {
        "tgt_id": "TGT-1", "user_id": "alice", "attributes": {"mail": "a@x"},
        "created_at": T0, "expires_at": T0 + 7200}
    gate.ok("CAS.ST.SET", "ST-1", "TGT-1", APP, "EXPIRES_IN", 60)
    events.clear()
    assert gate.ok("CAS.TGT.DEL", "TGT-1") == 1
    assert [k for e, _, k in events if e == "revoked"] == [b"cas:tgt:TGT-1", b"cas:st:ST-1"]
    assert gate.ok("CAS.TGT.DEL", "TGT-1") == 0
    assert gate.ok("CAS.TGT.GET", "TGT-1") is None
    assert json.loads(gate.ok("CAS.ST.VALIDATE", "ST-1", APP)) == {
        "valid": False, "code": "INVALID_TICKET", "message": "Ticket not found or expired"}


def test_st_validate_json(gate, events):
    gate.ok("CAS.TGT.SET", "TGT-1", "alice", "EXPIRES_IN", 100)
    assert gate.err("CAS.ST.SET", "ST-1", "TGT-0", APP) == "ERR unknown or expired TGT"
    gate.ok("CAS.ST.SET", "ST-1", "TGT-1", APP)
    assert gate.ok("TTL", "cas:st:ST-1") == 300
    events.clear()
    assert json.loads(gate.ok("CAS.ST.VALIDATE", "ST-1", APP)) == {
        "valid": True, "user_id": "alice", "attributes": {}, "service": APP}
    assert ("consumed", "g", b"cas:st:ST-1") in events
    gate.ok("CAS.ST.SET", "ST-2", "TGT-1", APP)
    assert json.loads(gate.ok("CAS.ST.VALIDATE", "ST-2", "https://evil")) == {
        "valid": False, "code": "INVALID_SERVICE", "message": "Service mismatch"}


def test_proxy_tickets(gate):
    gate.ok("CAS.TGT.SET", "TGT-1", "alice")
    gate.ok("CAS.ST.SET", "ST-1", "TGT-1", "https://proxy")
    result = json.loads(gate.ok("CAS.ST.VALIDATE", "ST-1", "https://proxy", "pgt_id", "PGT-1"))
    assert result["valid"] and result["pgt_id"] == "PGT-1"
    assert gate.ok("CAS.PGT.SET", "PGT-2", "TGT-1", "alice", "https://proxy2", "EXPIRES_IN", 50) == OK
    assert gate.ok("TTL", "cas:pgt:PGT-2") == 50
    assert gate.err("CAS.PGT.SET", "PGT-3", "TGT-0", "alice", "https://p") == "ERR unknown or expired TGT"
    assert gate.ok("CAS.PT.SET", "PT-1", "PGT-2", "https://backend") == OK
    assert gate.err("CAS.PT.SET", "PT-2", "PGT-0", "https://backend") == "ERR unknown or expired PGT"
    assert json.loads(gate.ok("CAS.PT.VALIDATE", "PT-1", "https://backend")) == {
        "valid": True, "user_id": "alice", "attributes": {}, "service": "https://backend",
        "proxies": ["https://proxy2"]}
    assert not json.loads(gate.ok("CAS.PT.VALIDATE", "PT-1", "https://backend"))["valid"]


def test_errors(gate):
    assert gate.err("CAS.ST.VALIDATE", "ST-1") == (
        "ERR wrong number of arguments for 'cas.st.validate' command")
    assert gate.err("CAS.ST.VALIDATE", "ST-1", APP, "PGT_ID") == "ERR syntax error"
    assert gate.err("CAS.PT.VALIDATE", "PT-1", APP, "x") == (
        "ERR wrong number of arguments for 'cas.pt.validate' command")
    assert gate.err("CAS.TGT.SET", "T", "u", "ATTRIBUTES", "nope").startswith(
        "ERR invalid JSON in ATTRIBUTES: ")
    assert gate.err("CAS.TGT.SET", "T", "u", "EXPIRES_IN", 0) == (
        "ERR invalid expire time in 'cas.tgt.set' command")
    assert gate.err("COMMAND", "GETKEYS", "CAS.TGT.GET", "T") == "ERR The command has no key arguments"


def test_cas_disabled():
    config = Config()
    config.protocols.cas.enabled = False
    g = GateHarness(config)
    assert g.err("CAS.TGT.SET", "T", "u") == "ERR CAS support is disabled (protocols.cas.enabled)"
    assert g.err("CAS.VALIDATE_ST", "S", APP) == "ERR CAS support is disabled (protocols.cas.enabled)"
