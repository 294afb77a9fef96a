"""The example's settings, read from the environment."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    # Any redis:// URL works: redis://:password@host:6380/0 when TokenginX runs with --requirepass.
    tokenginx_url: str = "redis://127.0.0.1:6380"
    database_url: str = "sqlite+aiosqlite:///./fastapi_users_example.db"
    token_lifetime_seconds: int = 3600
    token_key_prefix: str = "fastapi_users_token:"
    # Signs fastapi-users' reset-password and verify tokens (those routers are not mounted
    # here); a random value per process is enough until they are.
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @classmethod
    def from_env(cls) -> Settings:
        """TOKENGINX_URL, DATABASE_URL, TOKEN_LIFETIME_SECONDS, TOKEN_KEY_PREFIX, SECRET."""
        defaults = cls()
        env = os.environ
        return cls(
            tokenginx_url=env.get("TOKENGINX_URL", defaults.tokenginx_url),
            database_url=env.get("DATABASE_URL", defaults.database_url),
            token_lifetime_seconds=int(
                env.get("TOKEN_LIFETIME_SECONDS", defaults.token_lifetime_seconds)
            ),
            token_key_prefix=env.get("TOKEN_KEY_PREFIX", defaults.token_key_prefix),
            secret=env.get("SECRET", defaults.secret),
        )
