"""Authentication through the gate: API keys, the requirepass password, Basic auth."""

from __future__ import annotations

import base64

import httpx
import pytest
import redis

from tests.conftest import RunningServer
from tests.integration.http.conftest import API_KEY


@pytest.fixture
def anon(auth_server: RunningServer) -> httpx.Client:
    with httpx.Client(base_url=auth_server.http_url, timeout=10) as client:
        yield client


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"default:wrong").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"nouser-colon").decode()},
        {"Authorization": "Digest abc"},
        {"X-API-Key": "nope"},
    ],
)
def test_refused_without_valid_credentials(anon: httpx.Client, headers: dict[str, str]) -> None:
    resp = anon.get("/api/v1/sessions/k", headers=headers)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "UNAUTHORIZED"
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert anon.post("/api/v1/sessions", json={"key": "k", "value": 1}, headers=headers).status_code == 401
    assert anon.get("/metrics", headers=headers).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {API_KEY}"},
        {"Authorization": "Bearer s3cret"},  # the requirepass password
        {"Authorization": "Basic " + base64.b64encode(b"default:s3cret").decode()},
        {"Authorization": "Basic " + base64.b64encode(f"default:{API_KEY}".encode()).decode()},
        {"X-API-Key": API_KEY},
    ],
)
def test_accepted_with_valid_credentials(anon: httpx.Client, headers: dict[str, str]) -> None:
    assert anon.post("/api/v1/sessions", json={"key": "auth:k", "value": 1}, headers=headers).status_code == 201
    assert anon.get("/api/v1/sessions/auth:k", headers=headers).json()["value"] == 1
    assert anon.get("/metrics", headers=headers).status_code == 200


def test_health_and_openapi_are_open(anon: httpx.Client) -> None:
    assert anon.get("/health").status_code == 200
    assert anon.get("/api/v1/health").status_code == 200
    assert anon.get("/openapi.json").status_code == 200


def test_api_key_also_authenticates_resp(auth_server: RunningServer) -> None:
    with redis.Redis(port=auth_server.port, socket_timeout=5) as r, pytest.raises(redis.AuthenticationError):
        r.get("k")
    with redis.Redis(port=auth_server.port, password=API_KEY, socket_timeout=5) as r:
        assert r.ping()
    with redis.Redis(port=auth_server.port, password="wrong", socket_timeout=5) as r, pytest.raises(redis.AuthenticationError):
        r.ping()
