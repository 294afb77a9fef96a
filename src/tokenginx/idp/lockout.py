"""Brute-force protection for password logins (contract §8.7).

Failures are counted in the keyspace, so they survive restarts and are shared by every
node on a Redis backend, at three levels::

    idp:fail:pair:{username}@{ip}   lockout_threshold (5): one address guessing one
    idp:lock:pair:{username}@{ip}   account is stopped; nobody else is affected
    idp:fail:user:{username}        lockout_user_threshold (50): one account guessed
    idp:lock:user:{username}        from many addresses is locked for everyone
    idp:fail:ip:{ip}                lockout_ip_threshold (100): one address guessing
    idp:lock:ip:{ip}                many accounts is stopped

Counters expire after ``lockout_seconds`` without failures, locks after
``lockout_seconds``. So users behind one proxy or NAT are not locked out together by
one of them mistyping, and an attacker cannot lock a victim out with five wrong
passwords from the attacker's own address. Unknown usernames are counted like real
ones: a lockout must not reveal whether an account exists. A success resets the
username's counters, not the IP's (one valid account must not let an attacker reset
the counter of its address).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenginx.config import IdPConfig
    from tokenginx.idp.calls import GateCalls

log = logging.getLogger("tokenginx.security")

MAX_DELAY_S = 5.0


def _ttl_seconds(pttl: int) -> int:
    return max(1, -(-pttl // 1000))  # ceil: "Retry-After: 0" while still locked would lie


class Lockout:
    def __init__(self, calls: GateCalls, config: IdPConfig) -> None:
        self.calls = calls
        self.config = config

    # -- state -------------------------------------------------------------------------
    def retry_after(self, username: str, ip: str) -> int | None:
        """Seconds until ``username`` from ``ip`` may try again; None when not locked."""
        keys = []
        if username:
            keys.append(f"idp:lock:user:{username}")
            if ip:
                keys.append(f"idp:lock:pair:{username}@{ip}")
        if ip:
            keys.append(f"idp:lock:ip:{ip}")
        locked = [w for w in (self._locked(k) for k in keys) if w is not None]
        return max(locked) if locked else None

    def failures(self, username: str) -> int:
        """Recent failures for ``username`` from every address."""
        value = self.calls("GET", f"idp:fail:user:{username}")
        return int(value) if value else 0

    def _locked(self, key: str) -> int | None:
        pttl = self.calls("PTTL", key)
        if pttl == -2:
            return None
        if pttl < 0:  # a lock without TTL (set by hand): treat it as a full ban
            return self.config.lockout_seconds
        return _ttl_seconds(pttl)

    # -- events ------------------------------------------------------------------------
    def failure(self, username: str, ip: str) -> tuple[int, int | None]:
        """Count one failure: ``(consecutive failures of username from ip,
        retry_after)``, retry_after set when this failure locked something. An empty
        username (one no account can have) only counts towards the IP."""
        cfg = self.config
        window = max(1, cfg.lockout_seconds)
        count = 0
        locked: int | None = None
        levels: list[tuple[str, str, int]] = []
        if username:
            pair = f"{username}@{ip}" if ip else username
            levels.append(("pair", pair, cfg.lockout_threshold))
            levels.append(("user", username, cfg.lockout_user_threshold))
        if ip:
            levels.append(("ip", ip, cfg.lockout_ip_threshold))
        for level, name, threshold in levels:
            if threshold <= 0 and level != "pair":  # off; the pair count drives the delay
                continue
            n = self._count(f"idp:fail:{level}:{name}", window)
            if level == "pair":
                count = n
            if threshold > 0 and n >= threshold:
                locked = self._lock(f"idp:lock:{level}:{name}", f"idp:fail:{level}:{name}")
                log.warning("login locked: %s=%r after %d failures, for %ds", level, name, n, locked)
        return count, locked

    def success(self, username: str, ip: str = "") -> None:
        keys = [f"idp:fail:user:{username}"]
        if ip:
            keys.append(f"idp:fail:pair:{username}@{ip}")
        self.calls("DEL", *keys)

    def unlock(self, username: str) -> None:
        """Lift every lock of ``username`` and forget its failures (an admin action)."""
        keys = {f"idp:lock:user:{username}", f"idp:fail:user:{username}"}
        for kind in ("lock", "fail"):
            keys.update(self._scan(f"idp:{kind}:pair:{_glob_escape(username)}@*"))
        self.calls("DEL", *sorted(keys))

    def _scan(self, pattern: str) -> list[str]:
        found: list[str] = []
        cursor = b"0"
        while True:
            cursor, keys = self.calls("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            found.extend(k.decode() if isinstance(k, bytes) else k for k in keys)
            if cursor in (b"0", 0, "0"):
                return found

    def delay(self, count: int) -> float:
        """Seconds to wait before answering the ``count``-th consecutive failure."""
        base = self.config.lockout_delay_ms
        if base <= 0 or count < 2:
            return 0.0
        return min(MAX_DELAY_S, base * 2 ** min(count - 2, 16) / 1000)

    def _count(self, key: str, window: int) -> int:
        count = int(self.calls("INCR", key))
        if count == 1:
            self.calls("EXPIRE", key, window)
        return count

    def _lock(self, lock_key: str, counter_key: str) -> int:
        seconds = max(1, self.config.lockout_seconds)
        self.calls("SET", lock_key, "1", "EX", seconds)
        self.calls("DEL", counter_key)
        return seconds


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
