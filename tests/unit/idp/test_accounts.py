"""User accounts through the real gate, on a hand-moved clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import GateHarness
from tokenginx.config import Config
from tokenginx.idp import passwords
from tokenginx.idp.accounts import (
    BAD_CREDENTIALS,
    Account,
    AccountError,
    Accounts,
    LoginFailed,
    UnknownAccount,
)


@pytest.fixture
def harness() -> GateHarness:
    config = Config()
    config.idp.enabled = True
    config.idp.lockout_delay_ms = 0
    return GateHarness(config)


@pytest.fixture
def accounts(harness: GateHarness) -> Accounts:
    assert harness.server.idp is not None
    return harness.server.idp.accounts


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def login(accounts: Accounts, user: str, password: str, ip: str = "10.0.0.1") -> Account:
    return run(accounts.authenticate(user, password, ip))


def test_create_stores_an_argon2id_hash_and_returns_no_secret(
    accounts: Accounts, harness: GateHarness
) -> None:
    a = run(accounts.create("Alice", "correct horse", email="alice@example.com",
                            phone="+1 555 0100", nickname="Al"))
    assert a.username == "alice"  # usernames are case-insensitive, stored lower case
    assert (a.email, a.phone, a.nickname, a.disabled) == ("alice@example.com", "+1 555 0100", "Al", False)
    assert a.created_at == harness.clock.now // 1000
    assert a.last_login_at is None and a.last_login_ip is None
    stored = harness.ok("HGET", "idp:user:alice", "password")
    assert stored.startswith(b"$argon2id$")
    assert b"correct horse" not in b"".join(harness.ok("HGETALL", "idp:user:alice").values())
    public = a.public()
    assert "password" not in public and stored.decode() not in repr(public)
    assert public["id"] == public["username"] == "alice"
    assert public["status"] is True and public["is_superuser"] is False
    assert public["created_at"].endswith("Z") and public["last_login_at"] is None
    assert accounts.get("ALICE") == a
    assert harness.ok("TTL", "idp:user:alice") == -1  # accounts never expire


def test_duplicates_and_bad_input_are_refused(accounts: Accounts) -> None:
    run(accounts.create("bob", "password1"))
    with pytest.raises(AccountError, match="already exists"):
        run(accounts.create("BOB", "password2"))
    # "\u212a" (Kelvin sign) lower-cases to "k": the rules apply before lower-casing.
    for name in ("", "-bob", "a b", "x" * 65, "bo\nb", "bo/b", " bob", "\u212aim", "bób"):
        with pytest.raises(AccountError, match="username"):
            run(accounts.create(name, "password1"))
    with pytest.raises(AccountError, match="at least 8"):
        run(accounts.create("carol", "short"))
    with pytest.raises(AccountError, match="at most 1024"):
        run(accounts.create("carol", "x" * 1025))
    with pytest.raises(AccountError, match="email"):
        run(accounts.create("carol", "password1", email="not-an-email"))
    with pytest.raises(AccountError, match="phone"):
        run(accounts.create("carol", "password1", phone="call me"))
    with pytest.raises(AccountError, match="nickname"):
        run(accounts.create("carol", "password1", nickname="a\x00b"))
    assert accounts.get("carol") is None
    assert [a.username for a in accounts.list()] == ["bob"]


def test_login_records_time_and_ip(accounts: Accounts, harness: GateHarness) -> None:
    run(accounts.create("dave", "password1"))
    harness.clock.advance(5000)
    a = login(accounts, "Dave", "password1", "192.0.2.7")
    assert a.last_login_at == harness.clock.now // 1000
    assert a.last_login_ip == "192.0.2.7"
    assert accounts.get("dave") == a
    assert a.public()["last_login_ip"] == "192.0.2.7"


def test_unknown_user_and_wrong_password_fail_alike(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(accounts.create("erin", "password1"))
    verified: list[str] = []
    real = passwords.verify_password

    async def spy(encoded: str, password: str) -> bool:
        verified.append(encoded)
        return await real(encoded, password)

    monkeypatch.setattr(passwords, "verify_password", spy)
    errors = []
    for user, pw in (("erin", "wrong-password"), ("nobody", "wrong-password")):
        with pytest.raises(LoginFailed) as e:
            login(accounts, user, pw)
        errors.append((e.value.message, e.value.retry_after))
    assert errors == [(BAD_CREDENTIALS, None)] * 2
    # The unknown user was checked against a real argon2 hash too (same cost).
    assert len(verified) == 2 and all(h.startswith("$argon2id$") for h in verified)
    assert verified[0] != verified[1]


def test_disabled_account_cannot_log_in_and_loses_its_tokens(
    accounts: Accounts, harness: GateHarness
) -> None:
    run(accounts.create("frank", "password1"))
    harness.ok("OAUTH.TOKEN.SET", "tok-frank", "frank", "", "EXPIRES_IN", 100)
    accounts.set_disabled("frank", True)
    assert harness.ok("OAUTH.TOKEN.GET", "tok-frank") is None
    assert accounts.get("frank").disabled is True
    with pytest.raises(LoginFailed) as e:
        login(accounts, "frank", "password1")
    assert e.value.message == BAD_CREDENTIALS
    accounts.set_disabled("frank", False)
    assert login(accounts, "frank", "password1").username == "frank"
    with pytest.raises(UnknownAccount):
        accounts.set_disabled("ghost", True)


def test_reset_password_revokes_tokens(accounts: Accounts, harness: GateHarness) -> None:
    run(accounts.create("gina", "password1"))
    harness.ok("OAUTH.TOKEN.SET", "tok-gina", "gina", "", "EXPIRES_IN", 100)
    run(accounts.reset_password("gina", "password2"))
    assert harness.ok("OAUTH.TOKEN.GET", "tok-gina") is None
    with pytest.raises(LoginFailed):
        login(accounts, "gina", "password1")
    assert login(accounts, "gina", "password2").username == "gina"
    with pytest.raises(AccountError, match="at least"):
        run(accounts.reset_password("gina", "x"))
    with pytest.raises(UnknownAccount):
        run(accounts.reset_password("ghost", "password3"))


def test_delete_and_list(accounts: Accounts, harness: GateHarness) -> None:
    for name in ("zed", "amy", "kim"):
        run(accounts.create(name, "password1"))
    harness.ok("OAUTH.TOKEN.SET", "tok-kim", "kim", "", "EXPIRES_IN", 100)
    assert [a.username for a in accounts.list()] == ["amy", "kim", "zed"]
    assert accounts.delete("KIM") is True
    assert accounts.delete("kim") is False
    assert accounts.delete("not valid!") is False
    assert harness.ok("OAUTH.TOKEN.GET", "tok-kim") is None
    harness.ok("DEL", "idp:user:zed")  # removed behind the provider's back
    assert [a.username for a in accounts.list()] == ["amy"]
    with pytest.raises(LoginFailed):
        login(accounts, "kim", "password1")


def test_odd_inputs_never_crash(accounts: Accounts) -> None:
    assert accounts.get("") is None
    assert accounts.get("x" * 10_000) is None
    for user, pw in (("", "pw"), ("a" * 10_000, "pw"), ("ok", "p" * 5000), ("\x00", "")):
        with pytest.raises(LoginFailed) as e:
            login(accounts, user, pw)
        assert e.value.message == BAD_CREDENTIALS


def test_password_longer_than_the_limit_never_matches(accounts: Accounts) -> None:
    pw = "p" * 1024
    run(accounts.create("long", pw))
    assert login(accounts, "long", pw).username == "long"
    with pytest.raises(LoginFailed):
        login(accounts, "long", pw + "extra")  # not silently truncated to the stored one
