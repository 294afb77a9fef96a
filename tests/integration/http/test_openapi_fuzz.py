"""The OpenAPI document is true to the implementation: schema-driven fuzzing with
schemathesis finds no 500s, no undocumented status codes and no responses that break
the documented schemas — without and with authentication configured."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer, start_tokenginx, stop_process
from tests.integration.http.conftest import API_KEY

# The event stream never ends by design; it has its own tests.
EXCLUDED = "/api/v1/events"


def run_schemathesis(srv: RunningServer, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists():
        pytest.fail("schemathesis is not installed; run the README's test command (scripts/test)")
    cmd = [
        str(exe), "run", f"{srv.http_url}/openapi.json",
        "--checks", "all",
        "--exclude-path", EXCLUDED,
        "--max-examples", os.environ.get("TOKENGINX_FUZZ_EXAMPLES", "40"),
        "--seed", "20261122",
        "--request-timeout", "10",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)


def _report(result: subprocess.CompletedProcess[str]) -> str:
    out = result.stdout + result.stderr
    return out[-6000:]


@pytest.mark.timeout(900)
def test_fuzz_without_auth(tmp_path: Path) -> None:
    srv = start_tokenginx()
    try:
        result = run_schemathesis(srv, tmp_path)
        assert result.returncode == 0, _report(result)
        assert srv.proc.poll() is None, "the server died under fuzzing"
        assert httpx.get(f"{srv.http_url}/health", timeout=5).status_code == 200
    finally:
        stop_process(srv.proc)
        shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.mark.timeout(900)
def test_fuzz_with_auth(tmp_path: Path) -> None:
    """With an API key configured, ST401 also checks that bad credentials are refused."""
    srv = start_tokenginx("--set", f"security.api_keys={API_KEY}")
    try:
        result = run_schemathesis(srv, tmp_path, "--header", f"Authorization: Bearer {API_KEY}")
        assert result.returncode == 0, _report(result)
        assert srv.proc.poll() is None, "the server died under fuzzing"
    finally:
        stop_process(srv.proc)
        shutil.rmtree(srv.data_dir, ignore_errors=True)


def test_every_route_is_documented_and_every_documented_route_exists(http_server: RunningServer) -> None:
    doc = httpx.get(f"{http_server.http_url}/openapi.json", timeout=5).json()
    assert doc["openapi"] == "3.1.0"
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    expected = {
        ("POST", "/api/v1/sessions"), ("GET", "/api/v1/sessions/{key}"),
        ("HEAD", "/api/v1/sessions/{key}"), ("DELETE", "/api/v1/sessions/{key}"),
        ("PATCH", "/api/v1/sessions/{key}/ttl"), ("POST", "/api/v1/sessions/batch/get"),
        ("POST", "/api/v1/sessions/batch/set"), ("POST", "/api/v1/sessions/batch/delete"),
        ("GET", "/api/v1/keys"), ("GET", "/api/v1/stats"), ("GET", "/api/v1/health"), ("GET", "/health"),
        ("GET", "/api/v1/admin/config"), ("POST", "/api/v1/admin/flushdb"), ("GET", "/api/v1/events"),
        ("POST", "/api/v1/oauth/tokens"), ("POST", "/api/v1/oauth/introspect"), ("POST", "/api/v1/oauth/revoke"),
        ("POST", "/api/v1/saml/sessions"), ("GET", "/api/v1/saml/sessions/{session_index}"),
        ("POST", "/api/v1/cas/tgts"), ("POST", "/api/v1/cas/sts"), ("POST", "/api/v1/cas/validate"),
        ("DELETE", "/api/v1/users/{user_id}/sessions"), ("GET", "/api/v1/users/{user_id}/sessions"),
    }
    assert expected <= documented, expected - documented
    # every documented operation answers (never 404/405 for a documented route)
    with httpx.Client(base_url=http_server.http_url, timeout=5) as api:
        for method, path in sorted(documented):
            if path == EXCLUDED:
                continue
            url = path.replace("{key}", "doc:probe").replace("{session_index}", "x").replace(
                "{user_id}", "u").replace("{token}", "t").replace("{tgt_id}", "TGT-1").replace("{name_id}", "n")
            resp = api.request(method, url, json={})
            assert resp.status_code not in (405, 500), (method, path, resp.text)
            if resp.status_code == 404 and method != "HEAD":
                assert resp.json()["error"]["message"] != "No such endpoint", (method, path)
