"""The redis-py samples of seed 000 (the Chinese "Python quick guide"), run unchanged.

Each sample is read out of ``shared/seeds/000_20c8f07ac90adcd1.txt`` at test time (the
```python blocks, picked by a distinctive substring) and executed as written, so
"unchanged" is literal. The samples hard-code ``localhost:6380``, so this module starts
its own tokenginx-server on port 6380.

Things the samples need that they do not say, handled here without editing them:

* redis-py 8 deprecates ``Redis.setex`` and ``redis.asyncio.Redis.close``, which the
  samples call; with ``filterwarnings = error`` those DeprecationWarnings are ignored
  for this module only (``pytestmark``).
* The error-handling sample uses ``json`` without importing it (the guide's earlier
  samples import it); it runs in a namespace that already has ``json``, as in a reader's
  file that pasted it below the quick-start sample.
* The Django sample runs against a stub ``SessionBase`` (see ``django_stub``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import linecache
import re
import shutil
import socket
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import RunningServer, free_port, start_tokenginx, stop_process

# A verbatim copy of ../shared/seeds/000_20c8f07ac90adcd1.txt, kept in the repository so
# CI (a clean clone, without shared/ beside it) runs the samples too.
SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seeds" / "000_20c8f07ac90adcd1.txt"
PORT = 6380  # hard-coded in every sample
HTTP_PORT = 8080  # the HTTP client sample's BASE_URL

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")


# -- reading the samples -----------------------------------------------------------------
def python_blocks() -> list[str]:
    if not SEED.is_file():
        pytest.fail(f"seed file not found: {SEED}")
    return re.findall(r"^```python\n(.*?)^```", SEED.read_text("utf-8"), re.S | re.M)


def sample_code(marker: str) -> str:
    found = [b for b in python_blocks() if marker in b]
    assert len(found) == 1, f"{len(found)} python blocks of the seed contain {marker!r}"
    return found[0]


def run_sample(marker: str, name: str, monkeypatch: pytest.MonkeyPatch,
               **preset: Any) -> dict[str, Any]:
    """Execute the block containing ``marker`` as module ``seed000_<name>``; its globals."""
    code = sample_code(marker)
    filename = f"<seed 000: {name}>"
    # so that tracebacks show the sample's own lines
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    module = types.ModuleType(f"seed000_{name}")
    module.__dict__.update(preset)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(code, filename, "exec"), module.__dict__)
    return module.__dict__


# -- the server on 6380 ------------------------------------------------------------------
def _port_in_use(port: int) -> str | None:
    for host in ("127.0.0.1", "::1"):
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return f"something accepts connections on [{host}]:{port}"
        except OSError:
            pass
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            return f"127.0.0.1:{port} cannot be bound: {e}"
    return None


@pytest.fixture(scope="module")
def server_6380() -> Iterator[RunningServer]:
    for port in (PORT, HTTP_PORT):
        busy = _port_in_use(port)
        if busy:
            pytest.fail(f"{busy}. The seed samples hard-code localhost:{port}; stop whatever "
                        f"listens there (a local redis-server or tokenginx-server?) and rerun.")
    try:
        srv = start_tokenginx(port=PORT, http_port=HTTP_PORT)
    except RuntimeError as e:
        pytest.fail(f"could not start tokenginx-server on port {PORT}: {e}")
    yield srv
    stop_process(srv.proc)
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture
def seed_client(server_6380: RunningServer) -> Iterator[redis.Redis]:
    """Our own view of the 6380 server, to check what the samples left behind."""
    c = redis.Redis(host="127.0.0.1", port=PORT, decode_responses=True, socket_timeout=10)
    c.flushall()
    yield c
    c.close()


def monitored(seed_client: redis.Redis, action: Callable[[], Any]) -> list[str]:
    """Run ``action`` and return the commands the server saw meanwhile (MONITOR)."""
    marker = f"end-of-action-{time.monotonic_ns()}"
    mon_client = redis.Redis(host="127.0.0.1", port=PORT, protocol=2, socket_timeout=10)
    try:
        with mon_client.monitor() as m:
            action()
            seed_client.echo(marker)
            seen: list[str] = []
            while True:
                cmd = m.next_command()["command"]
                if marker in cmd:
                    return seen
                seen.append(cmd)
    finally:
        mon_client.close()


# -- the samples -------------------------------------------------------------------------
QUICKSTART = "name='oauth:token:abc123'"


def test_quickstart_redis_client(seed_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    ns: dict[str, Any] = {}

    def run() -> None:
        ns.update(run_sample(QUICKSTART, "quickstart", monkeypatch))

    try:
        commands = monitored(seed_client, run)
    finally:
        if "client" in ns:
            ns["client"].close()
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["User: john_doe", "Token exists: True"]
    assert lines[2] in ("Token expires in: 3600 seconds", "Token expires in: 3599 seconds")
    assert len(lines) == 3
    assert seed_client.exists("oauth:token:abc123") == 0

    # What the sample sent, after the connection handshake (HELLO 3, CLIENT SETINFO…).
    # MONITOR hides the token id in SSO keys: a token id is a bearer credential.
    data = [c for c in commands if "oauth:token:" in c]
    assert [c.split()[0] for c in data] == ["SETEX", "GET", "EXISTS", "TTL", "DEL"]
    assert data[0].startswith("SETEX oauth:token:(redacted) 3600 ")
    assert not [c for c in commands if "abc123" in c]


def test_connection_pool_sample(seed_client: redis.Redis,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    ns = run_sample("max_connections=50", "connection_pool", monkeypatch)
    try:
        worker_function = ns["worker_function"]
        assert worker_function() == "value"
        assert 59 <= seed_client.ttl("key") <= 60
        with ThreadPoolExecutor(16) as ex:
            results = list(ex.map(lambda _: worker_function(), range(200)))
        assert results == ["value"] * 200
        assert ns["pool"].max_connections == 50
    finally:
        ns["pool"].disconnect()


def test_asyncio_sample(seed_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    run_sample("async def async_example", "asyncio", monkeypatch)  # runs asyncio.run()
    assert capsys.readouterr().out == "User: async_user\n"
    assert seed_client.exists("oauth:token:async123") == 0


ERROR_HANDLING = "def safe_get_session(token)"


def test_error_handling_sample(seed_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    ns = run_sample(ERROR_HANDLING, "error_handling", monkeypatch, json=json)
    safe_get_session = ns["safe_get_session"]

    assert safe_get_session("missing") is None
    session = {"user_id": "user123", "username": "john_doe"}
    seed_client.set("oauth:token:good", json.dumps(session), ex=3600)
    assert safe_get_session("good") == session
    assert capsys.readouterr().out == ""

    seed_client.set("oauth:token:garbled", "{not json")
    assert safe_get_session("garbled") is None
    assert capsys.readouterr().out == "Invalid session data format\n"


def test_error_handling_sample_redis_error(seed_client: redis.Redis,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """GET on a hash: the server's WRONGTYPE error reaches the ResponseError branch."""
    ns = run_sample(ERROR_HANDLING, "error_handling", monkeypatch, json=json)
    seed_client.hset("oauth:token:hash", "user_id", "user123")
    assert ns["safe_get_session"]("hash") is None
    assert capsys.readouterr().out == (
        "Redis error: WRONGTYPE Operation against a key holding the wrong kind of value\n")


def test_oauth2_token_store_sample(seed_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    ns = run_sample("class OAuth2TokenStore", "oauth2_store", monkeypatch)
    store = ns["store"]
    try:
        out = capsys.readouterr().out
        token = r"[A-Za-z0-9_-]{43}"  # secrets.token_urlsafe(32)
        m = re.fullmatch(
            rf"Access Token: ({token})\nRefresh Token: ({token})\n"
            rf"Token valid for user: user123\nNew Access Token: ({token})\n", out)
        assert m, out
        access, refresh, new_access = m.groups()
        assert len({access, refresh, new_access}) == 3
        assert (ns["access_token"], ns["refresh_token"], ns["new_access_token"]) == (
            access, refresh, new_access)

        for t in (access, new_access):
            data = json.loads(seed_client.get(f"oauth:access_token:{t}"))
            assert data["user_id"] == "user123" and data["client_id"] == "client_app"
            assert data["scopes"] == ["read", "write"] and data["token_type"] == "Bearer"
            assert 3599 <= seed_client.ttl(f"oauth:access_token:{t}") <= 3600
        assert 2592000 - 1 <= seed_client.ttl(f"oauth:refresh_token:{refresh}") <= 2592000
        assert sorted(seed_client.scan_iter("oauth:*")) == sorted([
            f"oauth:access_token:{access}", f"oauth:access_token:{new_access}",
            f"oauth:refresh_token:{refresh}"])

        assert store.verify_access_token("no-such-token") is None
        assert store.refresh_access_token("no-such-token") is None
        store.revoke_token(access)
        assert store.verify_access_token(access) is None
        assert store.verify_access_token(new_access)["user_id"] == "user123"
        store.revoke_token(refresh, token_type="refresh")
        assert store.refresh_access_token(refresh) is None
        assert list(seed_client.scan_iter("oauth:*")) == [f"oauth:access_token:{new_access}"]
    finally:
        store.client.close()


# -- Django: the sample's session store against a stub SessionBase ----------------------
class _StubSessionBase:
    """The slice of django.contrib.sessions.backends.base.SessionBase the sample uses.

    Django is not a project dependency and pyproject gets nothing for it, so the sample's
    class body runs on this stub; what is under test is its redis-py traffic. Like Django's
    own, ``_get_new_session_key`` draws 32 random chars until ``exists()`` says the key is
    free, and ``get_expiry_age`` gives SESSION_COOKIE_AGE, 3600 in the sample's settings.py.
    One difference: in real Django ``session_key`` is a read-only property, so the sample's
    ``create()`` (``self.session_key = ...``) would raise AttributeError there; the stub
    keeps a plain attribute.
    """

    SESSION_COOKIE_AGE = 3600

    def __init__(self, session_key: str | None = None) -> None:
        self.session_key = session_key
        self.accessed = False
        self.modified = False
        self._session_cache: dict[str, Any] = {}

    def _get_new_session_key(self) -> str:
        import secrets
        import string

        chars = string.ascii_lowercase + string.digits
        while True:
            key = "".join(secrets.choice(chars) for _ in range(32))
            if not self.exists(key):
                return key

    def get_expiry_age(self, **kwargs: Any) -> int:
        return self.SESSION_COOKIE_AGE


@pytest.fixture
def django_stub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``from django.contrib.sessions.backends.base import SessionBase`` find the stub."""
    names = ["django", "django.contrib", "django.contrib.sessions",
             "django.contrib.sessions.backends", "django.contrib.sessions.backends.base"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules[names[-1]].SessionBase = _StubSessionBase  # type: ignore[attr-defined]


def test_django_session_backend_sample(seed_client: redis.Redis, django_stub: None,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ns = run_sample("class TokenginxSessionStore(SessionBase)", "django_backend", monkeypatch)
    Store = ns["TokenginxSessionStore"]
    stores: list[Any] = []

    def new(*args: Any) -> Any:
        s = Store(*args)
        stores.append(s)
        return s

    try:
        s = new()
        s.create()
        key = s.session_key
        assert re.fullmatch(r"[a-z0-9]{32}", key) and s.modified is True
        s._session_cache = {"user_id": 42, "roles": ["admin"]}
        s.save()
        assert json.loads(seed_client.get(f"django:session:{key}")) == {
            "user_id": 42, "roles": ["admin"]}
        assert 3599 <= seed_client.ttl(f"django:session:{key}") <= 3600

        again = new(key)
        assert again.exists(key) is True
        assert again.load() == {"user_id": 42, "roles": ["admin"]}
        assert again.exists("0" * 32) is False
        assert new("0" * 32).load() == {}

        again.delete()
        assert again.exists(key) is False
        assert again.load() == {}
        s.save()
        s.delete(key)
        assert seed_client.exists(f"django:session:{key}") == 0
    finally:
        for st in stores:
            st.redis_client.close()


# -- Flask ------------------------------------------------------------------------------
def test_flask_sample(seed_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("flask") is None:
        pytest.fail("Flask is not installed, so the seed's Flask sample cannot run. Flask "
                    "belongs in the [test] extras of pyproject.toml; refresh the lock with "
                    "scripts/lock and run scripts/test.")
    ns = run_sample("app = Flask(__name__)", "flask_app", monkeypatch)
    app, tokenginx_client = ns["app"], ns["tokenginx"]
    try:
        http = app.test_client()
        assert http.post("/api/login", json={"username": "admin", "password": "nope"}
                         ).status_code == 401
        resp = http.post("/api/login", json={"username": "admin", "password": "password"})
        assert resp.status_code == 200
        body = resp.get_json()
        token = body["token"]
        assert body["expires_in"] == 3600
        assert json.loads(seed_client.get(f"oauth:token:{token}")) == {
            "user_id": "user123", "username": "admin", "roles": ["admin"]}
        assert 3599 <= seed_client.ttl(f"oauth:token:{token}") <= 3600

        auth = {"Authorization": f"Bearer {token}"}
        assert http.get("/api/profile").status_code == 401
        assert http.get("/api/profile", headers={"Authorization": "Bearer bogus"}
                        ).get_json() == {"error": "Invalid or expired token"}
        profile = http.get("/api/profile", headers=auth)
        assert profile.status_code == 200
        assert profile.get_json() == {
            "user_id": "user123", "username": "admin", "roles": ["admin"]}

        # concurrent requests share the sample's module-level client (and its pool)
        def get_profile(_: int) -> int:
            return app.test_client().get("/api/profile", headers=auth).status_code

        with ThreadPoolExecutor(8) as ex:
            assert set(ex.map(get_profile, range(40))) == {200}

        assert http.post("/api/logout", headers=auth).get_json() == {
            "message": "Logged out successfully"}
        assert seed_client.exists(f"oauth:token:{token}") == 0
        assert http.get("/api/profile", headers=auth).status_code == 401
    finally:
        tokenginx_client.close()


# -- HTTP/REST client ---------------------------------------------------------------------
HTTP_CLIENT = "class TokenginxClient:"


def test_http_client_sample(seed_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    """The requests-based client against the REST API on 8080; it runs its own example."""
    ns = run_sample(HTTP_CLIENT, "http_client", monkeypatch)
    assert capsys.readouterr().out == "User: john_doe\n"
    assert seed_client.exists("oauth:token:abc123") == 0  # its delete_session worked

    client = ns["client"]
    client.set_session("session:xyz", {"user_id": "u1", "roles": ["admin"]}, ttl=120)
    # decisions.md §10: an object written over HTTP is JSON text over RESP ...
    assert json.loads(seed_client.get("session:xyz")) == {"user_id": "u1", "roles": ["admin"]}
    assert 118 <= seed_client.ttl("session:xyz") <= 120
    assert client.exists("session:xyz") is True
    # ... and JSON written with redis-py reads back over HTTP as an object
    seed_client.setex("oauth:token:py", 60, json.dumps({"username": "py_user"}))
    assert client.get_session("oauth:token:py")["value"] == {"username": "py_user"}
    assert client.get_session("oauth:token:missing") is None
    assert client.delete_session("session:xyz") == {"status": "success", "message": "Session deleted"}
    assert client.exists("session:xyz") is False
    client.session.close()


# -- FastAPI ----------------------------------------------------------------------------
@contextlib.contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free port (in a thread); yields its base URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None,
                            access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_fastapi_sample(seed_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    ns = run_sample("app = FastAPI()", "fastapi_app", monkeypatch)
    try:
        with serve_asgi(ns["app"]) as url, httpx.Client(base_url=url, timeout=10) as http:
            assert http.post("/api/login", params={"username": "admin", "password": "nope"}).status_code == 401
            login = http.post("/api/login", params={"username": "admin", "password": "password"})
            assert login.status_code == 200
            body = login.json()
            assert body["token_type"] == "bearer" and body["expires_in"] == 3600
            token = body["token"]
            stored = json.loads(seed_client.get(f"oauth:token:{token}"))
            assert stored == {"user_id": "user123", "username": "admin", "roles": ["admin"]}
            assert 3599 <= seed_client.ttl(f"oauth:token:{token}") <= 3600

            auth = {"Authorization": f"Bearer {token}"}
            profile = http.get("/api/profile", headers=auth)
            assert profile.status_code == 200
            assert profile.json() == {"user_id": "user123", "username": "admin", "roles": ["admin"]}
            assert http.post("/api/logout", headers=auth).json() == {"message": "Logged out successfully"}
            assert seed_client.exists(f"oauth:token:{token}") == 0
            assert http.get("/api/profile", headers=auth).status_code == 401
    finally:
        ns["tokenginx"].close()


def test_every_sample_is_covered() -> None:
    """A new redis-py or HTTP sample in the seed should get a test here."""
    covered = [QUICKSTART, "max_connections=50", "async def async_example", ERROR_HANDLING,
               "class OAuth2TokenStore", "class TokenginxSessionStore(SessionBase)",
               "app = Flask(__name__)", "app = FastAPI()", HTTP_CLIENT]
    blocks = [b for b in python_blocks() if "import redis" in b or "import requests" in b]
    uncovered = [b.splitlines()[0] for b in blocks if not any(m in b for m in covered)]
    assert not uncovered, f"seed 000 has samples without a test: {uncovered}"
