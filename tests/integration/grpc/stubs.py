"""A gRPC client generated from the shipped proto, the way a user would make one.

``grpc_tools.protoc`` compiles ``tokenginx/transport/grpc/tokenginx.proto`` (found
through the package, as docs/grpc.md shows) into a fresh temporary directory, and the
stubs are imported from there — never the server's committed stubs — so the tests
prove that any client generated from that file works with the server.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import grpc


@functools.lru_cache(maxsize=1)
def client_stubs() -> SimpleNamespace:
    """``pb`` (messages) and ``pb_grpc`` (``TokenginXServiceStub``), generated once."""
    from grpc_tools import protoc

    from tokenginx.transport.grpc import PROTO_PATH

    out = Path(tempfile.mkdtemp(prefix="tokenginx-grpc-client-"))
    atexit.register(shutil.rmtree, out, True)
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_PATH.parent}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            PROTO_PATH.name,
        ]
    )
    assert rc == 0, f"protoc failed on {PROTO_PATH}"
    sys.path.insert(0, str(out))
    try:
        pb = _fresh_import("tokenginx_pb2")
        pb_grpc = _fresh_import("tokenginx_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    for module in (pb, pb_grpc):
        assert Path(module.__file__ or "").parent == out, f"{module.__name__} not from {out}"
    return SimpleNamespace(pb=pb, pb_grpc=pb_grpc)


def _fresh_import(name: str) -> ModuleType:
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def connect(port: int, timeout: float = 10.0) -> grpc.Channel:
    """An insecure channel to ``127.0.0.1:port``, ready to use."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=timeout)
    return channel


def bearer(key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]


def code_of(call: Any, *args: Any, **kwargs: Any) -> tuple[grpc.StatusCode, str]:
    """Run a unary call that must fail; its status code and details."""
    try:
        call(*args, **kwargs)
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError(f"{call} succeeded")
