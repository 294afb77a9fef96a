"""The gRPC door: ``tokenginx.v1.TokenginXService`` (contract §4.1) on ``grpc.aio``.

The service definition ships with the package (:data:`PROTO_PATH`), so a client in any
language can be generated from the exact file the server was built from::

    python -c "import tokenginx.transport.grpc as g; print(g.PROTO_PATH)"

The committed Python stubs (``tokenginx_pb2``, ``tokenginx_pb2_grpc``) are generated
from it by :mod:`tokenginx.transport.grpc.codegen`; a unit test regenerates them and
fails if they drift. Importing this package does not import grpc.
"""

from __future__ import annotations

from pathlib import Path

PROTO_PATH = Path(__file__).with_name("tokenginx.proto")
SERVICE_NAME = "tokenginx.v1.TokenginXService"

__all__ = ["PROTO_PATH", "SERVICE_NAME"]
