"""Debian's chromium, headless, as the web-page tests drive it (installed by scripts/test)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

import pytest


def run_chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Run headless chromium with a throw-away profile; fails the test if it fails."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed; run the README's test command (scripts/test)")
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result
