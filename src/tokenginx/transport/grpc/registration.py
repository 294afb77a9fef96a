"""Registering the servicer so that no request, however malformed, answers UNKNOWN.

The generated ``add_TokenginXServiceServicer_to_server`` hands grpc the messages'
``FromString`` as deserializers; when a client sends bytes that are not a valid
message, grpc aio turns the DecodeError into ``UNKNOWN`` with the Python exception's
text. Here every deserializer catches that and yields a :class:`Malformed` marker
instead, and every handler answers it with ``INVALID_ARGUMENT`` before the servicer
sees it. The method table comes from the service descriptor, so it cannot drift from
the proto.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from tokenginx.transport.grpc import tokenginx_pb2 as pb

_SERVICE = pb.DESCRIPTOR.services_by_name["TokenginXService"]


class Malformed:
    """What a deserializer returns for bytes that do not parse as its message."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    @property
    def details(self) -> str:
        return f"malformed request: the bytes are not a valid {self.type_name} message"


def _deserializer(message_class: Any) -> Callable[[bytes], Any]:
    parse = message_class.FromString
    name = message_class.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception:  # DecodeError, or anything protobuf raises on bad input
            return Malformed(name)

    return deserialize


def _unary(method: Callable[..., Any]) -> Callable[..., Any]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if type(request) is Malformed:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details)
        return await method(request, context)

    return handle


def _server_stream(method: Callable[..., Any]) -> Callable[..., Any]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if type(request) is Malformed:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details)
        async for message in method(request, context):
            yield message

    return handle


def add_servicer(servicer: Any, server: grpc.aio.Server) -> None:
    """Register ``servicer``'s RPCs (as the generated function does, minus UNKNOWN)."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for m in _SERVICE.methods:
        request_class = getattr(pb, m.input_type.name)
        response_class = getattr(pb, m.output_type.name)
        implementation = getattr(servicer, m.name)
        kwargs = {
            "request_deserializer": _deserializer(request_class),
            "response_serializer": response_class.SerializeToString,
        }
        if m.server_streaming and not m.client_streaming:
            handlers[m.name] = grpc.unary_stream_rpc_method_handler(
                _server_stream(implementation), **kwargs
            )
        elif not m.server_streaming and not m.client_streaming:
            handlers[m.name] = grpc.unary_unary_rpc_method_handler(_unary(implementation), **kwargs)
        else:  # the contract has none; refuse to serve a proto we do not handle
            raise RuntimeError(f"{m.full_name}: client streaming is not supported")
    generic = grpc.method_handlers_generic_handler(_SERVICE.full_name, handlers)
    server.add_generic_rpc_handlers((generic,))
    server.add_registered_method_handlers(_SERVICE.full_name, handlers)
