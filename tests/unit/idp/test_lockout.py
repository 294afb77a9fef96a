"""Brute-force lockout (contract §8.7) through the real gate, on a hand-moved clock."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import GateHarness
from tokenginx.config import Config
from tokenginx.idp.accounts import BAD_CREDENTIALS, LOCKED, Accounts, LoginFailed
from tokenginx.idp.lockout import MAX_DELAY_S


def make(threshold: int = 3, seconds: int = 60, ip_threshold: int = 0, delay_ms: int = 0) -> GateHarness:
    config = Config()
    config.idp.enabled = True
    config.idp.lockout_threshold = threshold
    config.idp.lockout_seconds = seconds
    config.idp.lockout_ip_threshold = ip_threshold
    config.idp.lockout_delay_ms = delay_ms
    return GateHarness(config)


def accounts_of(h: GateHarness) -> Accounts:
    assert h.server.idp is not None
    return h.server.idp.accounts


def attempt(accounts: Accounts, user: str, password: str, ip: str = "10.0.0.1") -> LoginFailed | None:
    try:
        asyncio.run(accounts.authenticate(user, password, ip))
    except LoginFailed as e:
        return e
    return None


@pytest.fixture
def h() -> GateHarness:
    return make()


def test_locks_after_threshold_then_unlocks_after_the_ban(h: GateHarness) -> None:
    acc = accounts_of(h)
    asyncio.run(acc.create("alice", "password1"))
    for _ in range(2):
        e = attempt(acc, "alice", "nope-nope")
        assert e is not None and (e.message, e.retry_after) == (BAD_CREDENTIALS, None)
    e = attempt(acc, "alice", "nope-nope")
    assert e is not None and (e.message, e.retry_after) == (LOCKED, 60)
    # Locked: even the right password is refused, and the wait counts down.
    h.clock.advance(20_500)
    e = attempt(acc, "alice", "password1")
    assert e is not None and (e.message, e.retry_after) == (LOCKED, 40)
    h.clock.advance(40_000)
    assert attempt(acc, "alice", "password1") is None


def test_success_resets_the_counter(h: GateHarness) -> None:
    acc = accounts_of(h)
    asyncio.run(acc.create("bob", "password1"))
    for _ in range(2):
        assert attempt(acc, "bob", "wrong-pass") is not None
    assert attempt(acc, "bob", "password1") is None
    assert acc.lockout.failures("bob") == 0
    for _ in range(2):
        e = attempt(acc, "bob", "wrong-pass")
        assert e is not None and e.retry_after is None


def test_failures_are_forgotten_after_a_quiet_window(h: GateHarness) -> None:
    acc = accounts_of(h)
    asyncio.run(acc.create("carl", "password1"))
    for _ in range(2):
        attempt(acc, "carl", "wrong-pass")
    h.clock.advance(61_000)
    e = attempt(acc, "carl", "wrong-pass")
    assert e is not None and e.retry_after is None


def test_unknown_users_lock_exactly_like_real_ones(h: GateHarness) -> None:
    acc = accounts_of(h)
    asyncio.run(acc.create("dana", "password1"))
    seen = {}
    for user in ("dana", "ghost"):
        seen[user] = [(e.message, e.retry_after) for e in
                      (attempt(acc, user, "wrong-pass") for _ in range(4)) if e is not None]
    assert seen["dana"] == seen["ghost"] == [
        (BAD_CREDENTIALS, None), (BAD_CREDENTIALS, None), (LOCKED, 60), (LOCKED, 60)]


def test_lock_is_per_username(h: GateHarness) -> None:
    acc = accounts_of(h)
    for name in ("erin", "fred"):
        asyncio.run(acc.create(name, "password1"))
    for _ in range(3):
        attempt(acc, "erin", "wrong-pass")
    assert attempt(acc, "fred", "password1") is None
    assert attempt(acc, "ERIN", "password1").retry_after == 60  # case-insensitive names


def test_ip_lockout_across_usernames() -> None:
    h = make(threshold=10, ip_threshold=4)
    acc = accounts_of(h)
    asyncio.run(acc.create("gus", "password1"))
    for i in range(3):
        e = attempt(acc, f"user{i}", "wrong-pass", ip="203.0.113.9")
        assert e is not None and e.retry_after is None
    e = attempt(acc, "user9", "wrong-pass", ip="203.0.113.9")
    assert e is not None and e.retry_after == 60
    assert attempt(acc, "gus", "password1", ip="203.0.113.9").retry_after == 60
    assert attempt(acc, "gus", "password1", ip="198.51.100.1") is None


def test_admin_enable_and_reset_lift_the_lock(h: GateHarness) -> None:
    acc = accounts_of(h)
    asyncio.run(acc.create("hank", "password1"))
    for _ in range(3):
        attempt(acc, "hank", "wrong-pass")
    acc.set_disabled("hank", False)
    assert attempt(acc, "hank", "password1") is None
    for _ in range(3):
        attempt(acc, "hank", "wrong-pass")
    asyncio.run(acc.reset_password("hank", "password2"))
    assert attempt(acc, "hank", "password2") is None


def test_lockout_threshold_zero_disables_it() -> None:
    h = make(threshold=0)
    acc = accounts_of(h)
    asyncio.run(acc.create("ivy", "password1"))
    for _ in range(6):
        assert attempt(acc, "ivy", "wrong-pass").retry_after is None
    assert attempt(acc, "ivy", "password1") is None


def test_state_lives_in_the_keyspace_with_ttl(h: GateHarness) -> None:
    acc = accounts_of(h)
    attempt(acc, "jay", "wrong-pass")
    assert h.ok("GET", "idp:fail:user:jay") == b"1"
    assert 0 < h.ok("TTL", "idp:fail:user:jay") <= 60
    assert h.ok("GET", "idp:fail:pair:jay@10.0.0.1") == b"1"
    assert h.ok("GET", "idp:fail:ip:10.0.0.1") is None  # the IP ceiling is off here
    attempt(acc, "jay", "wrong-pass")
    attempt(acc, "jay", "wrong-pass")
    assert h.ok("TTL", "idp:lock:pair:jay@10.0.0.1") == 60
    assert h.ok("EXISTS", "idp:fail:pair:jay@10.0.0.1") == 0
    assert h.ok("GET", "idp:fail:user:jay") == b"3"  # under the account-wide threshold


def test_progressive_delay() -> None:
    h = make(threshold=10, delay_ms=100)
    lockout = accounts_of(h).lockout
    assert [lockout.delay(n) for n in (0, 1, 2, 3, 4)] == [0.0, 0.0, 0.1, 0.2, 0.4]
    assert lockout.delay(1000) == MAX_DELAY_S
    acc = accounts_of(h)
    attempt(acc, "kate", "wrong-pass")
    t0 = time.monotonic()
    attempt(acc, "kate", "wrong-pass")  # the second consecutive failure waits 0.1 s
    assert time.monotonic() - t0 >= 0.1


def test_one_address_failing_does_not_lock_the_account_for_others() -> None:
    # Users behind one proxy, or an attacker trying to lock a victim out from afar.
    h = make(threshold=3, ip_threshold=0)
    acc = accounts_of(h)
    asyncio.run(acc.create("kim", "password1"))
    for _ in range(3):
        attempt(acc, "kim", "wrong-pass", ip="203.0.113.66")
    assert attempt(acc, "kim", "password1", ip="203.0.113.66").retry_after == 60
    assert attempt(acc, "kim", "password1", ip="198.51.100.7") is None


def test_many_addresses_guessing_one_account_lock_it() -> None:
    h = make(threshold=3, ip_threshold=0)
    h.state.config.idp.lockout_user_threshold = 5
    acc = accounts_of(h)
    asyncio.run(acc.create("lou", "password1"))
    for i in range(5):
        e = attempt(acc, "lou", "wrong-pass", ip=f"203.0.113.{i}")
    assert e is not None and e.retry_after == 60
    assert attempt(acc, "lou", "password1", ip="198.51.100.7").retry_after == 60
    acc.lockout.unlock("lou")
    assert attempt(acc, "lou", "password1", ip="198.51.100.7") is None


def test_unlock_lifts_the_per_address_locks_too() -> None:
    h = make(threshold=2, ip_threshold=0)
    acc = accounts_of(h)
    asyncio.run(acc.create("max", "password1"))
    for ip in ("10.1.1.1", "10.1.1.2"):
        for _ in range(2):
            attempt(acc, "max", "wrong-pass", ip=ip)
        assert attempt(acc, "max", "password1", ip=ip).retry_after == 60
    acc.lockout.unlock("max")
    assert h.call("KEYS", "idp:*:pair:max@*") == []
    assert attempt(acc, "max", "password1", ip="10.1.1.1") is None
