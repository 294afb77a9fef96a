"""Generate the committed Python stubs from the shipped ``tokenginx.proto``.

    python -m tokenginx.transport.grpc.codegen          # rewrite the stubs in place
    python -m tokenginx.transport.grpc.codegen OUT_DIR  # write them elsewhere

Needs ``grpcio-tools`` (a test extra). The proto is compiled under its plain file name
``tokenginx.proto``, exactly as a user compiling the shipped file would, so the server's
descriptors and a user's stubs can live in one process (protobuf refuses the same
symbols registered under two different file names). protoc then writes
``import tokenginx_pb2`` into the gRPC module; the one rewrite below turns that into an
import from this package, and each file gets a ``# ruff: noqa`` first line (generated
code is not linted).

    python -m tokenginx.transport.grpc.codegen --check  # exit 1 if the stubs drifted

:func:`stub_drift` compares what the committed stubs *mean* with the shipped proto: the
file descriptor embedded in ``tokenginx_pb2`` against the one protoc builds from the
proto, the method table of ``tokenginx_pb2_grpc`` (paths, streaming kinds, message
types) against the service, and the classes and fields ``tokenginx_pb2.pyi`` declares
against the messages. The generator's version string is not part of that, so a newer
grpcio-tools does not make the stubs stale while any proto change does.
"""

from __future__ import annotations

import ast
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

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


def compile_descriptor(proto: Path = PROTO_PATH) -> Any:
    """The ``FileDescriptorProto`` protoc builds from ``proto`` (no source info)."""
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        args = ["grpc_tools.protoc", f"-I{proto.parent}", f"--descriptor_set_out={out}", proto.name]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {proto}")
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    file = fds.file[0]
    _strip_json_names(file.message_type)  # the Python generator embeds none
    return file


def _strip_json_names(messages: Any) -> None:
    for msg in messages:
        for field in list(msg.field) + list(msg.extension):
            field.ClearField("json_name")
        _strip_json_names(msg.nested_type)


def stub_drift(proto: Path = PROTO_PATH, stub_dir: Path | None = None) -> list[str]:
    """Every way the committed stubs disagree with ``proto``; empty when they match.

    ``stub_dir`` holds the ``.pyi`` to check (the package's by default); the Python
    modules checked are the imported ones.
    """
    from google.protobuf import descriptor_pb2

    from tokenginx.transport.grpc import tokenginx_pb2, tokenginx_pb2_grpc

    expected = compile_descriptor(proto)
    committed = descriptor_pb2.FileDescriptorProto.FromString(
        tokenginx_pb2.DESCRIPTOR.serialized_pb
    )
    problems: list[str] = []
    if committed != expected:
        problems.append("tokenginx_pb2.py: its embedded descriptor differs from the proto")
    problems += _grpc_module_drift(expected, tokenginx_pb2, tokenginx_pb2_grpc)
    pyi = (stub_dir or PROTO_PATH.parent) / "tokenginx_pb2.pyi"
    problems += _pyi_drift(expected, pyi)
    return problems


class _RecordingChannel:
    """Stands in for a ``grpc.Channel``: records what the client stub registers."""

    def __init__(self) -> None:
        self.methods: dict[str, tuple[str, Any, Any]] = {}

    def __getattr__(self, kind: str) -> Any:
        def register(
            path: str, request_serializer: Any = None, response_deserializer: Any = None, **_: Any
        ) -> None:
            self.methods[path] = (kind, request_serializer, response_deserializer)

        return register


def _grpc_module_drift(expected: Any, pb2: ModuleType, pb2_grpc: ModuleType) -> list[str]:
    want: dict[str, tuple[str, Any, Any]] = {}
    for service in expected.service:
        for m in service.method:
            kind = (
                ("stream" if m.client_streaming else "unary")
                + "_"
                + ("stream" if m.server_streaming else "unary")
            )
            request = getattr(pb2, m.input_type.rsplit(".", 1)[-1])
            response = getattr(pb2, m.output_type.rsplit(".", 1)[-1])
            path = f"/{expected.package}.{service.name}/{m.name}"
            want[path] = (kind, request.SerializeToString, response.FromString)
    problems = []
    for service in expected.service:
        stub_class = getattr(pb2_grpc, f"{service.name}Stub", None)
        if stub_class is None:
            problems.append(f"tokenginx_pb2_grpc.py: no {service.name}Stub")
            continue
        channel = _RecordingChannel()
        stub_class(channel)
        if channel.methods != want:
            missing = sorted(set(want) ^ set(channel.methods))
            problems.append(
                f"tokenginx_pb2_grpc.py: {service.name}Stub's methods differ from the proto"
                + (f" ({', '.join(missing)})" if missing else " (kinds or message types)")
            )
    return problems


def _pyi_drift(expected: Any, pyi: Path) -> list[str]:
    declared: dict[str, tuple[str, ...]] = {}

    def collect(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                slots: tuple[str, ...] = ()
                for item in node.body:
                    if isinstance(item, ast.Assign) and any(
                        getattr(t, "id", "") == "__slots__" for t in item.targets
                    ):
                        slots = tuple(ast.literal_eval(item.value))
                declared[prefix + node.name] = slots
                collect(node.body, prefix + node.name + ".")

    collect(ast.parse(pyi.read_text()).body, "")
    want: dict[str, tuple[str, ...]] = {}

    def walk(messages: Any, prefix: str) -> None:
        for msg in messages:
            want[prefix + msg.name] = tuple(f.name for f in msg.field)
            walk(msg.nested_type, prefix + msg.name + ".")

    walk(expected.message_type, "")
    problems = [f"{pyi.name}: no class {name}" for name in want if name not in declared]
    problems += [
        f"{pyi.name}: {name} declares {declared[name]}, the proto has {fields}"
        for name, fields in want.items()
        if name in declared and declared[name] != fields
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--check"]:
        problems = stub_drift()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(
                "stubs are stale: run python -m tokenginx.transport.grpc.codegen", file=sys.stderr
            )
        return 1 if problems else 0
    out_dir = Path(args[0]) if args else PROTO_PATH.parent
    for path in generate(out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
