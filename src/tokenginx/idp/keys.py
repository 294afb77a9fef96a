"""Signing keys of the OpenID provider (ID tokens, logout tokens) and the JWKS.

One RS256 (RSA 2048) and one ES256 (P-256) key sign at a time. They live in the
keyspace hash ``idp:oauth:keys`` (field = kid, the RFC 7638 thumbprint; value = JSON
with the private JWK, ``created_at`` and ``retired_at``), so a restart, or another
node of a Redis backend, signs with the same keys. Keys are created on first use.

Rotation (on a schedule, ``oauth.server.key_rotation_seconds``, or on demand) adds a
new key per algorithm and retires the old one: a retired key signs nothing more but
stays in the JWKS until every token it signed has expired (``retention`` seconds,
the longest ID/access token lifetime plus a minute of clock skew), then it is
dropped. JOSE itself is joserfc's; nothing here encodes or checks a signature.

The private keys are as safe as the keyspace: restrict ``idp:*`` with the ACL and
protect the data directory like any secret.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey, import_key

if TYPE_CHECKING:
    from tokenginx.idp.calls import GateCalls

KEYS_KEY = "idp:oauth:keys"
ALGS = ("RS256", "ES256")
SKEW = 60


def generate(alg: str) -> dict[str, Any]:
    """A new private JWK for ``alg`` (CPU-bound: call it from a thread)."""
    if alg == "RS256":
        key: RSAKey | ECKey = RSAKey.generate_key(2048, private=True)
    elif alg == "ES256":
        key = ECKey.generate_key("P-256", private=True)
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    jwk = key.as_dict(private=True)
    jwk.update({"kid": key.thumbprint(), "alg": alg, "use": "sig"})
    return jwk


class SigningKeys:
    """``idp.keys``."""

    def __init__(self, calls: GateCalls, *, rotation_seconds: int,
                 retention: Callable[[], int], clock: Callable[[], float] = time.time) -> None:
        self._calls = calls
        self.rotation_seconds = rotation_seconds
        self._retention = retention
        self._clock = clock
        self._parsed: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    # -- reading --------------------------------------------------------------------
    def _records(self) -> list[dict[str, Any]]:
        reply = self._calls("HGETALL", KEYS_KEY) or []
        values = reply.values() if isinstance(reply, dict) else reply[1::2]
        out = []
        for raw in values:
            try:
                rec = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(rec, dict) and rec.get("alg") in ALGS and isinstance(rec.get("jwk"), dict):
                out.append(rec)
        out.sort(key=lambda r: (int(r.get("created_at") or 0), str(r.get("kid"))), reverse=True)
        return out

    def _current(self, records: list[dict[str, Any]], alg: str) -> dict[str, Any] | None:
        for rec in records:
            if rec["alg"] == alg and not rec.get("retired_at"):
                return rec
        return None

    def _due(self, records: list[dict[str, Any]], alg: str) -> bool:
        rec = self._current(records, alg)
        if rec is None:
            return True
        period = self.rotation_seconds
        return period > 0 and int(rec.get("created_at") or 0) + period <= self._clock()

    def _key(self, rec: dict[str, Any]) -> Any:
        kid = rec["kid"]
        key = self._parsed.get(kid)
        if key is None:
            key = self._parsed[kid] = import_key(rec["jwk"])
        return key

    # -- writing --------------------------------------------------------------------
    def _install(self, jwk: dict[str, Any]) -> dict[str, Any]:
        """Store a new key and retire the previous one of its algorithm."""
        now = int(self._clock())
        rec = {"kid": jwk["kid"], "alg": jwk["alg"], "jwk": jwk, "created_at": now, "retired_at": None}
        for old in self._records():
            if old["alg"] == jwk["alg"] and not old.get("retired_at"):
                old["retired_at"] = now
                self._calls("HSET", KEYS_KEY, old["kid"], orjson.dumps(old))
        self._calls("HSET", KEYS_KEY, rec["kid"], orjson.dumps(rec))
        return rec

    async def ready(self) -> None:
        """Create missing keys and rotate those past their period, off the event loop.
        Cheap when nothing is due (one HGETALL)."""
        if not any(self._due(self._records(), alg) for alg in ALGS):
            return
        async with self._lock:
            for alg in ALGS:
                if self._due(self._records(), alg):
                    self._install(await asyncio.to_thread(generate, alg))

    async def rotate(self) -> list[str]:
        """New keys for every algorithm now; returns their kids."""
        async with self._lock:
            return [self._install(await asyncio.to_thread(generate, alg))["kid"] for alg in ALGS]

    # -- public API -----------------------------------------------------------------
    def sign(self, claims: dict[str, Any], alg: str = "RS256", typ: str = "JWT") -> str:
        """A compact JWS of ``claims`` with the current key of ``alg`` (``kid`` in the
        header). Callers on the event loop should ``await ready()`` first; without a
        key one is created here, synchronously."""
        if alg not in ALGS:
            raise ValueError(f"unsupported signing algorithm {alg!r}")
        rec = self._current(self._records(), alg)
        if rec is None:
            rec = self._install(generate(alg))
        return jwt.encode({"alg": alg, "kid": rec["kid"], "typ": typ}, claims, self._key(rec))

    def _published(self) -> list[dict[str, Any]]:
        """Current keys and retired ones still within retention; drops the rest."""
        now = self._clock()
        keep_for = self._retention() + SKEW
        out = []
        for rec in self._records():
            retired = rec.get("retired_at")
            if retired and int(retired) + keep_for <= now:
                self._calls("HDEL", KEYS_KEY, rec["kid"])
                self._parsed.pop(rec["kid"], None)
                continue
            out.append(rec)
        return out

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set: current keys first, then retired-but-still-valid ones."""
        keys = []
        for rec in sorted(self._published(), key=lambda r: bool(r.get("retired_at"))):
            public = self._key(rec).as_dict(private=False)
            public.update({"kid": rec["kid"], "alg": rec["alg"], "use": "sig"})
            keys.append(public)
        return {"keys": keys}

    def kids(self) -> list[dict[str, Any]]:
        """Key metadata for the admin API (never the key material)."""
        return [{"kid": r["kid"], "alg": r["alg"], "created_at": r.get("created_at"),
                 "retired_at": r.get("retired_at")} for r in self._published()]

    def verify(self, token: str, algorithms: list[str] | None = None) -> dict[str, Any]:
        """The claims of a JWS signed by one of the published keys; the signature only
        (expiry, audience… are the caller's rules). :class:`ValueError` otherwise."""
        keyset = KeySet([self._key(r) for r in self._published()])
        try:
            return dict(jwt.decode(token, keyset, algorithms=algorithms or list(ALGS)).claims)
        except (JoseError, ValueError, TypeError) as e:
            raise ValueError(f"invalid token: {e}") from None
