"""The SSO domain gives the same answers whichever door asks.

Every test runs once per door registered in ``sso_doors.DOORS`` (RESP today; HTTP and
gRPC register their adapters there) against one real server process, and asserts the
same expected values — so two doors that pass agree with each other. The cross-door
test additionally writes through one door and reads through another.
"""

from __future__ import annotations

import itertools
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import RunningServer, start_tokenginx, stop_process
from tests.integration.sso_doors import DOORS, DoorRefused, SSODoor, run_oauth2_token_store_sample

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")

APP = "https://app.example.com"
ROUNDS = 25  # races per concurrency test


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    srv = start_tokenginx()
    yield srv
    stop_process(srv.proc)
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture(params=sorted(DOORS))
def make_door(request: pytest.FixtureRequest, server: RunningServer) -> Iterator[Callable[[], SSODoor]]:
    made: list[SSODoor] = []

    def make() -> SSODoor:
        door = DOORS[request.param](server)
        made.append(door)
        return door

    yield make
    for door in made:
        door.close()


@pytest.fixture
def door(make_door: Callable[[], SSODoor]) -> SSODoor:
    return make_door()


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def near_now(t: Any, ahead: int = 0) -> bool:
    """``t`` is a Unix time (int) about ``ahead`` seconds from now."""
    return isinstance(t, int) and abs(t - time.time() - ahead) < 30


# -- OAuth ---------------------------------------------------------------------------------
def test_token_round_trip(door):
    at, rt, user = uid("at"), uid("rt"), uid("user")
    door.set_token(at, user, "openid email", expires_in=300, refresh_token=rt, client_id="app",
                   metadata={"ip": "10.0.0.1"})
    got = door.get_token(at)
    assert got is not None and near_now(got["created_at"])
    assert got["expires_at"] - got["created_at"] in (299, 300, 301)
    assert {k: v for k, v in got.items() if k not in ("created_at", "expires_at")} == {
        "token_id": at, "user_id": user, "client_id": "app", "scope": "openid email",
        "token_type": "Bearer", "refresh_token": rt, "metadata": {"ip": "10.0.0.1"}}
    assert door.get_token(uid("nope")) is None


def test_introspection(door):
    at, user = uid("at"), uid("user")
    door.set_token(at, user, "read", expires_in=120, client_id="app", refresh_token=uid("rt"))
    info = door.introspect(at)
    assert near_now(info.pop("iat")) and near_now(info.pop("exp"), 120)
    assert info == {"active": True, "scope": "read", "client_id": "app", "username": user,
                    "sub": user, "token_type": "Bearer"}
    assert door.introspect(at, "refresh_token")["active"] is True  # a wrong hint still finds it
    assert door.introspect(uid("nope")) == {"active": False}


def test_revocation(door):
    user, rt = uid("user"), uid("rt")
    at1, at2 = uid("at"), uid("at")
    door.set_token(at1, user, "read", refresh_token=rt)
    door.set_token(at2, user, "read", refresh_token=rt)
    assert door.revoke(at1, "access_token") == 1
    assert door.introspect(rt)["active"] is True  # access revocation leaves the refresh token
    assert door.revoke(at1) == 0  # idempotent
    assert door.revoke(rt, "refresh_token") == 2  # the refresh token and at2 issued from it
    assert door.introspect(at2) == {"active": False}
    at3, rt3 = uid("at"), uid("rt")
    door.set_token(at3, user, "read", refresh_token=rt3)
    assert door.revoke(at3, cascade=True) == 2
    assert door.introspect(rt3) == {"active": False}


def test_code_is_consumed_once(door):
    code, user = uid("code"), uid("user")
    door.set_code(code, "app", "https://app/cb", user, "openid", code_challenge="E9Mel",
                  code_challenge_method="S256")
    record = door.consume_code(code)
    assert record is not None
    assert (record["code"], record["client_id"], record["redirect_uri"], record["user_id"],
            record["scope"], record["code_challenge"], record["code_challenge_method"]) == (
        code, "app", "https://app/cb", user, "openid", "E9Mel", "S256")
    assert door.consume_code(code) is None


# -- SAML ----------------------------------------------------------------------------------
def test_saml_sessions(door):
    name_id, idx1, idx2 = uid("alice") + "@example.com", uid("idx"), uid("idx")
    fmt = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
    door.set_saml_session(idx1, name_id, "PHNhbWw+", expires_in=600, name_id_format=fmt,
                          attributes={"groups": ["staff"]})
    door.set_saml_session(idx2, name_id, "PHNhbWwy", expires_in=600)
    got = door.get_saml_session(idx1)
    assert got is not None and near_now(got.pop("created_at")) and near_now(got.pop("expires_at"), 600)
    assert got == {"session_index": idx1, "name_id": name_id, "name_id_format": fmt,
                   "assertion": "PHNhbWw+", "attributes": {"groups": ["staff"]}}
    assert sorted(s["session_index"] for s in door.list_saml_sessions(name_id)) == sorted([idx1, idx2])
    assert door.del_saml_session(idx1) is True
    assert door.del_saml_session(idx1) is False
    assert door.get_saml_session(idx1) is None
    assert [s["session_index"] for s in door.list_saml_sessions(name_id)] == [idx2]


# -- CAS -----------------------------------------------------------------------------------
def test_cas_tickets(door):
    tgt, user = uid("TGT"), uid("user")
    door.set_tgt(tgt, user, expires_in=600, attributes={"mail": "a@example.com"})
    got = door.get_tgt(tgt)
    assert got is not None and near_now(got.pop("created_at")) and near_now(got.pop("expires_at"), 600)
    assert got == {"tgt_id": tgt, "user_id": user, "attributes": {"mail": "a@example.com"}}
    st1, st2, st3 = uid("ST"), uid("ST"), uid("ST")
    door.set_st(st1, tgt, APP)
    assert door.validate_st(st1, APP) == {
        "valid": True, "user_id": user, "attributes": {"mail": "a@example.com"}, "service": APP}
    assert door.validate_st(st1, APP) == {
        "valid": False, "code": "INVALID_TICKET", "message": "Ticket not found or expired"}
    door.set_st(st2, tgt, APP)
    assert door.validate_st(st2, "https://evil.example.com")["code"] == "INVALID_SERVICE"
    assert door.validate_st(st2, APP)["code"] == "INVALID_TICKET"  # consumed by the failure
    with pytest.raises(DoorRefused):
        door.set_st(uid("ST"), uid("TGT"), APP)
    door.set_st(st3, tgt, APP)
    assert door.del_tgt(tgt) is True
    assert door.del_tgt(tgt) is False
    assert door.get_tgt(tgt) is None
    assert door.validate_st(st3, APP)["valid"] is False


# -- lifetimes, races, users ------------------------------------------------------------------
def test_everything_expires(door):
    user = uid("user")
    at, code, idx, tgt, st = uid("at"), uid("code"), uid("idx"), uid("TGT"), uid("ST")
    door.set_token(at, user, "read", expires_in=1)
    door.set_code(code, "app", "https://app/cb", user, "openid", expires_in=1)
    door.set_saml_session(idx, user, "a", expires_in=1)
    door.set_tgt(tgt, user, expires_in=1)
    door.set_st(st, tgt, APP, expires_in=1)
    assert door.introspect(at)["active"] is True
    assert len(door.list_user_sessions(user)) == 5
    time.sleep(1.1)
    assert door.introspect(at) == {"active": False}
    assert door.get_token(at) is None
    assert door.consume_code(code) is None
    assert door.get_saml_session(idx) is None
    assert door.get_tgt(tgt) is None
    assert door.validate_st(st, APP)["valid"] is False
    assert door.list_user_sessions(user) == []


def _race(make_door: Callable[[], SSODoor], attempt: Callable[[SSODoor, str], bool],
          prepare: Callable[[SSODoor], str]) -> None:
    """``ROUNDS`` times: two doors (own connections, own threads) released together
    try the same one-use artifact; exactly one may win."""
    setup, a, b = make_door(), make_door(), make_door()
    with ThreadPoolExecutor(2) as pool:
        for _ in range(ROUNDS):
            ticket = prepare(setup)
            barrier = threading.Barrier(2)

            def go(door: SSODoor, ticket: str = ticket, barrier: threading.Barrier = barrier) -> bool:
                barrier.wait(5)
                return attempt(door, ticket)

            outcomes = [f.result(10) for f in (pool.submit(go, a), pool.submit(go, b))]
            assert sorted(outcomes) == [False, True]


def test_concurrent_code_consumption(make_door):
    def prepare(door: SSODoor) -> str:
        code = uid("code")
        door.set_code(code, "app", "https://app/cb", "racer", "openid")
        return code

    _race(make_door, lambda door, code: door.consume_code(code) is not None, prepare)


def test_concurrent_st_validation(make_door):
    tgt = uid("TGT")

    def prepare(door: SSODoor) -> str:
        if door.get_tgt(tgt) is None:
            door.set_tgt(tgt, "racer")
        st = uid("ST")
        door.set_st(st, tgt, APP)
        return st

    _race(make_door, lambda door, st: door.validate_st(st, APP)["valid"], prepare)


def test_revoke_everything_of_a_user(door):
    user, other = uid("user"), uid("user")
    at, rt, code, idx, tgt, st = uid("at"), uid("rt"), uid("code"), uid("idx"), uid("TGT"), uid("ST")
    door.set_token(at, user, "read", refresh_token=rt)
    door.set_code(code, "app", "https://app/cb", user, "openid")
    door.set_saml_session(idx, user, "a")
    door.set_tgt(tgt, user)
    door.set_st(st, tgt, APP)
    keep = uid("at")
    door.set_token(keep, other, "read")
    listed = door.list_user_sessions(user)
    assert sorted(e["type"] for e in listed) == [
        "access_token", "auth_code", "cas_st", "cas_tgt", "refresh_token", "saml_session"]
    assert {e["id"] for e in listed} == {at, rt, code, idx, tgt, st}
    assert all(e["expires_at"] > time.time() for e in listed)
    assert door.revoke_user(user) == 6
    assert door.list_user_sessions(user) == []
    assert door.introspect(at) == {"active": False} and door.introspect(rt) == {"active": False}
    assert door.consume_code(code) is None
    assert door.get_saml_session(idx) is None and door.get_tgt(tgt) is None
    assert door.validate_st(st, APP)["valid"] is False
    assert door.introspect(keep)["active"] is True
    assert door.revoke_user(user) == 0


@pytest.mark.parametrize(("writer", "reader"), list(itertools.product(sorted(DOORS), repeat=2)))
def test_written_through_one_door_read_through_another(server, writer, reader):
    w, r = DOORS[writer](server), DOORS[reader](server)
    try:
        at, user, idx, tgt, st = uid("at"), uid("user"), uid("idx"), uid("TGT"), uid("ST")
        w.set_token(at, user, "read", client_id="app")
        w.set_saml_session(idx, user, "a")
        w.set_tgt(tgt, user)
        w.set_st(st, tgt, APP)
        assert r.introspect(at)["sub"] == user
        assert r.get_token(at) == w.get_token(at)
        assert r.get_saml_session(idx) == w.get_saml_session(idx)
        assert r.list_user_sessions(user) == w.list_user_sessions(user)
        assert r.validate_st(st, APP)["valid"] is True
        assert w.validate_st(st, APP)["valid"] is False
        assert r.revoke_user(user) == 3
        assert w.introspect(at) == {"active": False}
    finally:
        w.close()
        r.close()


def test_seed_000_token_store_tokens_are_introspectable(door, server):
    ns = run_oauth2_token_store_sample(server.port)
    store = ns["store"]
    try:
        access, refresh, new_access = ns["access_token"], ns["refresh_token"], ns["new_access_token"]
        for token in (access, new_access):
            info = door.introspect(token)
            assert info["active"] is True and info["sub"] == "user123"
            assert info["scope"] == "read write" and info["client_id"] == "client_app"
        assert door.introspect(refresh, "refresh_token")["active"] is True
        store.revoke_token(access)
        assert door.introspect(access) == {"active": False}
        assert door.introspect(new_access)["active"] is True
        store.revoke_token(refresh, token_type="refresh")
        assert door.introspect(refresh) == {"active": False}
        assert door.revoke(new_access) == 1
        assert store.verify_access_token(new_access) is None
    finally:
        store.client.close()
