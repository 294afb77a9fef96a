"""The OAuth, SAML and CAS RPCs, checked against the same records read over RESP."""

from __future__ import annotations

import json
import time

import grpc

from tests.integration.grpc.stubs import code_of

APP = "https://app.example.com"


def near(t: int, ahead: int = 0) -> bool:
    return abs(t - time.time() - ahead) < 30


def _resp_json(r, *command):
    reply = r.execute_command(*command)
    return None if reply is None else json.loads(reply)


# -- OAuth -----------------------------------------------------------------------------------
def test_set_and_get_oauth_token(stub, pb, r):
    req = pb.SetOAuthTokenRequest(
        token_id="at-1",
        user_id="alice",
        scope="openid email",
        client_id="webapp",
        ttl_seconds=600,
        metadata={"ip": "203.0.113.7"},
    )
    assert stub.SetOAuthToken(req).success
    got = stub.GetOAuthToken(pb.GetOAuthTokenRequest(token_id="at-1"))
    assert (got.found, got.user_id, got.scope, got.client_id) == (
        True,
        "alice",
        "openid email",
        "webapp",
    )
    assert dict(got.metadata) == {"ip": "203.0.113.7"}
    assert near(got.created_at) and got.expires_at - got.created_at == 600
    record = _resp_json(r, "OAUTH.TOKEN.GET", "at-1")  # the same record over RESP
    assert (record["user_id"], record["client_id"], record["metadata"]) == (
        "alice",
        "webapp",
        {"ip": "203.0.113.7"},
    )
    assert (record["created_at"], record["expires_at"]) == (got.created_at, got.expires_at)
    assert 595 <= r.ttl("oauth:access_token:at-1") <= 600
    assert stub.GetOAuthToken(pb.GetOAuthTokenRequest(token_id="nope")).found is False


def test_oauth_token_defaults(stub, pb, r):
    """ttl_seconds 0 = the protocol's default lifetime; empty user for client credentials."""
    stub.SetOAuthToken(pb.SetOAuthTokenRequest(token_id="cc-1", scope="api"))
    got = stub.GetOAuthToken(pb.GetOAuthTokenRequest(token_id="cc-1"))
    assert got.expires_at - got.created_at == 3600 and got.user_id == "" and got.client_id == ""
    assert dict(got.metadata) == {}


def test_introspection(stub, pb, r):
    stub.SetOAuthToken(
        pb.SetOAuthTokenRequest(
            token_id="at-2", user_id="bob", scope="read", client_id="svc", ttl_seconds=120
        )
    )
    info = stub.IntrospectToken(pb.IntrospectTokenRequest(token="at-2"))
    assert (info.active, info.scope, info.client_id, info.username, info.sub, info.token_type) == (
        True,
        "read",
        "svc",
        "bob",
        "bob",
        "Bearer",
    )
    assert near(info.iat) and near(info.exp, 120)
    hinted = stub.IntrospectToken(
        pb.IntrospectTokenRequest(token="at-2", token_type_hint="refresh_token")
    )
    assert hinted.active  # a wrong hint does not hide a token (RFC 7662 §2.1)
    assert (
        stub.IntrospectToken(pb.IntrospectTokenRequest(token="nope"))
        == pb.IntrospectTokenResponse()
    )
    # a token written over RESP, and one an application stored with plain SET (seed 000)
    r.execute_command("OAUTH.TOKEN.SET", "at-3", "carol", "write", "CLIENT_ID", "cli")
    assert stub.IntrospectToken(pb.IntrospectTokenRequest(token="at-3")).username == "carol"
    r.set(
        "oauth:token:legacy",
        json.dumps({"user_id": "user123", "client_id": "client_app", "scopes": ["read", "write"]}),
        ex=300,
    )
    legacy = stub.IntrospectToken(pb.IntrospectTokenRequest(token="legacy"))
    assert (legacy.active, legacy.sub, legacy.scope) == (True, "user123", "read write")


def test_revocation(stub, pb, r):
    r.execute_command("OAUTH.TOKEN.SET", "at-4", "dave", "read", "REFRESH_TOKEN", "rt-4")
    assert stub.RevokeToken(
        pb.RevokeTokenRequest(token="at-4", token_type_hint="access_token")
    ).success
    assert r.execute_command("OAUTH.TOKEN.GET", "at-4") is None
    assert stub.IntrospectToken(pb.IntrospectTokenRequest(token="rt-4")).active  # refresh stays
    assert stub.RevokeToken(pb.RevokeTokenRequest(token="at-4")).success  # idempotent (RFC 7009)
    assert stub.RevokeToken(pb.RevokeTokenRequest(token="rt-4")).success
    assert not stub.IntrospectToken(pb.IntrospectTokenRequest(token="rt-4")).active


# -- SAML ------------------------------------------------------------------------------------
def test_saml_session(stub, pb, r):
    fmt = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
    req = pb.SetSAMLSessionRequest(
        session_index="idx-1",
        name_id="alice@example.com",
        name_id_format=fmt,
        assertion=b"PHNhbWw6QXNzZXJ0aW9uPg==",
        ttl_seconds=900,
        attributes={"email": "alice@example.com"},
    )
    assert stub.SetSAMLSession(req).success
    got = stub.GetSAMLSession(pb.GetSAMLSessionRequest(session_index="idx-1"))
    assert (got.found, got.name_id, got.name_id_format, got.assertion) == (
        True,
        "alice@example.com",
        fmt,
        b"PHNhbWw6QXNzZXJ0aW9uPg==",
    )
    assert dict(got.attributes) == {"email": "alice@example.com"}
    assert near(got.created_at) and got.expires_at - got.created_at == 900
    record = _resp_json(r, "SAML.SESSION.GET", "idx-1")
    assert record["assertion"] == "PHNhbWw6QXNzZXJ0aW9uPg==" and record["name_id_format"] == fmt
    assert stub.GetSAMLSession(pb.GetSAMLSessionRequest(session_index="nope")).found is False


def test_saml_session_written_over_resp(stub, pb, r):
    r.execute_command(
        "SAML.SESSION.SET",
        "idx-2",
        "bob",
        "PHNhbWwy",
        "ATTRIBUTES",
        json.dumps({"groups": ["staff", "dev"]}),
    )
    got = stub.GetSAMLSession(pb.GetSAMLSessionRequest(session_index="idx-2"))
    assert got.expires_at - got.created_at == 28800  # the default session lifetime
    assert dict(got.attributes) == {"groups": '["staff","dev"]'}  # non-strings as JSON text


# -- CAS -------------------------------------------------------------------------------------
def test_cas_tickets(stub, pb, r):
    assert stub.SetTGT(
        pb.SetTGTRequest(
            tgt_id="TGT-1-a",
            user_id="erin",
            ttl_seconds=600,
            attributes={"mail": "erin@example.com"},
        )
    ).success
    assert 595 <= r.ttl("cas:tgt:TGT-1-a") <= 600
    assert stub.SetST(pb.SetSTRequest(st_id="ST-1-a", tgt_id="TGT-1-a", service=APP)).success
    assert 295 <= r.ttl("cas:st:ST-1-a") <= 300  # ttl_seconds 0 = the default ST lifetime
    ok = stub.ValidateST(pb.ValidateSTRequest(st_id="ST-1-a", service=APP))
    assert (ok.valid, ok.user_id, dict(ok.attributes)) == (
        True,
        "erin",
        {"mail": "erin@example.com"},
    )
    again = stub.ValidateST(pb.ValidateSTRequest(st_id="ST-1-a", service=APP))
    assert again == pb.ValidateSTResponse()  # consumed by its first validation
    stub.SetST(pb.SetSTRequest(st_id="ST-1-b", tgt_id="TGT-1-a", service=APP, ttl_seconds=60))
    assert not stub.ValidateST(pb.ValidateSTRequest(st_id="ST-1-b", service="https://evil")).valid
    assert not stub.ValidateST(pb.ValidateSTRequest(st_id="ST-1-b", service=APP)).valid


def test_cas_across_doors(stub, pb, r):
    """A TGT made over RESP, an ST over gRPC, validated over RESP — and the reverse."""
    r.execute_command("CAS.TGT.SET", "TGT-2-b", "frank")
    stub.SetST(pb.SetSTRequest(st_id="ST-2-a", tgt_id="TGT-2-b", service=APP))
    assert _resp_json(r, "CAS.ST.VALIDATE", "ST-2-a", APP)["user_id"] == "frank"
    stub.SetTGT(pb.SetTGTRequest(tgt_id="TGT-2-c", user_id="gina"))
    r.execute_command("CAS.ST.SET", "ST-2-b", "TGT-2-c", APP)
    assert stub.ValidateST(pb.ValidateSTRequest(st_id="ST-2-b", service=APP)).user_id == "gina"
    assert _resp_json(r, "SSO.USER.SESSIONS", "gina")[0]["type"] == "cas_tgt"
    code, _ = code_of(stub.SetST, pb.SetSTRequest(st_id="ST-2-c", tgt_id="TGT-gone", service=APP))
    assert code == grpc.StatusCode.NOT_FOUND


def test_calls_are_counted_per_door(stub, pb, tokenginx):
    """The gRPC door runs the same commands through the same gate (HTTP /metrics)."""
    import httpx

    def grpc_calls(command: str) -> float:
        text = httpx.get(f"{tokenginx.http_url}/metrics", timeout=10).text
        prefix = f'tokenginx_commands_total{{command="{command}",door="grpc"}} '
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(lines[0][len(prefix) :]) if lines else 0.0

    before = grpc_calls("cas.tgt.set")
    stub.SetTGT(pb.SetTGTRequest(tgt_id="TGT-3", user_id="hal"))
    stub.SetTGT(pb.SetTGTRequest(tgt_id="TGT-4", user_id="hal"))
    assert grpc_calls("cas.tgt.set") == before + 2
