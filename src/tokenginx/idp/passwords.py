"""Password hashing with argon2id (argon2-cffi), off the event loop.

Hashing costs tens of milliseconds of CPU and 64 MiB of memory by design, so every
call runs in a worker thread (:func:`asyncio.to_thread`); the loop keeps serving
other clients meanwhile.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2-cffi's defaults are RFC 9106's "second recommended option" (argon2id,
# t=3, m=64 MiB, p=4); hashes made with other parameters still verify, and
# :func:`needs_rehash` tells when one should be upgraded.
_hasher = PasswordHasher()


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(encoded: str, password: str) -> bool:
    """True when ``password`` matches ``encoded``; a malformed hash is a mismatch."""
    return await asyncio.to_thread(_verify, encoded, password)


def _verify(encoded: str, password: str) -> bool:
    try:
        return _hasher.verify(encoded, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(encoded: str) -> bool:
    try:
        return _hasher.check_needs_rehash(encoded)
    except InvalidHashError:
        return True


class DummyHash:
    """A hash of a random secret, verified against when the user does not exist, so an
    unknown username costs the same time as a wrong password."""

    def __init__(self) -> None:
        self._encoded: str | None = None

    async def get(self) -> str:
        if self._encoded is None:
            self._encoded = await hash_password(secrets.token_urlsafe(24))
        return self._encoded
