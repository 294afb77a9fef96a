"""OAUTH.* commands through the gate: argument forms, reply shapes, errors."""

from __future__ import annotations

import json

from tests.conftest import GateHarness
from tokenginx.config import Config
from tokenginx.replies import OK

T0 = 1_700_000_000


def j(reply: bytes) -> object:
    assert isinstance(reply, bytes), reply
    return json.loads(reply)


# -- Variant A -------------------------------------------------------------------------
def test_variant_a_round_trip(gate):
    assert gate.ok("OAUTH.SET", "t1", "alice", "read write", 3600) == OK
    assert gate.ok("TTL", "oauth:token:t1") == 3600
    assert gate.ok("OAUTH.GET", "t1") == ["alice", "read write", T0, T0 + 3600]
    assert gate.ok("OAUTH.INTROSPECT", "t1") == [1, "alice", "read write", T0 + 3600]
    assert gate.ok("OAUTH.REVOKE", "t1") == 1
    assert gate.ok("OAUTH.REVOKE", "t1") == 0
    assert gate.ok("OAUTH.GET", "t1") is None
    assert gate.ok("OAUTH.INTROSPECT", "t1") == [0]


def test_variant_a_sees_variant_b_tokens_and_the_reverse(gate):
    gate.ok("OAUTH.TOKEN.SET", "b1", "alice", "read")
    assert gate.ok("OAUTH.GET", "b1")[0] == "alice"
    gate.ok("OAUTH.SET", "a1", "bob", "write", 60)
    assert j(gate.ok("OAUTH.TOKEN.GET", "a1"))["user_id"] == "bob"
    assert j(gate.ok("OAUTH.TOKEN.INTROSPECT", "a1"))["sub"] == "bob"


def test_variant_a_errors(gate):
    assert gate.err("OAUTH.SET", "t", "u", "s") == "ERR wrong number of arguments for 'oauth.set' command"
    assert gate.err("OAUTH.SET", "t", "u", "s", "x") == "ERR value is not an integer or out of range"
    assert gate.err("OAUTH.SET", "t", "u", "s", 0) == "ERR invalid expire time in 'oauth.set' command"
    assert gate.err("OAUTH.SET", "t", "u", "s", -5) == "ERR invalid expire time in 'oauth.set' command"
    assert gate.err("OAUTH.GET") == "ERR wrong number of arguments for 'oauth.get' command"


# -- Variant B -------------------------------------------------------------------------
def test_token_set_with_every_option(gate):
    assert gate.ok(
        "oauth.token.set", "at1", "alice", "openid email",
        "expires_in", 300, "Client_Id", "app", "TOKEN_TYPE", "DPoP",
        "METADATA", '{"ip":"10.0.0.1"}', "REFRESH_TOKEN", "rt1", "REFRESH_EXPIRES_IN", 900,
    ) == OK
    assert j(gate.ok("OAUTH.TOKEN.GET", "at1")) == {
        "token_id": "at1", "user_id": "alice", "client_id": "app", "scope": "openid email",
        "token_type": "DPoP", "refresh_token": "rt1", "metadata": {"ip": "10.0.0.1"},
        "created_at": T0, "expires_at": T0 + 300,
    }
    assert gate.ok("TTL", "oauth:access_token:at1") == 300
    assert gate.ok("TTL", "oauth:refresh_token:rt1") == 900
    assert gate.ok("OAUTH.TOKEN.GET", "rt1") is None  # GET reads access tokens only


def test_token_defaults(gate):
    gate.ok("OAUTH.TOKEN.SET", "at1", "", "api")
    got = j(gate.ok("OAUTH.TOKEN.GET", "at1"))
    assert got["token_type"] == "Bearer" and got["client_id"] == "" and got["refresh_token"] is None
    assert gate.ok("TTL", "oauth:access_token:at1") == 3600


def test_introspect_json(gate):
    gate.ok("OAUTH.TOKEN.SET", "at1", "alice", "read", "CLIENT_ID", "app", "REFRESH_TOKEN", "rt1")
    assert j(gate.ok("OAUTH.TOKEN.INTROSPECT", "at1")) == {
        "active": True, "scope": "read", "client_id": "app", "username": "alice", "sub": "alice",
        "token_type": "Bearer", "exp": T0 + 3600, "iat": T0}
    assert j(gate.ok("OAUTH.TOKEN.INTROSPECT", "rt1", "token_type_hint", "refresh_token"))["exp"] == (
        T0 + 2592000)
    assert gate.ok("OAUTH.TOKEN.INTROSPECT", "nope") == b'{"active":false}'
    gate.clock.advance(3600_000)
    assert gate.ok("OAUTH.TOKEN.INTROSPECT", "at1") == b'{"active":false}'


def test_revoke_counts_and_cascade(gate):
    gate.ok("OAUTH.TOKEN.SET", "at1", "alice", "read", "REFRESH_TOKEN", "rt1")
    gate.ok("OAUTH.TOKEN.SET", "at2", "alice", "read", "REFRESH_TOKEN", "rt1")
    assert gate.ok("OAUTH.TOKEN.REVOKE", "at1", "TOKEN_TYPE_HINT", "access_token") == 1
    assert gate.ok("OAUTH.TOKEN.REVOKE", "at1") == 0
    assert gate.ok("OAUTH.TOKEN.REVOKE", "at2", "cascade") == 2
    gate.ok("OAUTH.TOKEN.SET", "at3", "alice", "read", "REFRESH_TOKEN", "rt3")
    assert gate.ok("OAUTH.TOKEN.REVOKE", "rt3", "TOKEN_TYPE_HINT", "refresh_token", "CASCADE") == 2
    assert gate.ok("KEYS", "*") == []


def test_variant_b_errors(gate):
    name = "'oauth.token.set'"
    assert gate.err("OAUTH.TOKEN.SET", "t", "u") == f"ERR wrong number of arguments for {name} command"
    assert gate.err("OAUTH.TOKEN.SET", "t", "u", "s", "EXPIRES_IN") == "ERR syntax error"
    assert gate.err("OAUTH.TOKEN.SET", "t", "u", "s", "BOGUS", "1") == "ERR syntax error"
    assert gate.err("OAUTH.TOKEN.SET", "t", "u", "s", "EXPIRES_IN", "1.5") == (
        "ERR value is not an integer or out of range")
    assert gate.err("OAUTH.TOKEN.SET", "t", "u", "s", "EXPIRES_IN", 0) == (
        f"ERR invalid expire time in {name} command")
    assert gate.err("OAUTH.TOKEN.SET", "t", "u", "s", "EXPIRES_IN", 2**62) == (
        f"ERR invalid expire time in {name} command")
    assert gate.err("OAUTH.TOKEN.SET", "t", "u", "s", "REFRESH_EXPIRES_IN", 5) == "ERR syntax error"
    assert gate.err("OAUTH.TOKEN.SET", "t", "u", "s", "METADATA", "{x").startswith(
        "ERR invalid JSON in METADATA: ")
    assert gate.err("OAUTH.TOKEN.SET", "t", "u", "s", "METADATA", "[1]") == (
        "ERR invalid JSON in METADATA: expected an object")
    assert gate.err("OAUTH.TOKEN.SET", "t", "u", "s", "METADATA", '{"n":1}') == (
        "ERR invalid JSON in METADATA: values must be strings")
    assert gate.err("OAUTH.TOKEN.INTROSPECT", "t", "TOKEN_TYPE_HINT") == "ERR syntax error"
    assert gate.err("OAUTH.TOKEN.REVOKE", "t", "NOW") == "ERR syntax error"
    assert gate.ok("KEYS", "*") == []  # nothing written by a refused command


# -- codes and ID tokens ---------------------------------------------------------------
def test_code_set_and_consume(gate, events):
    assert gate.ok("OAUTH.CODE.SET", "c1", "app", "https://app/cb", "alice", "openid",
                   "CODE_CHALLENGE", "E9Melhoa2Owv", "code_challenge_method", "s256",
                   "NONCE", "n1", "DATA", '{"state":"xyz"}', "EXPIRES_IN", 60) == OK
    assert gate.ok("TTL", "oauth:auth_code:c1") == 60
    events.clear()
    record = j(gate.ok("OAUTH.CODE.CONSUME", "c1"))
    assert record["code_challenge_method"] == "S256" and record["data"] == {"state": "xyz"}
    assert record["redirect_uri"] == "https://app/cb" and record["nonce"] == "n1"
    assert ("consumed", "g", b"oauth:auth_code:c1") in events
    assert gate.ok("OAUTH.CODE.CONSUME", "c1") is None


def test_code_errors(gate):
    args = ("OAUTH.CODE.SET", "c1", "app", "https://app/cb", "alice", "openid")
    assert gate.err(*args, "CODE_CHALLENGE_METHOD", "S256") == "ERR syntax error"
    assert gate.err(*args, "CODE_CHALLENGE", "x", "CODE_CHALLENGE_METHOD", "S512") == (
        "ERR CODE_CHALLENGE_METHOD must be S256 or plain")
    assert gate.err(*args, "DATA", "1").startswith("ERR invalid JSON in DATA")
    assert gate.err(*args[:-1]) == "ERR wrong number of arguments for 'oauth.code.set' command"


def test_id_token(gate):
    claims = {"iss": "https://idp", "sub": "alice", "aud": "app", "nonce": "n1"}
    assert gate.ok("OAUTH.IDTOKEN.SET", "id1", json.dumps(claims), "EXPIRES_IN", 120) == OK
    assert j(gate.ok("OAUTH.IDTOKEN.GET", "id1")) == claims
    assert gate.ok("TTL", "oauth:id_token:id1") == 120
    assert gate.err("OAUTH.IDTOKEN.SET", "id2", "nope").startswith("ERR invalid JSON in CLAIMS: ")
    assert gate.ok("OAUTH.IDTOKEN.GET", "id2") is None


def test_revoke_user_alias(gate):
    gate.ok("OAUTH.TOKEN.SET", "at1", "alice", "read", "REFRESH_TOKEN", "rt1")
    gate.ok("SAML.SESSION.SET", "idx", "alice", "a")
    assert gate.ok("OAUTH.REVOKE_USER", "alice") == 3
    assert gate.ok("OAUTH.REVOKE_USER", "alice") == 0


# -- table metadata, modes, configuration ------------------------------------------------
def test_keys_are_derived_so_getkeys_has_none(gate):
    assert gate.err("COMMAND", "GETKEYS", "OAUTH.TOKEN.GET", "t1") == "ERR The command has no key arguments"
    info = gate.ok("COMMAND", "INFO", "oauth.token.set", "oauth.token.introspect")
    assert info[0][:6] == ["oauth.token.set", -4, [b"write", b"denyoom"], 0, 0, 0]
    assert info[1][2] == [b"readonly"] and "@sso" in info[1][6]
    assert b"oauth.code.consume" in gate.ok("COMMAND", "LIST", "FILTERBY", "ACLCAT", "oauth")


def test_commands_run_inside_multi(gate):
    gate.ok("OAUTH.CODE.SET", "c1", "app", "https://app/cb", "alice", "openid")
    gate.ok("MULTI")
    assert gate.ok("OAUTH.CODE.CONSUME", "c1") == b"QUEUED"
    assert gate.ok("OAUTH.CODE.CONSUME", "c1") == b"QUEUED"
    first, second = gate.ok("EXEC")
    assert j(first)["code"] == "c1" and second is None


def test_oauth_disabled():
    config = Config()
    config.protocols.oauth.enabled = False
    g = GateHarness(config)
    msg = "ERR OAuth support is disabled (protocols.oauth.enabled)"
    for args in (("OAUTH.SET", "t", "u", "s", 1), ("OAUTH.TOKEN.INTROSPECT", "t"),
                 ("OAUTH.CODE.CONSUME", "c"), ("OAUTH.REVOKE_USER", "u")):
        assert g.err(*args) == msg
    assert g.ok("SSO.USER.REVOKE", "u") == 0  # cross-protocol commands stay available


def test_configured_prefix_and_ttls():
    config = Config()
    config.protocols.oauth.key_prefix = "idp"
    config.protocols.oauth.default_token_ttl = 90
    g = GateHarness(config)
    g.ok("OAUTH.TOKEN.SET", "at1", "alice", "read")
    assert g.ok("TTL", "idp:access_token:at1") == 90
    assert j(g.ok("SSO.USER.SESSIONS", "alice"))[0]["key"] == "idp:access_token:at1"


def test_value_size_limit():
    config = Config()
    config.limits.value_bytes = 8
    g = GateHarness(config)
    assert g.err("OAUTH.TOKEN.SET", "t", "u", "x" * 9) == (
        "ERR string exceeds maximum allowed size (8 bytes)")
    assert g.ok("OAUTH.TOKEN.SET", "t", "u", "x" * 8) == OK
