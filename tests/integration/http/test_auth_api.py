"""The seed 001 login API and the user admin API over real HTTP, against real servers."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import RunningServer, start_tokenginx, stop_process
from tests.integration.http.conftest import API_KEY
from tests.integration.http.test_openapi_fuzz import run_schemathesis

ADMIN = {"X-API-Key": API_KEY}
IDP = ("--set", "idp.enabled=true", "--set", f"security.api_keys={API_KEY}",
       "--requirepass", "s3cret", "--set", "idp.lockout_delay_ms=0",
       "--set", "idp.lockout_ip_threshold=0")


@pytest.fixture(scope="module")
def idp_server() -> Iterator[RunningServer]:
    srv = start_tokenginx(*IDP, "--set", "idp.registration=true",
                          "--set", "idp.lockout_threshold=3", "--set", "idp.lockout_seconds=60")
    yield srv
    stop_process(srv.proc)
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture
def web(idp_server: RunningServer) -> Iterator[httpx.Client]:
    seen: list[str] = []

    def record(response: httpx.Response) -> None:
        response.read()
        seen.append(response.text)

    with httpx.Client(base_url=idp_server.http_url, timeout=10,
                      event_hooks={"response": [record]}) as client:
        yield client
    # No response of any test ever carries a password hash.
    assert not [t for t in seen if "$argon2" in t or '"password":' in t or "password-1" in t]


@pytest.fixture
def rds(idp_server: RunningServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=idp_server.port, password="s3cret", socket_timeout=10)
    yield client
    client.close()


def create(web: httpx.Client, name: str, password: str = "password-1", **extra: object) -> dict:
    resp = web.post("/api/v1/admin/users", json={"username": name, "password": password, **extra},
                    headers=ADMIN)
    assert resp.status_code == 201, resp.text
    return resp.json()["data"]


def login(web: httpx.Client, name: str, password: str = "password-1") -> httpx.Response:
    return web.post("/api/v1/auth/login", json={"username": name, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_login_me_logout(web: httpx.Client) -> None:
    create(web, "alice", email="alice@example.com", nickname="Alice", phone="+33 1 23 45 67 89")
    resp = login(web, "alice")
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    data = resp.json()["data"]
    assert data["token_type"] == "bearer" and data["expires_in"] == 3600
    token = data["access_token"]
    me = web.get("/api/v1/auth/users/me", headers=bearer(token))
    assert me.status_code == 200
    user = me.json()["data"]
    assert {k: user[k] for k in ("id", "username", "nickname", "email", "phone", "status",
                                  "is_superuser", "last_login_ip")} == {
        "id": "alice", "username": "alice", "nickname": "Alice", "email": "alice@example.com",
        "phone": "+33 1 23 45 67 89", "status": True, "is_superuser": False,
        "last_login_ip": "127.0.0.1"}
    assert user["last_login_at"].endswith("Z") and "avatar" in user
    assert web.post("/api/v1/auth/logout", headers=bearer(token)).status_code == 200
    gone = web.get("/api/v1/auth/users/me", headers=bearer(token))
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "UNAUTHORIZED"
    assert "invalid_token" in gone.headers["www-authenticate"]
    assert web.post("/api/v1/auth/logout", headers=bearer(token)).status_code == 401


def test_form_login_and_token_visible_over_resp(web: httpx.Client, rds: redis.Redis) -> None:
    create(web, "formuser")
    resp = web.post("/api/v1/auth/login", data={"username": "FormUser", "password": "password-1"})
    assert resp.status_code == 200, resp.text
    token = resp.json()["data"]["access_token"]
    info = rds.execute_command("OAUTH.TOKEN.INTROSPECT", token)
    assert b'"active":true' in info and b'"client_id":"tokenginx-login"' in info
    assert rds.execute_command("SSO.USER.REVOKE", "formuser") >= 1
    assert web.get("/api/v1/auth/users/me", headers=bearer(token)).status_code == 401


def test_unknown_user_and_wrong_password_answer_alike(web: httpx.Client) -> None:
    create(web, "bob")
    wrong = login(web, "bob", "not-the-password")
    unknown = login(web, "nobody-here", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"] == {"code": "INVALID_CREDENTIALS",
                                     "message": "Invalid username or password"}


@pytest.mark.parametrize("user", ["carol", "ghost-user"])
def test_lockout_after_threshold(web: httpx.Client, user: str) -> None:
    if user == "carol":
        create(web, user)
    codes = [login(web, user, "bad-password").status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    locked = login(web, user, "password-1")  # even the right password, while locked
    assert locked.status_code == 429
    assert 0 < int(locked.headers["retry-after"]) <= 60
    assert locked.json()["error"]["code"] == "TOO_MANY_ATTEMPTS"
    if user == "carol":  # an admin lifts it
        assert web.post(f"/api/v1/admin/users/{user}/enable", headers=ADMIN).status_code == 200
        assert login(web, user).status_code == 200


def test_register(web: httpx.Client) -> None:
    body = {"username": "dave", "password": "password-1", "email": "dave@example.com"}
    resp = web.post("/api/v1/auth/register", json=body)
    assert resp.status_code == 201, resp.text
    data = resp.json()["data"]
    assert data["user_id"] == "dave" and data["nickname"] == "dave"
    assert web.post("/api/v1/auth/register", json=body).status_code == 409
    short = web.post("/api/v1/auth/register", json={"username": "eve", "password": "x"})
    assert short.status_code == 400 and "at least" in short.json()["error"]["message"]
    assert web.post("/api/v1/auth/register", json={"username": "eve"}).status_code == 400
    assert web.post("/api/v1/auth/register", content=b"{oops").status_code == 400
    assert login(web, "dave").status_code == 200


def test_disabled_user_cannot_log_in_and_its_tokens_die(web: httpx.Client) -> None:
    create(web, "frank")
    token = login(web, "frank").json()["data"]["access_token"]
    resp = web.post("/api/v1/admin/users/frank/disable", headers=ADMIN)
    assert resp.status_code == 200 and resp.json()["data"]["disabled"] is True
    assert web.get("/api/v1/auth/users/me", headers=bearer(token)).status_code == 401
    refused = login(web, "frank")
    assert refused.status_code == 401
    assert refused.json() == login(web, "nobody-else", "password-1").json()
    assert web.post("/api/v1/admin/users/frank/enable", headers=ADMIN).status_code == 200
    assert login(web, "frank").status_code == 200


def test_password_reset_revokes_and_changes(web: httpx.Client) -> None:
    create(web, "gina")
    token = login(web, "gina").json()["data"]["access_token"]
    resp = web.post("/api/v1/admin/users/gina/password", json={"password": "new-password"},
                    headers=ADMIN)
    assert resp.status_code == 200, resp.text
    assert web.get("/api/v1/auth/users/me", headers=bearer(token)).status_code == 401
    assert login(web, "gina").status_code == 401
    assert login(web, "gina", "new-password").status_code == 200


def test_admin_api(web: httpx.Client) -> None:
    assert web.get("/api/v1/admin/users").status_code == 401
    assert web.post("/api/v1/admin/users", json={"username": "x", "password": "password-1"}).status_code == 401
    assert web.get("/api/v1/admin/users", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    create(web, "hank", email="hank@example.com")
    assert web.post("/api/v1/admin/users", json={"username": "hank", "password": "password-1"},
                    headers=ADMIN).status_code == 409
    bad = web.post("/api/v1/admin/users", json={"username": "bad name", "password": "password-1"},
                   headers=ADMIN)
    assert bad.status_code == 400 and "username" in bad.json()["error"]["message"]
    names = [u["username"] for u in web.get("/api/v1/admin/users", headers=ADMIN).json()["data"]]
    assert "hank" in names
    got = web.get("/api/v1/admin/users/HANK", headers=ADMIN).json()["data"]
    assert got["email"] == "hank@example.com"
    token = login(web, "hank").json()["data"]["access_token"]
    assert web.delete("/api/v1/admin/users/hank", headers=ADMIN).status_code == 200
    assert web.delete("/api/v1/admin/users/hank", headers=ADMIN).status_code == 404
    assert web.get("/api/v1/admin/users/hank", headers=ADMIN).status_code == 404
    assert web.post("/api/v1/admin/users/hank/disable", headers=ADMIN).status_code == 404
    assert web.get("/api/v1/auth/users/me", headers=bearer(token)).status_code == 401


def test_only_login_tokens_open_users_me(web: httpx.Client) -> None:
    create(web, "ivan")
    stored = web.post("/api/v1/oauth/tokens", json={"access_token": "foreign-token",
                                                    "user_id": "ivan", "client_id": "other-app"},
                      headers=ADMIN)
    assert stored.status_code == 201
    assert web.get("/api/v1/auth/users/me", headers=bearer("foreign-token")).status_code == 401
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"},
                    bearer("x" * 600), bearer(API_KEY)):
        assert web.get("/api/v1/auth/users/me", headers=headers).status_code == 401


def test_login_input_errors(web: httpx.Client) -> None:
    assert web.post("/api/v1/auth/login", json={"username": "a"}).status_code == 400
    assert web.post("/api/v1/auth/login", json={"username": 1, "password": "x"}).status_code == 400
    assert web.post("/api/v1/auth/login", json=["x"]).status_code == 400
    assert web.post("/api/v1/auth/login", content=b"").status_code == 400


def test_openapi_lists_the_endpoints(idp_server: RunningServer) -> None:
    doc = httpx.get(idp_server.http_url + "/openapi.json", timeout=10).json()
    assert doc["paths"]["/api/v1/auth/login"]["post"]["security"] == []
    assert doc["paths"]["/api/v1/admin/users"]["get"]["security"] != []
    for path in ("/api/v1/auth/register", "/api/v1/auth/users/me", "/api/v1/auth/logout",
                 "/api/v1/admin/users/{username}/password"):
        assert path in doc["paths"]


def test_registration_off_and_idp_off() -> None:
    srv = start_tokenginx(*IDP)
    plain = start_tokenginx()
    try:
        with httpx.Client(base_url=srv.http_url, timeout=10) as web:
            resp = web.post("/api/v1/auth/register", json={"username": "x", "password": "password-1"})
            assert resp.status_code == 403
            assert resp.json()["error"]["code"] == "REGISTRATION_DISABLED"
        with httpx.Client(base_url=plain.http_url, timeout=10) as web:
            assert web.post("/api/v1/auth/login", json={"username": "x", "password": "y"}).status_code == 404
    finally:
        for s in (srv, plain):
            stop_process(s.proc)
            shutil.rmtree(s.data_dir, ignore_errors=True)


def test_accounts_survive_a_restart() -> None:
    data_dir = tempfile.mkdtemp(prefix="tokenginx-idp-")
    try:
        srv = start_tokenginx(*IDP, "--data-dir", data_dir)
        try:
            with httpx.Client(base_url=srv.http_url, timeout=10) as web:
                create(web, "persisted")
        finally:
            stop_process(srv.proc)
            shutil.rmtree(srv.data_dir, ignore_errors=True)
        srv = start_tokenginx(*IDP, "--data-dir", data_dir)
        try:
            with httpx.Client(base_url=srv.http_url, timeout=10) as web:
                assert login(web, "persisted").status_code == 200
        finally:
            stop_process(srv.proc)
            shutil.rmtree(srv.data_dir, ignore_errors=True)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.timeout(600)
def test_fuzz_the_documented_schemas(tmp_path: Path) -> None:
    """The OpenAPI description of these endpoints is true: schemathesis finds no 500s,
    no undocumented statuses, no valid input refused and no invalid input accepted."""
    srv = start_tokenginx(*IDP, "--set", "idp.registration=true")
    try:
        result = run_schemathesis(srv, tmp_path, "--include-path-regex", "/api/v1/(auth|admin/users)",
                                  "--header", f"Authorization: Bearer {API_KEY}",
                                  "--max-examples", "25")
        assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
        assert srv.proc.poll() is None
    finally:
        stop_process(srv.proc)
        shutil.rmtree(srv.data_dir, ignore_errors=True)
