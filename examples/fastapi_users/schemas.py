"""Request and response bodies of the user routes."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi_users import schemas
from pydantic import StringConstraints, field_validator

# No "@": a username can never be mistaken for (or squat) someone's e-mail address.
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{3,32}$")]
Nickname = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class UserRead(schemas.BaseUser[int]):
    username: str
    nickname: str | None = None
    last_login_at: datetime | None = None
    last_login_ip: str | None = None

    @field_validator("last_login_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # SQLite drops the offset; the value was stored in UTC.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class UserCreate(schemas.BaseUserCreate):
    username: Username
    nickname: Nickname | None = None


class UserUpdate(schemas.BaseUserUpdate):
    username: Username | None = None
    nickname: Nickname | None = None
