"""The SSO extension commands against a real server process, with real redis-py clients:
expiry, one-time use under concurrency, revocation cascades, user-wide revocation,
keyspace notifications, persistence across a restart, and seed 000's OAuth store."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import RunningServer, start_tokenginx, stop_process
from tests.integration.sso_doors import run_oauth2_token_store_sample

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")

APP = "https://app.example.com"
ROUNDS = 50


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    srv = start_tokenginx()
    yield srv
    stop_process(srv.proc)
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def connect(port: int, **kwargs: Any) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, **kwargs)


@pytest.fixture
def r(server: RunningServer) -> Iterator[redis.Redis]:
    client = connect(server.port, decode_responses=True)
    client.flushall()
    yield client
    client.close()


def j(reply: Any) -> Any:
    return None if reply is None else json.loads(reply)


def test_both_variants_over_the_wire(r):
    assert r.execute_command("OAUTH.SET", "a1", "alice", "read", 3600) == "OK"
    user, scope, created, expires = r.execute_command("OAUTH.GET", "a1")
    assert (user, scope, expires - created) == ("alice", "read", 3600)
    assert r.execute_command("OAUTH.INTROSPECT", "a1") == [1, "alice", "read", expires]
    assert r.execute_command("OAUTH.INTROSPECT", "nope") == [0]
    assert r.execute_command("OAUTH.TOKEN.SET", "b1", "bob", "write", "EXPIRES_IN", 60) == "OK"
    assert j(r.execute_command("OAUTH.TOKEN.INTROSPECT", "b1"))["sub"] == "bob"
    assert r.execute_command("OAUTH.TOKEN.INTROSPECT", "nope") == '{"active":false}'
    assert 59 <= r.ttl("oauth:access_token:b1") <= 60
    with pytest.raises(redis.ResponseError, match="^invalid expire time in 'oauth.token.set' command$"):
        r.execute_command("OAUTH.TOKEN.SET", "b2", "bob", "write", "EXPIRES_IN", 0)
    with pytest.raises(redis.ResponseError, match="^The command has no key arguments$"):
        r.execute_command("COMMAND", "GETKEYS", "OAUTH.TOKEN.GET", "b1")


def test_resp3_replies(server):
    c = connect(server.port, protocol=3, decode_responses=True)
    try:
        c.execute_command("CAS.SET_TGT", "TGT-3", "carol", 60)
        c.execute_command("CAS.SET_ST", "ST-3", "TGT-3", APP, 60)
        assert c.execute_command("CAS.VALIDATE_ST", "ST-3", APP) == [1, "carol"]
        assert c.execute_command("CAS.VALIDATE_ST", "ST-3", APP) == [0, ""]
        assert c.execute_command("SAML.GET", "none") is None
    finally:
        c.close()


def test_pipeline_and_transaction(r):
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("OAUTH.CODE.SET", "c1", "app", "https://app/cb", "alice", "openid")
    pipe.execute_command("OAUTH.CODE.CONSUME", "c1")
    pipe.execute_command("OAUTH.CODE.CONSUME", "c1")
    ok, first, second = pipe.execute()
    assert ok == "OK" and j(first)["code"] == "c1" and second is None


def test_expiry(r):
    r.execute_command("OAUTH.TOKEN.SET", "at", "alice", "read", "EXPIRES_IN", 1)
    r.execute_command("OAUTH.SET", "va", "alice", "read", 1)
    r.execute_command("SAML.ARTIFACT.SET", "art", "payload", "EXPIRES_IN", 1)
    r.execute_command("CAS.TGT.SET", "TGT-1", "alice", "EXPIRES_IN", 1)
    assert len(j(r.execute_command("SSO.USER.SESSIONS", "alice"))) == 3
    assert r.exists("sso:user:alice") == 1
    time.sleep(1.1)
    assert r.execute_command("OAUTH.TOKEN.INTROSPECT", "at") == '{"active":false}'
    assert r.execute_command("OAUTH.INTROSPECT", "va") == [0]
    assert r.execute_command("SAML.ARTIFACT.RESOLVE", "art") is None
    assert r.execute_command("CAS.TGT.GET", "TGT-1") is None
    assert r.execute_command("SSO.USER.SESSIONS", "alice") == "[]"
    assert r.exists("sso:user:alice") == 0  # the index expired with its entries


def _race(port: int, prepare: Callable[[redis.Redis, int], None],
          attempt: Callable[[redis.Redis, int], bool]) -> None:
    """Two clients on their own connections and threads, released together, try the
    same one-use artifact ``ROUNDS`` times: exactly one wins each time."""
    setup, a, b = connect(port), connect(port), connect(port)
    try:
        for i in range(ROUNDS):
            prepare(setup, i)
            barrier = threading.Barrier(2)
            results: list[bool] = []

            def go(client: redis.Redis, i: int = i, barrier: threading.Barrier = barrier,
                   results: list[bool] = results) -> None:
                barrier.wait(5)
                results.append(attempt(client, i))

            threads = [threading.Thread(target=go, args=(c,)) for c in (a, b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            assert sorted(results) == [False, True], f"round {i}: {results}"
    finally:
        for c in (setup, a, b):
            c.close()


def test_code_consumed_once_under_concurrency(server, r):
    _race(
        server.port,
        lambda c, i: c.execute_command("OAUTH.CODE.SET", f"code{i}", "app", "https://app/cb",
                                       "alice", "openid"),
        lambda c, i: c.execute_command("OAUTH.CODE.CONSUME", f"code{i}") is not None,
    )


def test_st_consumed_once_under_concurrency(server, r):
    r.execute_command("CAS.TGT.SET", "TGT-race", "alice")
    _race(
        server.port,
        lambda c, i: c.execute_command("CAS.ST.SET", f"ST-{i}", "TGT-race", APP),
        lambda c, i: j(c.execute_command("CAS.ST.VALIDATE", f"ST-{i}", APP))["valid"],
    )


def test_artifact_resolved_once_under_concurrency(server, r):
    _race(
        server.port,
        lambda c, i: c.execute_command("SAML.ARTIFACT.SET", f"art{i}", "payload"),
        lambda c, i: c.execute_command("SAML.ARTIFACT.RESOLVE", f"art{i}") is not None,
    )


def test_refresh_revocation_cascades_to_access_tokens(r):
    r.execute_command("OAUTH.TOKEN.SET", "at1", "alice", "read", "REFRESH_TOKEN", "rt1")
    r.execute_command("OAUTH.TOKEN.SET", "at2", "alice", "read", "REFRESH_TOKEN", "rt1")
    r.execute_command("OAUTH.TOKEN.SET", "at3", "alice", "read", "REFRESH_TOKEN", "rt3")
    assert r.execute_command("OAUTH.TOKEN.REVOKE", "rt1", "TOKEN_TYPE_HINT", "refresh_token") == 3
    assert r.exists("oauth:access_token:at1", "oauth:access_token:at2", "oauth:refresh_token:rt1") == 0
    assert r.execute_command("OAUTH.TOKEN.REVOKE", "at3") == 1
    assert j(r.execute_command("OAUTH.TOKEN.INTROSPECT", "rt3"))["active"] is True
    assert r.execute_command("OAUTH.TOKEN.REVOKE", "rt3") == 1


def test_revoke_all_of_a_user(r):
    r.execute_command("OAUTH.TOKEN.SET", "at1", "alice", "read", "REFRESH_TOKEN", "rt1")
    r.execute_command("OAUTH.IDTOKEN.SET", "id1", json.dumps({"sub": "alice", "iss": "https://idp"}))
    r.execute_command("SAML.SESSION.SET", "idx1", "alice", "PHNhbWw+")
    r.execute_command("CAS.TGT.SET", "TGT-1", "alice")
    r.execute_command("CAS.ST.SET", "ST-1", "TGT-1", APP)
    r.execute_command("OAUTH.TOKEN.SET", "bob1", "bob", "read")
    types = sorted(e["type"] for e in j(r.execute_command("SSO.USER.SESSIONS", "alice")))
    assert types == ["access_token", "cas_st", "cas_tgt", "id_token", "refresh_token", "saml_session"]
    assert r.execute_command("OAUTH.REVOKE_USER", "alice") == 6
    assert sorted(r.keys("*")) == ["oauth:access_token:bob1", "sso:user:bob"]


def _events(p: redis.client.PubSub, until: Callable[[list[tuple[str, str]]], bool]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + 5
    while not until(seen) and time.monotonic() < deadline:
        m = p.get_message(timeout=0.5)
        if m and m["type"] == "pmessage":
            seen.append((m["channel"], m["data"]))
    return seen


def test_keyspace_notifications(server, r):
    r.config_set("notify-keyspace-events", "KEg$")
    sub = connect(server.port, decode_responses=True)
    p = sub.pubsub()
    try:
        p.psubscribe("__key*@0__:*")
        assert p.get_message(timeout=2)["type"] == "psubscribe"
        r.execute_command("OAUTH.TOKEN.SET", "at1", "alice", "read")
        r.execute_command("OAUTH.CODE.SET", "c1", "app", "https://app/cb", "alice", "openid")
        r.execute_command("OAUTH.TOKEN.REVOKE", "at1")
        r.execute_command("OAUTH.CODE.CONSUME", "c1")
        seen = _events(p, lambda s: ("__keyspace@0__:oauth:auth_code:c1", "del") in s)
        on = {key: [e for c, e in seen if c == f"__keyspace@0__:{key}"]
              for key in ("oauth:access_token:at1", "oauth:auth_code:c1")}
        assert on["oauth:access_token:at1"] == ["set", "expire", "revoked", "del"]
        assert on["oauth:auth_code:c1"] == ["set", "expire", "consumed", "del"]
        assert ("__keyevent@0__:revoked", "oauth:access_token:at1") in seen
        assert ("__keyevent@0__:consumed", "oauth:auth_code:c1") in seen
    finally:
        p.close()
        sub.close()
        r.config_set("notify-keyspace-events", "")


def test_tokens_survive_a_restart(tmp_path: Path):
    data_dir = str(tmp_path / "data")
    srv = start_tokenginx("--data-dir", data_dir)
    try:
        c = connect(srv.port, decode_responses=True)
        c.execute_command("OAUTH.TOKEN.SET", "at1", "alice", "read", "REFRESH_TOKEN", "rt1",
                          "CLIENT_ID", "app", "EXPIRES_IN", 600)
        c.execute_command("OAUTH.CODE.SET", "c1", "app", "https://app/cb", "alice", "openid")
        c.execute_command("CAS.TGT.SET", "TGT-1", "alice")
        c.execute_command("CAS.ST.SET", "ST-1", "TGT-1", APP)
        before = j(c.execute_command("OAUTH.TOKEN.INTROSPECT", "at1"))
        c.close()
    finally:
        stop_process(srv.proc)
        shutil.rmtree(srv.data_dir, ignore_errors=True)
    srv = start_tokenginx("--data-dir", data_dir)
    try:
        c = connect(srv.port, decode_responses=True)
        assert j(c.execute_command("OAUTH.TOKEN.INTROSPECT", "at1")) == before
        assert 590 <= c.ttl("oauth:access_token:at1") <= 600
        assert len(j(c.execute_command("SSO.USER.SESSIONS", "alice"))) == 5
        assert j(c.execute_command("OAUTH.CODE.CONSUME", "c1"))["code"] == "c1"
        assert c.execute_command("OAUTH.CODE.CONSUME", "c1") is None
        assert j(c.execute_command("CAS.ST.VALIDATE", "ST-1", APP))["valid"] is True
        assert c.execute_command("SSO.USER.REVOKE", "alice") == 3
        c.close()
    finally:
        stop_process(srv.proc)
        shutil.rmtree(srv.data_dir, ignore_errors=True)


def test_seed_000_oauth2_token_store(server, r, capsys):
    """The sample runs unchanged (port redirected); its tokens are introspectable until
    its own ``revoke_token`` deletes them."""
    ns = run_oauth2_token_store_sample(server.port)
    store = ns["store"]
    try:
        out = capsys.readouterr().out
        assert "Token valid for user: user123" in out
        access = ns["access_token"]
        info = j(r.execute_command("OAUTH.TOKEN.INTROSPECT", access))
        iat = info.pop("iat")
        assert abs(iat - time.time()) < 60  # its ISO created_at, read as local time
        assert info.pop("exp") - iat in (3599, 3600, 3601)
        assert info == {"active": True, "scope": "read write", "client_id": "client_app",
                        "username": "user123", "sub": "user123", "token_type": "Bearer"}
        assert r.execute_command("OAUTH.INTROSPECT", access)[:3] == [1, "user123", "read write"]
        assert j(r.execute_command("OAUTH.TOKEN.GET", access))["scope"] == "read write"
        store.revoke_token(access)
        assert r.execute_command("OAUTH.TOKEN.INTROSPECT", access) == '{"active":false}'
        assert r.execute_command("OAUTH.INTROSPECT", access) == [0]

        refresh = ns["refresh_token"]
        assert j(r.execute_command("OAUTH.TOKEN.INTROSPECT", refresh))["token_type"] == "refresh"
        assert r.execute_command("OAUTH.TOKEN.REVOKE", refresh) == 1  # ours revokes theirs
        assert store.refresh_access_token(refresh) is None
    finally:
        store.client.close()
