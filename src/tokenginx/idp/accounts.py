"""User accounts of the identity provider: creation, password login, administration.

Each account is a hash without TTL in the keyspace, so it is persisted (WAL and
snapshot) and shared by every node on a Redis backend, and written through the gate
like any other data::

    idp:user:{username}   username, password (argon2id), email, phone, nickname, avatar,
                          disabled ("0"/"1"), created_at, last_login_at, last_login_ip
    idp:users             set of every username (for listing without SCAN)

Usernames are case-insensitive: they are stored and compared in lower case. The
password hash never leaves this module: :class:`Account` does not carry it.

Disabling an account, resetting its password or deleting it revokes everything the
user holds (``SSO.USER.REVOKE``): login tokens, OAuth tokens, browser sessions, CAS
tickets — they are all indexed by the username.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokenginx.idp import passwords
from tokenginx.idp.calls import StoreError
from tokenginx.idp.lockout import Lockout

if TYPE_CHECKING:
    from tokenginx.idp import IdP

log = logging.getLogger("tokenginx.security")

USERS_SET = "idp:users"
# The same rules are published as JSON-schema patterns in /openapi.json (api_auth.py).
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
# Explicit ranges, not \s: Python's and ECMA-262's whitespace classes differ.
EMAIL_PATTERN = r"^[^@\x00-\x20\x7f-\x9f]{1,64}@[^@\x00-\x20\x7f-\x9f]{1,189}$"
PHONE_PATTERN = r"^\+?[0-9][0-9 ().-]{2,31}$"
TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
USERNAME_RE = re.compile(USERNAME_PATTERN)
EMAIL_RE = re.compile(EMAIL_PATTERN)
PHONE_RE = re.compile(PHONE_PATTERN)
TEXT_RE = re.compile(TEXT_PATTERN)
MAX_PASSWORD = 1024  # argon2 takes any length; a bound keeps one request cheap
MAX_TEXT = 256

BAD_CREDENTIALS = "Invalid username or password"
LOCKED = "Too many failed login attempts; try again later"


class AccountError(ValueError):
    """An account operation refused, with a message fit for the caller."""


class UnknownAccount(AccountError):
    def __init__(self, username: str) -> None:
        super().__init__(f"no such user: {username}")
        self.username = username


class LoginFailed(Exception):
    """A refused login. The message is the same for an unknown user, a wrong password
    and a disabled account; ``retry_after`` (seconds) is set when locked out."""

    def __init__(self, message: str = BAD_CREDENTIALS, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def _iso(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass(frozen=True)
class Account:
    username: str
    email: str | None
    phone: str | None
    nickname: str | None
    disabled: bool
    created_at: int  # Unix seconds
    last_login_at: int | None
    last_login_ip: str | None
    avatar: str | None = None
    # Unix ms of the last password reset: browser sessions signed in before it are dead.
    credentials_changed_ms: int = 0

    def public(self) -> dict[str, Any]:
        """The seed 001 ``/users/me`` fields (no secrets). Accounts carry no admin
        rights — administration uses the server's API key — so ``is_superuser`` is
        always false; ``status`` is true for an enabled account, as in the seed."""
        return {
            "id": self.username,
            "username": self.username,
            "nickname": self.nickname,
            "email": self.email,
            "phone": self.phone,
            "avatar": self.avatar,
            "is_superuser": False,
            "status": not self.disabled,
            "disabled": self.disabled,
            "created_at": _iso(self.created_at),
            "last_login_at": _iso(self.last_login_at),
            "last_login_ip": self.last_login_ip,
        }


def canonical(username: object) -> str | None:
    """The stored (lower-case) form of a valid username; None for an invalid one.
    The rules are checked before lower-casing: ``str.lower`` maps some non-ASCII
    letters (the Kelvin sign) to ASCII ones."""
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
        return None
    return username.lower()


def check_username(username: object) -> str:
    name = canonical(username)
    if name is None:
        raise AccountError(
            "username must be 1-64 characters: letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return name


def _key(username: str) -> str:
    return f"idp:user:{username}"


def _text(record: dict[bytes, bytes], name: bytes) -> str | None:
    value = record.get(name)
    return value.decode("utf-8") if value else None


def _int(record: dict[bytes, bytes], name: bytes) -> int | None:
    value = record.get(name)
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _account(record: dict[bytes, bytes]) -> Account:
    return Account(
        username=_text(record, b"username") or "",
        email=_text(record, b"email"),
        phone=_text(record, b"phone"),
        nickname=_text(record, b"nickname"),
        disabled=record.get(b"disabled") == b"1",
        created_at=_int(record, b"created_at") or 0,
        last_login_at=_int(record, b"last_login_at"),
        last_login_ip=_text(record, b"last_login_ip"),
        avatar=_text(record, b"avatar"),
        credentials_changed_ms=_int(record, b"credentials_changed_ms") or 0,
    )


class Accounts:
    """``idp.accounts``: every operation on user accounts."""

    def __init__(self, idp: IdP) -> None:
        self.calls = idp.calls
        self.config = idp.config.idp
        self._clock = idp.server.state.clock
        self.lockout = Lockout(self.calls, self.config)
        self._dummy = passwords.DummyHash()
        self._tasks: set[asyncio.Task[None]] = set()

    def _now(self) -> int:
        return self._clock() // 1000

    def _record(self, username: str) -> dict[bytes, bytes] | None:
        record = self.calls("HGETALL", _key(username))
        return record if record and b"username" in record else None

    # -- validation --------------------------------------------------------------------
    def check_password(self, password: str) -> None:
        if not isinstance(password, str):
            raise AccountError("password must be a string")
        minimum = max(1, self.config.password_min_length)
        if len(password) < minimum:
            raise AccountError(f"password must be at least {minimum} characters")
        if len(password) > MAX_PASSWORD:
            raise AccountError(f"password must be at most {MAX_PASSWORD} characters")

    @staticmethod
    def _profile(email: str | None, phone: str | None, nickname: str | None,
                 avatar: str | None) -> dict[str, str]:
        fields: dict[str, str] = {}
        for name, value in (("email", email), ("phone", phone), ("nickname", nickname),
                            ("avatar", avatar)):
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise AccountError(f"{name} must be a string")
            if len(value) > MAX_TEXT or not TEXT_RE.fullmatch(value):
                raise AccountError(f"{name} must be at most {MAX_TEXT} printable characters")
            fields[name] = value
        if "email" in fields and not EMAIL_RE.fullmatch(fields["email"]):
            raise AccountError("email must look like name@domain")
        if "phone" in fields and not PHONE_RE.fullmatch(fields["phone"]):
            raise AccountError("phone must be digits, optionally with +, spaces, dots, dashes or ()")
        return fields

    # -- reads -------------------------------------------------------------------------
    def get(self, username: str) -> Account | None:
        name = canonical(username)
        if name is None:
            return None
        record = self._record(name)
        return None if record is None else _account(record)

    def list(self) -> list[Account]:
        out: list[Account] = []
        for raw in sorted(self.calls("SMEMBERS", USERS_SET)):
            name = raw.decode("utf-8")
            record = self._record(name)
            if record is None:
                self.calls("SREM", USERS_SET, name)  # deleted behind our back (DEL by hand)
                continue
            out.append(_account(record))
        return out

    # -- writes ------------------------------------------------------------------------
    async def create(
        self,
        username: str,
        password: str,
        *,
        email: str | None = None,
        phone: str | None = None,
        nickname: str | None = None,
        avatar: str | None = None,
    ) -> Account:
        name = check_username(username)
        self.check_password(password)
        profile = self._profile(email, phone, nickname, avatar)
        if self._record(name) is not None:
            raise AccountError(f"user {name} already exists")
        encoded = await passwords.hash_password(password)
        # HSETNX claims the name atomically (two concurrent creations, or two nodes).
        if not self.calls("HSETNX", _key(name), "username", name):
            raise AccountError(f"user {name} already exists")
        fields = {"password": encoded, "disabled": "0", "created_at": str(self._now()), **profile}
        argv: list[str] = []
        for field, value in fields.items():
            argv += [field, value]
        try:
            self.calls("HSET", _key(name), *argv)
            self.calls("SADD", USERS_SET, name)
        except StoreError:
            self.calls("DEL", _key(name))  # no half-made account (e.g. -OOM mid-way)
            raise
        log.info("account created: user=%r", name)
        record = self._record(name)
        assert record is not None
        return _account(record)

    async def reset_password(self, username: str, password: str) -> None:
        """Set a new password; every token and session of the user is revoked and any
        lockout lifted."""
        name = self._existing(username)
        self.check_password(password)
        encoded = await passwords.hash_password(password)
        if self._record(name) is None:  # deleted while hashing
            raise UnknownAccount(name)
        self.calls("HSET", _key(name), "password", encoded,
                   "credentials_changed_ms", int(time.time() * 1000))
        revoked = self.calls("SSO.USER.REVOKE", name)
        self.lockout.unlock(name)
        log.info("password reset: user=%r, %d tokens/sessions revoked", name, revoked)

    def set_disabled(self, username: str, disabled: bool) -> None:
        """Disable (revoking everything the user holds) or re-enable an account.
        Enabling also lifts a lockout."""
        name = self._existing(username)
        self.calls("HSET", _key(name), "disabled", "1" if disabled else "0")
        if disabled:
            revoked = self.calls("SSO.USER.REVOKE", name)
            log.info("account disabled: user=%r, %d tokens/sessions revoked", name, revoked)
        else:
            self.lockout.unlock(name)
            log.info("account enabled: user=%r", name)

    def delete(self, username: str) -> bool:
        name = canonical(username)
        if name is None:
            return False
        existed = bool(self.calls("DEL", _key(name)))
        self.calls("SREM", USERS_SET, name)
        if existed:
            revoked = self.calls("SSO.USER.REVOKE", name)
            self.lockout.unlock(name)
            log.info("account deleted: user=%r, %d tokens/sessions revoked", name, revoked)
        return existed

    def _existing(self, username: str) -> str:
        name = canonical(username)
        if name is None or self._record(name) is None:
            raise UnknownAccount(username if isinstance(username, str) else "")
        return name

    # -- login -------------------------------------------------------------------------
    async def authenticate(self, username: str, password: str, ip: str) -> Account:
        """The account for a correct ``username``/``password``, or :class:`LoginFailed`.

        Unknown users are verified against a dummy hash, so they cost the same time as
        a wrong password; disabled accounts fail like a wrong password. Failures count
        towards the lockout (contract §8.7), a success resets the user's counter and
        records the login time and IP.
        """
        dummy = await self._dummy.get()
        if not isinstance(username, str) or not isinstance(password, str):
            raise LoginFailed()
        # An invalid name can hold no account: it is only counted against the IP
        # (which also keeps attacker-chosen text out of the lockout keys).
        lock_name = canonical(username) or ""
        wait = self.lockout.retry_after(lock_name, ip)
        if wait is not None:
            log.warning("login refused (locked): user=%r ip=%s retry_after=%ds",
                        username[:64], ip, wait)
            raise LoginFailed(LOCKED, wait)

        record = self._record(lock_name) if lock_name else None
        encoded = record.get(b"password", b"").decode("utf-8") if record else ""
        ok = await passwords.verify_password(encoded or dummy, password[:MAX_PASSWORD])
        if ok and len(password) <= MAX_PASSWORD:
            # Re-read: the account may have been disabled, or its password reset, while
            # the hash was being verified.
            record = self._record(lock_name)
            if (record is not None and record.get(b"disabled") != b"1"
                    and record.get(b"password", b"").decode("utf-8") == encoded):
                return self._logged_in(lock_name, record, encoded, password, ip)
        raise await self._failed(lock_name, username, ip, known=record is not None)

    def _logged_in(self, name: str, record: dict[bytes, bytes], encoded: str, password: str,
                   ip: str) -> Account:
        now = self._now()
        self.lockout.success(name, ip)
        self.calls("HSET", _key(name), "last_login_at", str(now), "last_login_ip", ip)
        if passwords.needs_rehash(encoded):
            # Upgrade old parameters in the background; the login does not wait for it.
            task = asyncio.get_running_loop().create_task(self._rehash(name, encoded, password))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        log.info("login: user=%r ip=%s", name, ip)
        record = {**record, b"last_login_at": str(now).encode(), b"last_login_ip": ip.encode()}
        return _account(record)

    async def _rehash(self, name: str, old: str, password: str) -> None:
        encoded = await passwords.hash_password(password)
        record = self._record(name)
        if record is not None and record.get(b"password", b"").decode() == old:
            self.calls("HSET", _key(name), "password", encoded)

    async def _failed(self, lock_name: str, name: str, ip: str, *, known: bool) -> LoginFailed:
        """Count the failure, wait the progressive delay, and give the error to raise."""
        count, locked = self.lockout.failure(lock_name, ip)
        log.warning("login failed: user=%r ip=%s known=%s consecutive=%d",
                    name[:64], ip, known, count)
        if locked is not None:
            return LoginFailed(LOCKED, locked)
        delay = self.lockout.delay(count)
        if delay:
            await asyncio.sleep(delay)
        return LoginFailed()
