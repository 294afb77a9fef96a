"""Signing keys: creation, persistence in the keyspace, rotation, retention, JWKS."""

from __future__ import annotations

import asyncio

import pytest
from joserfc import jws, jwt
from joserfc.jwk import KeySet

from tests.conftest import GateHarness
from tokenginx.config import Config
from tokenginx.idp.keys import KEYS_KEY, SKEW, SigningKeys


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def h() -> GateHarness:
    config = Config()
    config.oauth.server.enabled = True
    return GateHarness(config)


def make(h: GateHarness, clock: Clock, rotation: int = 1000, retention: int = 300) -> SigningKeys:
    assert h.server.idp is not None
    return SigningKeys(h.server.idp.calls, rotation_seconds=rotation, retention=lambda: retention, clock=clock)


def decode(token: str, jwks: dict, alg: str) -> jwt.Token:
    return jwt.decode(token, KeySet.import_key_set(jwks), algorithms=[alg])


def kid_of(token: str) -> str:
    return jws.extract_compact(token.encode()).headers()["kid"]


def test_keys_created_on_first_use_and_stored(h: GateHarness) -> None:
    keys = make(h, Clock())
    asyncio.run(keys.ready())
    jwks = keys.jwks()
    assert sorted(k["alg"] for k in jwks["keys"]) == ["ES256", "RS256"]
    assert all("d" not in k for k in jwks["keys"])
    assert h.ok("HLEN", KEYS_KEY) == 2
    for alg in ("RS256", "ES256"):
        tok = keys.sign({"sub": "alice"}, alg)
        assert decode(tok, jwks, alg).claims == {"sub": "alice"}
        assert keys.verify(tok) == {"sub": "alice"}


def test_sign_without_ready_creates_the_key(h: GateHarness) -> None:
    keys = make(h, Clock())
    tok = keys.sign({"a": 1}, "ES256", typ="logout+jwt")
    token = decode(tok, keys.jwks(), "ES256")
    assert token.header["typ"] == "logout+jwt" and token.header["kid"] == keys.jwks()["keys"][0]["kid"]
    with pytest.raises(ValueError):
        keys.sign({}, "HS256")


def test_another_instance_uses_the_same_keys(h: GateHarness) -> None:
    clock = Clock()
    a = make(h, clock)
    asyncio.run(a.ready())
    b = make(h, clock)
    asyncio.run(b.ready())  # nothing due: no new keys
    assert a.jwks() == b.jwks()
    assert b.verify(a.sign({"x": 1})) == {"x": 1}


def test_rotation_on_schedule_and_retention(h: GateHarness) -> None:
    clock = Clock()
    keys = make(h, clock, rotation=1000, retention=300)
    asyncio.run(keys.ready())
    old = keys.sign({"n": 1})
    old_kid = kid_of(old)
    clock.now += 999
    asyncio.run(keys.ready())
    assert len(keys.jwks()["keys"]) == 2  # not due yet
    clock.now += 1
    asyncio.run(keys.ready())
    jwks = keys.jwks()
    assert len(jwks["keys"]) == 4
    new = keys.sign({"n": 2})
    new_kid = kid_of(new)
    assert new_kid != old_kid
    kids = [k["kid"] for k in jwks["keys"]]
    assert kids.index(new_kid) < kids.index(old_kid)
    assert keys.verify(old) == {"n": 1}  # the old key still verifies
    clock.now += 300 + SKEW - 1
    assert old_kid in [k["kid"] for k in keys.jwks()["keys"]]
    clock.now += 1
    assert old_kid not in [k["kid"] for k in keys.jwks()["keys"]]
    assert h.ok("HLEN", KEYS_KEY) == 2  # dropped from the store too
    with pytest.raises(ValueError):
        keys.verify(old)


def test_manual_rotation(h: GateHarness) -> None:
    keys = make(h, Clock(), rotation=0)
    asyncio.run(keys.ready())
    before = {k["kid"] for k in keys.kids()}
    new = asyncio.run(keys.rotate())
    assert len(new) == 2 and not set(new) & before
    listed = {k["kid"]: k for k in keys.kids()}
    assert all(listed[k]["retired_at"] for k in before)
    assert all(listed[k]["retired_at"] is None for k in new)


def test_no_scheduled_rotation_when_period_is_zero(h: GateHarness) -> None:
    clock = Clock()
    keys = make(h, clock, rotation=0)
    asyncio.run(keys.ready())
    clock.now += 10**9
    asyncio.run(keys.ready())
    assert len(keys.kids()) == 2


def test_verify_rejects_foreign_and_garbage_tokens(h: GateHarness) -> None:
    keys = make(h, Clock())
    other = GateHarness(h.server.config)
    assert other.server.idp is not None
    foreign = SigningKeys(other.server.idp.calls, rotation_seconds=0, retention=lambda: 1)
    with pytest.raises(ValueError):
        keys.verify(foreign.sign({"x": 1}))
    with pytest.raises(ValueError):
        keys.verify("not.a.jwt")
