"""docs/grpc.md's examples run, and print what their comments say.

Each ```python block runs against a real server (``localhost:9090`` and the RESP port
rewritten to the test server's, ``your-api-key`` to the auth server's key) with the
client generated from the shipped proto importable as ``tokenginx_pb2``. Every
``print(...)`` whose line ends with a comment, or is followed by a comment line, must
print exactly that comment. The ```bash block that generates a client runs too.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
import redis

from tests.integration.grpc.conftest import API_KEY

DOC = Path(__file__).resolve().parents[3] / "docs" / "grpc.md"
BLOCKS = re.findall(r"^```(python|bash)\n(.*?)^```", DOC.read_text("utf-8"), re.S | re.M)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]


def expected_prints(code: str) -> list[str | None]:
    """For each print() in source order: the output its comment promises (or None)."""
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string[1:].strip()
        elif tok.type not in (
            tokenize.NL,
            tokenize.NEWLINE,
            tokenize.INDENT,
            tokenize.DEDENT,
            tokenize.ENDMARKER,
        ):
            code_lines.add(tok.start[0])
    calls = [
        node
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]
    out: list[str | None] = []
    for call in sorted(calls, key=lambda c: c.lineno):
        end = call.end_lineno or call.lineno
        if end in comments:
            out.append(comments[end])
        elif end + 1 in comments and end + 1 not in code_lines:
            out.append(comments[end + 1])
        else:
            out.append(None)
    return out


def run_block(code: str, grpc_port: int, resp_port: int) -> list[str]:
    from tests.integration.grpc.stubs import client_stubs

    client_stubs()  # tokenginx_pb2 / tokenginx_pb2_grpc, generated from the shipped proto
    code = (
        code.replace("localhost:9090", f"127.0.0.1:{grpc_port}")
        .replace("port=6380", f"port={resp_port}")
        .replace("your-api-key", API_KEY)
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {"__name__": "grpc_docs_example"})
    return out.getvalue().splitlines()


def check(code: str, printed: list[str]) -> None:
    promised = expected_prints(code)
    assert len(printed) == len(promised), printed
    for got, want in zip(printed, promised):
        if want is not None:
            assert got == want


def test_there_are_examples() -> None:
    assert len(PYTHON) == 6
    assert sum(len([w for w in expected_prints(c) if w]) for c in PYTHON) >= 25


@pytest.mark.parametrize("index", [i for i, c in enumerate(PYTHON) if "your-api-key" not in c])
def test_python_example(index: int, tokenginx, r: redis.Redis) -> None:
    code = PYTHON[index]
    check(code, run_block(code, tokenginx.grpc_port, tokenginx.port))


def test_auth_example(auth_server) -> None:
    (code,) = [c for c in PYTHON if "your-api-key" in c]
    check(code, run_block(code, auth_server.grpc_port, auth_server.port))


def test_generating_a_client(tmp_path: Path) -> None:
    (script,) = [code for lang, code in BLOCKS if lang == "bash" and "grpc_tools.protoc" in code]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "-euc", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in tmp_path.iterdir()} == {"tokenginx_pb2.py", "tokenginx_pb2_grpc.py"}
