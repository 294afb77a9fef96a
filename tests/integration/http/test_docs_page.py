"""The interactive docs page, rendered by a real browser (Debian chromium, headless)."""

from __future__ import annotations

import re

from tests.chromium import run_chromium
from tests.conftest import RunningServer


def render(url: str) -> str:
    """The page's DOM after its scripts ran (chromium --dump-dom)."""
    return run_chromium("--virtual-time-budget=10000", "--dump-dom", url).stdout


def test_docs_page_lists_every_operation_from_the_openapi_document(http_server: RunningServer) -> None:
    import httpx

    doc = httpx.get(f"{http_server.http_url}/openapi.json", timeout=5).json()
    operation_ids = {op["operationId"] for ops in doc["paths"].values() for op in ops.values()}
    dom = render(f"{http_server.http_url}/docs")
    rendered = set(re.findall(r'<details id="([A-Za-z]+)"', dom))
    assert rendered == operation_ids
    assert "Loading the API description" not in dom  # the script replaced the placeholder
    assert 'data-op="createSession"' in dom  # each panel has its Send button
    assert "<textarea" in dom  # and a prefilled body where the operation takes one
