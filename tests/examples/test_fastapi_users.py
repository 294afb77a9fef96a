"""examples/fastapi_users: username login whose bearer tokens live in a real TokenginX.

The app runs exactly as its README says (``uvicorn examples.fastapi_users.app:app``) in a
subprocess, talking to a real ``tokenginx-server`` over TCP; a separate redis-py client
looks at the keyspace to check what the app stored there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio
from examples.fastapi_users.db import Base, User, UserDatabase
from fastapi import Depends
from fastapi_users.authentication import RedisStrategy
from fastapi_users.exceptions import UserAlreadyExists
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from tests.conftest import RunningServer, free_port, stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
LIFETIME = 900
PREFIX = "fastapi_users_token:"


@dataclass
class App:
    url: str
    proc: subprocess.Popen


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"uvicorn exited with {proc.returncode}: {err}")
        try:
            if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the example app did not answer at {url} within {timeout}s")


@pytest.fixture(scope="module")
def app(tokenginx: RunningServer) -> Iterator[App]:
    work = tempfile.mkdtemp(prefix="fastapi-users-example-")
    port = free_port()
    env = {
        **os.environ,
        "TOKENGINX_URL": f"redis://127.0.0.1:{tokenginx.port}",
        "DATABASE_URL": f"sqlite+aiosqlite:///{work}/users.db",
        "TOKEN_LIFETIME_SECONDS": str(LIFETIME),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.fastapi_users.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url, proc)
        yield App(url, proc)
    finally:
        stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def http(app: App) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app.url, timeout=30) as client:
        yield client


@pytest.fixture
def store(tokenginx: RunningServer) -> Iterator[redis.Redis]:
    """An independent client on the same TokenginX, to look at what the app stored."""
    client = redis.Redis(port=tokenginx.port, decode_responses=True, socket_timeout=10)
    yield client
    client.close()


def register(http: httpx.Client, password: str = "s3cret-pass!") -> dict:
    name = f"user_{uuid.uuid4().hex[:10]}"
    resp = http.post(
        "/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": password},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    body["password"] = password
    return body


def login(http: httpx.Client, username: str, password: str) -> httpx.Response:
    # fastapi-users' login is the OAuth2 password form: form-encoded, not JSON.
    return http.post("/auth/login", data={"username": username, "password": password})


def token_for(http: httpx.Client, user: dict) -> str:
    resp = login(http, user["username"], user["password"])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "bearer"
    return body["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_login_me_logout_round_trip_through_tokenginx(
    http: httpx.Client, store: redis.Redis
) -> None:
    user = register(http)
    assert user["is_active"] is True and "hashed_password" not in user

    token = token_for(http, user)
    key = PREFIX + token
    assert store.get(key) == str(user["id"])
    assert LIFETIME - 10 <= store.ttl(key) <= LIFETIME

    me = http.get("/users/me", headers=bearer(token))
    assert me.status_code == 200, me.text
    body = me.json()
    assert (body["id"], body["username"], body["email"]) == (
        user["id"],
        user["username"],
        user["email"],
    )
    assert body["last_login_ip"] == "127.0.0.1"
    logged_in = datetime.fromisoformat(body["last_login_at"].replace("Z", "+00:00"))
    assert abs(datetime.now(timezone.utc) - logged_in) < timedelta(minutes=1)
    assert "hashed_password" not in body and "password" not in body

    assert http.post("/auth/logout", headers=bearer(token)).status_code == 204
    assert store.exists(key) == 0
    assert http.get("/users/me", headers=bearer(token)).status_code == 401
    assert http.post("/auth/logout", headers=bearer(token)).status_code == 401


def test_every_request_reads_the_token_from_tokenginx(
    http: httpx.Client, store: redis.Redis
) -> None:
    user = register(http)
    token = token_for(http, user)
    assert http.get("/hello", headers=bearer(token)).json() == {
        "message": f"Hello {user['username']}"
    }
    # Revoking in the store (as an admin or another service would) logs the user out at once.
    assert store.delete(PREFIX + token) == 1
    assert http.get("/hello", headers=bearer(token)).status_code == 401
    assert http.get("/users/me", headers=bearer(token)).status_code == 401


def test_each_login_gets_its_own_token(http: httpx.Client, store: redis.Redis) -> None:
    user = register(http)
    first, second = token_for(http, user), token_for(http, user)
    assert first != second
    assert http.post("/auth/logout", headers=bearer(first)).status_code == 204
    assert http.get("/users/me", headers=bearer(second)).status_code == 200
    assert store.exists(PREFIX + first) == 0 and store.exists(PREFIX + second) == 1


def test_username_match_ignores_case(http: httpx.Client) -> None:
    user = register(http)
    resp = login(http, user["username"].upper(), user["password"])
    assert resp.status_code == 200, resp.text


def test_email_is_not_a_login_name(http: httpx.Client, store: redis.Redis) -> None:
    user = register(http)
    before = set(store.scan_iter(match=PREFIX + "*", count=1000))
    resp = login(http, user["email"], user["password"])
    assert resp.status_code == 400
    assert resp.json() == {"detail": "LOGIN_BAD_CREDENTIALS"}
    assert set(store.scan_iter(match=PREFIX + "*", count=1000)) == before


def test_bad_credentials_are_refused(http: httpx.Client) -> None:
    user = register(http)
    for username, password in [
        (user["username"], "wrong-password"),
        ("nobody_here", user["password"]),
    ]:
        resp = login(http, username, password)
        assert resp.status_code == 400, (username, resp.text)
        assert resp.json() == {"detail": "LOGIN_BAD_CREDENTIALS"}


@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 43])
def test_missing_or_unknown_token_is_401(http: httpx.Client, token: str) -> None:
    headers = bearer(token) if token else {}
    assert http.get("/users/me", headers=headers).status_code == 401


def test_username_and_email_are_unique(http: httpx.Client) -> None:
    user = register(http)
    same_name = {
        "username": user["username"].upper(),
        "email": "other@example.com",
        "password": "another-pass-1",
    }
    same_mail = {
        "username": "someone_else_" + uuid.uuid4().hex[:6],
        "email": user["email"],
        "password": "another-pass-1",
    }
    for body in (same_name, same_mail):
        resp = http.post("/auth/register", json=body)
        assert resp.status_code == 400, resp.text
        assert resp.json() == {"detail": "REGISTER_USER_ALREADY_EXISTS"}


def test_registration_rejects_bad_usernames_and_passwords(http: httpx.Client) -> None:
    base = {"email": f"v{uuid.uuid4().hex[:8]}@example.com", "password": "long-enough-1"}
    for username in ["a@b.example", "ab", "x" * 33, "has space"]:
        resp = http.post("/auth/register", json={**base, "username": username})
        assert resp.status_code == 422, (username, resp.text)
    resp = http.post("/auth/register", json={**base, "username": "shortpw", "password": "short"})
    assert resp.status_code == 400
    assert resp.json()["detail"]["code"] == "REGISTER_INVALID_PASSWORD"


def test_profile_update_keeps_the_session(http: httpx.Client) -> None:
    user = register(http)
    token = token_for(http, user)
    resp = http.patch(
        "/users/me", headers=bearer(token), json={"nickname": "Al", "is_superuser": True}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["nickname"] == "Al" and resp.json()["is_superuser"] is False
    assert http.get("/users/me", headers=bearer(token)).json()["nickname"] == "Al"


def test_seed_mistake_sync_client_in_redis_strategy(tokenginx: RunningServer) -> None:
    """Seed 001's write_token error, reproduced: RedisStrategy awaits its client's calls.

    A sync ``redis.Redis`` returns ``True`` from SET, and awaiting it fails with the seed's
    message. The same strategy on a ``redis.asyncio`` client works against the same server.
    """
    user = User(id=7, username="seed", email="seed@example.com", hashed_password="-")

    sync_client = redis.Redis(port=tokenginx.port, decode_responses=True)
    try:
        wrong = RedisStrategy(sync_client, lifetime_seconds=60)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="object bool can't be used in 'await' expression"):
            asyncio.run(wrong.write_token(user))
    finally:
        sync_client.close()

    async def right() -> tuple[str, str | None, int]:
        client = redis.asyncio.Redis(port=tokenginx.port, decode_responses=True)
        try:
            token = await RedisStrategy(client, lifetime_seconds=60).write_token(user)
            return token, await client.get(PREFIX + token), await client.ttl(PREFIX + token)
        finally:
            await client.aclose()

    token, stored, ttl = asyncio.run(right())
    assert isinstance(token, str) and stored == "7" and 50 <= ttl <= 60


def test_seed_mistake_strategy_built_by_hand() -> None:
    """Seed 001's "Depends ... set" error: calling the strategy dependency by hand.

    Outside FastAPI's injection the parameter keeps its default, the ``Depends`` marker, and
    the strategy gets that instead of a client. (The example's dependency takes the request,
    so it cannot be called without one.)
    """

    async def get_redis_client() -> redis.asyncio.Redis:
        raise AssertionError("never called: nothing resolves the dependency")

    def get_redis_strategy(redis_client=Depends(get_redis_client)) -> RedisStrategy:  # noqa: B008
        return RedisStrategy(redis_client, lifetime_seconds=3600, key_prefix="sys_user_token:")

    strategy = get_redis_strategy()  # what the seed's login route does
    user = User(id=7, username="seed", email="seed@example.com", hashed_password="-")
    with pytest.raises(AttributeError, match="'Depends' object has no attribute 'set'"):
        asyncio.run(strategy.write_token(user))


def test_swagger_authorize_posts_to_the_real_login_route(http: httpx.Client) -> None:
    """Swagger UI's Authorize button logs in at the scheme's tokenUrl; it must be our route."""
    spec = http.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    (scheme,) = schemes.values()
    token_url = scheme["flows"]["password"]["tokenUrl"]
    assert "/" + token_url in spec["paths"] and "post" in spec["paths"]["/" + token_url]
    assert {"/auth/register", "/auth/login", "/auth/logout", "/users/me"} <= set(spec["paths"])


def test_unique_index_catches_a_registration_race(tmp_path: Path) -> None:
    """Two registrations that both pass the look-up: the database index decides, cleanly."""

    async def race() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/race.db")
        try:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
            makers = async_sessionmaker(engine, expire_on_commit=False)
            async with makers() as first, makers() as second:
                row = {"email": "a@example.com", "hashed_password": "-", "username": "racer"}
                await UserDatabase(first, User).create(row)
                with pytest.raises(UserAlreadyExists):
                    await UserDatabase(second, User).create(
                        {**row, "email": "b@example.com", "username": "RACER"}
                    )
                # The session is usable again after the rollback.
                assert (await UserDatabase(second, User).get_by_username("Racer")) is not None
        finally:
            await engine.dispose()

    asyncio.run(race())


def test_app_refuses_to_start_without_tokenginx(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TOKENGINX_URL": f"redis://127.0.0.1:{free_port()}",  # nothing listens there
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/users.db",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.fastapi_users.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert b"Application startup failed" in proc.stderr and b"ConnectionError" in proc.stderr
