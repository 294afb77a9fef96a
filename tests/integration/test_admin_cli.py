"""tokenginx-admin as a process against a real server's admin API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningServer, free_port, start_tokenginx, stop_process

API_KEY = "admin-cli-key-0123456789"
ADMIN = [sys.executable, "-m", "tokenginx.cli.admin_main"]


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    srv = start_tokenginx("--set", "idp.enabled=true", "--set", f"security.api_keys={API_KEY}",
                          "--requirepass", "s3cret")
    yield srv
    stop_process(srv.proc)
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def admin(srv: RunningServer | None, *args: str, input: str | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TOKENGINX_")}
    if srv is not None:
        base.update(TOKENGINX_URL=srv.http_url, TOKENGINX_API_KEY=API_KEY)
    base.update(env or {})
    return subprocess.run([*ADMIN, *args], input=input, capture_output=True, text=True,
                          env=base, timeout=60)


def login(srv: RunningServer, name: str, password: str) -> httpx.Response:
    return httpx.post(srv.http_url + "/api/v1/auth/login",
                      json={"username": name, "password": password}, timeout=10)


def test_create_list_disable_enable_delete(server: RunningServer) -> None:
    out = admin(server, "users", "create", "alice", "--email", "alice@example.com",
                "--nickname", "Alice", "--password-stdin", input="pass word 1\n")
    assert out.returncode == 0, out.stderr
    assert "created user alice" in out.stdout
    assert login(server, "alice", "pass word 1").status_code == 200

    listed = admin(server, "users", "list")
    assert listed.returncode == 0
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:3] == ["USERNAME", "STATUS", "EMAIL"]
    alice = next(r.split() for r in rows if r.startswith("alice "))
    assert alice[1:3] == ["enabled", "alice@example.com"] and alice[4] == "127.0.0.1"

    as_json = json.loads(admin(server, "users", "list", "--json").stdout)
    assert [u["username"] for u in as_json] == ["alice"]
    assert "password" not in listed.stdout + json.dumps(as_json)

    token = login(server, "alice", "pass word 1").json()["data"]["access_token"]
    assert admin(server, "users", "disable", "alice").returncode == 0
    assert login(server, "alice", "pass word 1").status_code == 401
    me = httpx.get(server.http_url + "/api/v1/auth/users/me",
                   headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.status_code == 401
    assert "disabled" in admin(server, "users", "list").stdout
    assert admin(server, "users", "enable", "alice").returncode == 0
    assert login(server, "alice", "pass word 1").status_code == 200

    reset = admin(server, "users", "reset-password", "alice", "--password-stdin", input="new-pass-2\n")
    assert reset.returncode == 0, reset.stderr
    assert login(server, "alice", "new-pass-2").status_code == 200
    shown = json.loads(admin(server, "users", "show", "alice").stdout)
    assert shown["nickname"] == "Alice"

    assert admin(server, "users", "delete", "alice").returncode == 0
    gone = admin(server, "users", "delete", "alice")
    assert gone.returncode == 1 and "User not found" in gone.stderr


def test_refusals_and_errors(server: RunningServer) -> None:
    dup = [admin(server, "users", "create", "bob", "--password-stdin", input="password-1\n")
           for _ in range(2)]
    assert dup[0].returncode == 0
    assert dup[1].returncode == 1 and "already exists" in dup[1].stderr
    short = admin(server, "users", "create", "carol", "--password-stdin", input="x\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    no_key = admin(server, "users", "list", env={"TOKENGINX_API_KEY": ""})
    assert no_key.returncode == 1 and "HTTP 401" in no_key.stderr
    flags = admin(None, "--url", server.http_url, "--api-key", "s3cret", "users", "list")
    assert flags.returncode == 0 and "bob" in flags.stdout
    down = admin(None, "--url", f"http://127.0.0.1:{free_port()}", "users", "list")
    assert down.returncode == 2 and "cannot reach" in down.stderr
    empty = admin(server, "users", "create", "dan", "--password-stdin", input="")
    assert empty.returncode == 2 and "empty password" in empty.stderr
    assert admin(server, "bogus").returncode == 2  # argparse usage error


def test_console_script_is_installed() -> None:
    exe = shutil.which("tokenginx-admin", path=os.path.dirname(sys.executable))
    assert exe is not None
    out = subprocess.run([exe, "users", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "reset-password" in out.stdout
