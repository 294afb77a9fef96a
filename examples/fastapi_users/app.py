"""The application: ``uvicorn examples.fastapi_users.app:app`` (from the repository root)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import redis.asyncio
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from .db import Base, User
from .schemas import UserCreate, UserRead, UserUpdate
from .settings import Settings
from .users import auth_backend, current_active_user, fastapi_users


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_async_engine(settings.database_url)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        # One asyncio client (and its connection pool) for the app's lifetime, created inside
        # the running loop. decode_responses=True: the stored user id comes back as str
        # (an int id parses from bytes too, a UUID id would not).
        client = redis.asyncio.from_url(settings.tokenginx_url, decode_responses=True)
        try:
            await client.ping()  # fail at startup, not at the first login, if TokenginX is down
        except Exception:
            await client.aclose()
            await engine.dispose()
            raise
        app.state.settings = settings
        app.state.session_maker = async_sessionmaker(engine, expire_on_commit=False)
        app.state.redis = client
        try:
            yield
        finally:
            await client.aclose()
            await engine.dispose()

    app = FastAPI(title="fastapi-users on TokenginX", lifespan=lifespan)
    app.include_router(fastapi_users.get_auth_router(auth_backend), prefix="/auth", tags=["auth"])
    app.include_router(
        fastapi_users.get_register_router(UserRead, UserCreate), prefix="/auth", tags=["auth"]
    )
    app.include_router(
        fastapi_users.get_users_router(UserRead, UserUpdate), prefix="/users", tags=["users"]
    )

    @app.get("/hello", tags=["demo"])
    async def hello(user: Annotated[User, Depends(current_active_user)]) -> dict[str, str]:
        """Any route protected by the same dependency works like /users/me."""
        return {"message": f"Hello {user.username}"}

    return app


app = create_app()
