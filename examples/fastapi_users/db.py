"""User records in SQL (SQLite through aiosqlite by default): the model and its adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi_users import exceptions
from fastapi_users_db_sqlalchemy import SQLAlchemyBaseUserTable, SQLAlchemyUserDatabase
from sqlalchemy import DateTime, Index, Integer, String, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTable[int], Base):
    """fastapi-users' columns (email, hashed_password, is_active, ...) plus a username.

    ``is_active`` is the flag fastapi-users checks on every authenticated request; do not
    invent a second one (the seed's ``status``) or active users get 401.
    """

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(length=32), nullable=False)
    nickname: Mapped[str | None] = mapped_column(String(length=64), nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_ip: Mapped[str | None] = mapped_column(String(length=45))

    # One account per username whatever its case: "Alice" cannot register next to "alice".
    __table_args__ = (Index("ix_user_username_lower", func.lower(username), unique=True),)


class UserDatabase(SQLAlchemyUserDatabase[User, int]):
    """The SQLAlchemy adapter, plus look-up by username and unique-constraint races."""

    async def get_by_username(self, username: str) -> User | None:
        statement = select(User).where(func.lower(User.username) == func.lower(username))
        return await self._get_user(statement)

    async def create(self, create_dict: dict[str, Any]) -> User:
        try:
            return await super().create(create_dict)
        except IntegrityError as exc:  # a concurrent registration took the name or e-mail
            await self.session.rollback()
            raise exceptions.UserAlreadyExists() from exc

    async def update(self, user: User, update_dict: dict[str, Any]) -> User:
        try:
            return await super().update(user, update_dict)
        except IntegrityError as exc:
            await self.session.rollback()
            raise exceptions.UserAlreadyExists() from exc


async def get_async_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.session_maker() as session:
        yield session


async def get_user_db(
    session: Annotated[AsyncSession, Depends(get_async_session)],
) -> AsyncIterator[UserDatabase]:
    yield UserDatabase(session, User)
