"""fastapi-users wiring: username login, and bearer tokens kept in TokenginX."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Annotated

import redis.asyncio
from fastapi import Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from fastapi_users import BaseUserManager, FastAPIUsers, IntegerIDMixin, exceptions
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, RedisStrategy

from .db import User, UserDatabase, get_user_db
from .schemas import UserCreate


class UserManager(IntegerIDMixin, BaseUserManager[User, int]):
    user_db: UserDatabase

    async def authenticate(self, credentials: OAuth2PasswordRequestForm) -> User | None:
        """Log in by username: the login form's ``username`` field is a username, not an e-mail.

        Keeps fastapi-users' contract: the form object in, a user or None out, a hash computed
        even for unknown users so they take as long as wrong passwords, and a stale hash
        upgraded. Hashing runs in a thread so it does not stall the event loop.
        """
        user = await self.user_db.get_by_username(credentials.username)
        if user is None:
            await asyncio.to_thread(self.password_helper.hash, credentials.password)
            return None
        verified, new_hash = await asyncio.to_thread(
            self.password_helper.verify_and_update, credentials.password, user.hashed_password
        )
        if not verified:
            return None
        if new_hash is not None:
            await self.user_db.update(user, {"hashed_password": new_hash})
        return user

    async def create(
        self, user_create: UserCreate, safe: bool = False, request: Request | None = None
    ) -> User:
        """fastapi-users checks the e-mail is free; the username must be free too."""
        if await self.user_db.get_by_username(user_create.username) is not None:
            raise exceptions.UserAlreadyExists()
        return await super().create(user_create, safe, request)

    async def validate_password(self, password: str, user: UserCreate | User) -> None:
        if len(password) < 8:
            raise exceptions.InvalidPasswordException(
                reason="Password should be at least 8 characters"
            )
        if user.username and user.username.lower() in password.lower():
            raise exceptions.InvalidPasswordException(
                reason="Password should not contain the username"
            )

    async def on_after_login(
        self, user: User, request: Request | None = None, response: Response | None = None
    ) -> None:
        """Record the last login, as seed 001's /users/me reports it."""
        ip = request.client.host if request is not None and request.client else None
        await self.user_db.update(
            user, {"last_login_at": datetime.now(timezone.utc), "last_login_ip": ip}
        )


async def get_user_manager(
    request: Request, user_db: Annotated[UserDatabase, Depends(get_user_db)]
) -> AsyncIterator[UserManager]:
    manager = UserManager(user_db)
    manager.reset_password_token_secret = request.app.state.settings.secret
    manager.verification_token_secret = request.app.state.settings.secret
    yield manager


def get_redis_strategy(request: Request) -> RedisStrategy[User, int]:
    """The one strategy both login (write_token) and every authenticated request (read_token) use.

    Its client is the app's single ``redis.asyncio`` client, opened in the lifespan: never a
    sync ``redis.Redis``, and never built by calling this function by hand.
    """
    settings = request.app.state.settings
    client: redis.asyncio.Redis = request.app.state.redis
    return RedisStrategy(
        client,
        lifetime_seconds=settings.token_lifetime_seconds,
        key_prefix=settings.token_key_prefix,
    )


# tokenUrl is the real login route, so Swagger UI's "Authorize" button logs in where we serve.
bearer_transport = BearerTransport(tokenUrl="auth/login")

auth_backend = AuthenticationBackend(
    name="tokenginx", transport=bearer_transport, get_strategy=get_redis_strategy
)

fastapi_users = FastAPIUsers[User, int](get_user_manager, [auth_backend])
current_active_user = fastapi_users.current_user(active=True)
