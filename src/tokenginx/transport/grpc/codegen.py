"""Generate the committed Python stubs from the shipped ``tokenginx.proto``.

    python -m tokenginx.transport.grpc.codegen          # rewrite the stubs in place
    python -m tokenginx.transport.grpc.codegen OUT_DIR  # write them elsewhere

Needs ``grpcio-tools`` (a test extra). The proto is compiled under its plain file name
``tokenginx.proto``, exactly as a user compiling the shipped file would, so the server's
descriptors and a user's stubs can live in one process (protobuf refuses the same
symbols registered under two different file names). protoc then writes
``import tokenginx_pb2`` into the gRPC module; the one rewrite below turns that into an
import from this package, and each file gets a ``# ruff: noqa`` first line (generated
code is not linted). ``tests/unit/transport/grpc/test_stubs.py`` regenerates the
stubs and fails if they differ from the committed ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tokenginx.transport.grpc import PROTO_PATH

PACKAGE = "tokenginx.transport.grpc"
STUB_FILES = ("tokenginx_pb2.py", "tokenginx_pb2.pyi", "tokenginx_pb2_grpc.py")
_PLAIN_IMPORT = "import tokenginx_pb2 as tokenginx__pb2"
_PACKAGE_IMPORT = f"from {PACKAGE} import tokenginx_pb2 as tokenginx__pb2"
_NOQA = "# ruff: noqa\n"


def generate(out_dir: Path, proto: Path = PROTO_PATH) -> list[Path]:
    """Compile ``proto`` into ``out_dir``; returns the written stub files."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{proto.parent}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        proto.name,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {proto}")
    grpc_module = out_dir / "tokenginx_pb2_grpc.py"
    text = grpc_module.read_text()
    if _PLAIN_IMPORT not in text:
        raise RuntimeError(f"unexpected protoc output: no {_PLAIN_IMPORT!r} in {grpc_module}")
    grpc_module.write_text(text.replace(_PLAIN_IMPORT, _PACKAGE_IMPORT))
    stubs = [out_dir / name for name in STUB_FILES]
    for stub in stubs:
        stub.write_text(_NOQA + stub.read_text())
    return stubs


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else PROTO_PATH.parent
    for path in generate(out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
