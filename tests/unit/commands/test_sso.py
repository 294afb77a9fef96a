"""SSO.USER.* commands, and the keyspace notifications of the SSO domain."""

from __future__ import annotations

import json

from tokenginx.replies import Push

T0 = 1_700_000_000


def _everything_of_alice(gate) -> None:
    gate.ok("OAUTH.TOKEN.SET", "at1", "alice", "read", "REFRESH_TOKEN", "rt1", "EXPIRES_IN", 60)
    gate.ok("OAUTH.CODE.SET", "c1", "app", "https://app/cb", "alice", "openid", "EXPIRES_IN", 30)
    gate.ok("SAML.SESSION.SET", "idx1", "alice", "a", "EXPIRES_IN", 90)
    gate.ok("CAS.TGT.SET", "TGT-1", "alice", "EXPIRES_IN", 120)
    gate.ok("CAS.ST.SET", "ST-1", "TGT-1", "https://app", "EXPIRES_IN", 10)


def test_user_sessions_lists_live_entries(gate):
    _everything_of_alice(gate)
    listed = json.loads(gate.ok("SSO.USER.SESSIONS", "alice"))
    assert [(e["type"], e["id"], e["expires_at"] - T0) for e in listed] == [
        ("cas_st", "ST-1", 10), ("auth_code", "c1", 30), ("access_token", "at1", 60),
        ("saml_session", "idx1", 90), ("cas_tgt", "TGT-1", 120),
        ("refresh_token", "rt1", 2592000)]
    assert listed[0]["key"] == "cas:st:ST-1"
    gate.clock.advance(30_000)
    assert [e["id"] for e in json.loads(gate.ok("SSO.USER.SESSIONS", "alice"))] == [
        "at1", "idx1", "TGT-1", "rt1"]
    assert gate.ok("SSO.USER.SESSIONS", "nobody") == b"[]"


def test_user_revoke(gate, events):
    _everything_of_alice(gate)
    gate.ok("OAUTH.TOKEN.SET", "bt", "bob", "read")
    events.clear()
    assert gate.ok("SSO.USER.REVOKE", "alice") == 6
    assert len([e for e in events if e[0] == "revoked"]) == 6
    assert gate.ok("SSO.USER.SESSIONS", "alice") == b"[]"
    assert sorted(gate.ok("KEYS", "*")) == [b"oauth:access_token:bt", b"sso:user:bob"]
    assert gate.ok("SSO.USER.REVOKE", "alice") == 0


def test_arity_and_no_keys(gate):
    assert gate.err("SSO.USER.REVOKE") == "ERR wrong number of arguments for 'sso.user.revoke' command"
    assert gate.err("SSO.USER.SESSIONS", "a", "b") == (
        "ERR wrong number of arguments for 'sso.user.sessions' command")
    assert gate.err("COMMAND", "GETKEYS", "SSO.USER.REVOKE", "alice") == "ERR The command has no key arguments"


def test_keyspace_notifications_carry_revoked_and_consumed(gate):
    gate.ok("CONFIG", "SET", "notify-keyspace-events", "KEg$")
    gate.ok("PSUBSCRIBE", "__key*__:*")
    pub = gate.new_client()
    gate.ok("OAUTH.CODE.SET", "c1", "app", "https://app/cb", "alice", "openid", client=pub)
    gate.ok("OAUTH.TOKEN.SET", "at1", "alice", "read", client=pub)
    gate.pushed.clear()
    gate.ok("OAUTH.CODE.CONSUME", "c1", client=pub)
    gate.ok("OAUTH.TOKEN.REVOKE", "at1", client=pub)
    seen = [(bytes(m[2]), bytes(m[3])) for m in gate.pushed if isinstance(m, Push)]
    keyspace = [(c, m) for c, m in seen if c.startswith(b"__keyspace@0__:oauth")]
    assert keyspace == [
        (b"__keyspace@0__:oauth:auth_code:c1", b"consumed"),
        (b"__keyspace@0__:oauth:auth_code:c1", b"del"),
        (b"__keyspace@0__:oauth:access_token:at1", b"revoked"),
        (b"__keyspace@0__:oauth:access_token:at1", b"del"),
    ]
    assert (b"__keyevent@0__:revoked", b"oauth:access_token:at1") in seen
    assert (b"__keyevent@0__:consumed", b"oauth:auth_code:c1") in seen
