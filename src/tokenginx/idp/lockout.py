"""Brute-force protection for password logins (contract §8.7).

Consecutive failures are counted per username and per client IP in the keyspace,
so they survive restarts and are shared by every node on a Redis backend::

    idp:fail:user:{username}   INCR counter, TTL lockout_seconds (a quiet window resets it)
    idp:fail:ip:{ip}
    idp:lock:user:{username}   exists while the account is locked (TTL = the ban)
    idp:lock:ip:{ip}

Unknown usernames are counted like real ones: a lockout must not reveal whether an
account exists. A success resets the username's counter, not the IP's (one valid
account must not let an attacker reset the counter of its address).
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
        """Seconds until ``username`` (or ``ip``) may try again; None when not locked."""
        waits = [self._locked(f"idp:lock:user:{username}")] if username else []
        if ip:
            waits.append(self._locked(f"idp:lock:ip:{ip}"))
        locked = [w for w in waits if w is not None]
        return max(locked) if locked else None

    def failures(self, username: str) -> int:
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
        """Count one failure: ``(consecutive failures of username, retry_after)``,
        retry_after set when this failure locked the account or the IP. An empty
        username (one no account can have) only counts towards the IP."""
        cfg = self.config
        window = max(1, cfg.lockout_seconds)
        count = self._count(f"idp:fail:user:{username}", window) if username else 0
        locked: int | None = None
        if username and cfg.lockout_threshold > 0 and count >= cfg.lockout_threshold:
            locked = self._lock(f"idp:lock:user:{username}", f"idp:fail:user:{username}")
            log.warning("login locked: user=%r after %d failures, for %ds", username, count, locked)
        if ip:
            ip_count = self._count(f"idp:fail:ip:{ip}", window)
            if cfg.lockout_ip_threshold > 0 and ip_count >= cfg.lockout_ip_threshold:
                locked = self._lock(f"idp:lock:ip:{ip}", f"idp:fail:ip:{ip}")
                log.warning("login locked: ip=%s after %d failures, for %ds", ip, ip_count, locked)
        return count, locked

    def success(self, username: str) -> None:
        self.calls("DEL", f"idp:fail:user:{username}")

    def unlock(self, username: str) -> None:
        """Lift the lock and forget the failures of ``username`` (an admin action)."""
        self.calls("DEL", f"idp:lock:user:{username}", f"idp:fail:user:{username}")

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
