"""The gRPC door: ``tokenginx.v1.TokenginXService`` (contract §4.1) on ``grpc.aio``.

The service definition ships with the package (:data:`PROTO_PATH`), so a client in any
language can be generated from the exact file the server was built from::

    python -c "import tokenginx.transport.grpc as g; print(g.PROTO_PATH)"

The committed Python stubs (``tokenginx_pb2``, ``tokenginx_pb2_grpc``) are generated
from it by :mod:`tokenginx.transport.grpc.codegen`; a unit test regenerates them and
fails if they drift. Importing this package does not import grpc.
"""

from __future__ import annotations

import os
from pathlib import Path

# The server forks for BGSAVE. With gRPC's fork support on, its pthread_atfork
# handlers restart pollers in the child, which then die on the descriptors the child
# closes, and the snapshot fails. The child never uses gRPC, so turn the handlers off
# (before grpc is first imported; an explicit setting in the environment wins).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

PROTO_PATH = Path(__file__).with_name("tokenginx.proto")
SERVICE_NAME = "tokenginx.v1.TokenginXService"

__all__ = ["PROTO_PATH", "SERVICE_NAME"]
