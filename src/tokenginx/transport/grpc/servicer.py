"""``tokenginx.v1.TokenginXService``: each RPC is one or more gate calls.

Every call gets its own :class:`~tokenginx.client.Client` of kind ``"grpc"``
(authenticated from the ``authorization: Bearer <api-key>`` metadata when auth is
configured) and runs commands through :meth:`Gate.execute`, like a RESP connection
does: ACL, limits, statistics, persistence and keyspace events are the same whichever
door was used.

=================  =====================================================================
RPC                gate commands
=================  =====================================================================
Set                ``SET key value [EX ttl]``
Get                ``GET key`` + ``PTTL key`` (same loop step, so consistent)
Delete             ``DEL key``
Exists             ``EXISTS key``
GetTTL             ``TTL key``
BatchGet           ``MGET`` per 1000 keys
BatchSet           ``SET key value [EX ttl]`` per item, 1000 per loop step
BatchDelete        ``DEL`` per 1000 keys
Scan               ``SCAN cursor [MATCH p] COUNT n`` until the cursor is 0
SetOAuthToken      ``OAUTH.TOKEN.SET id user scope [EXPIRES_IN] [CLIENT_ID] [METADATA]``
GetOAuthToken      ``OAUTH.TOKEN.GET id``
IntrospectToken    ``OAUTH.TOKEN.INTROSPECT token [TOKEN_TYPE_HINT h]``
RevokeToken        ``OAUTH.TOKEN.REVOKE token [TOKEN_TYPE_HINT h]``
SetSAMLSession     ``SAML.SESSION.SET index name_id assertion [EXPIRES_IN] …``
GetSAMLSession     ``SAML.SESSION.GET index``
SetTGT             ``CAS.TGT.SET tgt user [EXPIRES_IN] [ATTRIBUTES]``
SetST              ``CAS.ST.SET st tgt service [EXPIRES_IN]``
ValidateST         ``CAS.ST.VALIDATE st service``
GetStats           (authentication only) the server's statistics snapshot
HealthCheck        (no authentication) loading/stopping state, version, uptime
=================  =====================================================================
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc

from tokenginx.client import Client
from tokenginx.errors import CommandError
from tokenginx.gate.auth import authenticate_header
from tokenginx.transport.grpc import tokenginx_pb2 as pb
from tokenginx.transport.grpc import translate as tr
from tokenginx.transport.grpc.errors import (
    RpcError,
    from_command_error,
    is_call_level,
    unauthenticated,
)
from tokenginx.version import __version__

if TYPE_CHECKING:
    from tokenginx.server import Server

log = logging.getLogger("tokenginx.grpc")

Context = grpc.aio.ServicerContext
_AbortError = grpc.aio.AbortError
_INTERNAL = grpc.StatusCode.INTERNAL


async def _fail(context: Context, name: str, exc: BaseException) -> None:
    """Turn any exception of a handler into a status (never UNKNOWN)."""
    if isinstance(exc, RpcError):
        await context.abort(exc.code, exc.message)
    log.error("gRPC %s failed", name, exc_info=exc, extra={"event": "grpc_internal_error"})
    await context.abort(_INTERNAL, f"internal error while running {name}")


def rpc(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a handler (plain function, coroutine function or async generator) so that
    :class:`RpcError` ends the call with its status and anything unexpected is logged
    and answered INTERNAL. Cancellation (client gone, deadline) passes through."""
    name = fn.__name__
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def stream(self: Any, request: Any, context: Context) -> AsyncIterator[Any]:
            try:
                async for message in fn(self, request, context):
                    yield message
            except _AbortError:
                raise
            except Exception as e:
                await _fail(context, name, e)

        return stream

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def unary_async(self: Any, request: Any, context: Context) -> Any:
            try:
                return await fn(self, request, context)
            except _AbortError:
                raise
            except Exception as e:
                await _fail(context, name, e)

        return unary_async

    @functools.wraps(fn)
    async def unary(self: Any, request: Any, context: Context) -> Any:
        try:
            return fn(self, request, context)
        except Exception as e:
            await _fail(context, name, e)

    return unary


class TokenginXServicer:
    """Every RPC of the service (``registration.add_servicer`` looks each one up by
    name, so a missing one fails at start-up; the generated base class, whose methods
    only raise NotImplementedError, is deliberately not inherited)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.state = server.state
        self.gate = server.gate
        self.max_message_bytes = server.config.grpc.max_message_bytes
        self.stopping = False

    # -- plumbing ----------------------------------------------------------------------
    def client(self, context: Context) -> Client:
        """A client for this call, authenticated from its metadata or refused."""
        client = Client(self.state, kind="grpc", addr=tr.peer_addr(context.peer()))
        if not client.authenticated:
            authorization = api_key = None
            for key, value in context.invocation_metadata() or ():
                if key == "authorization" and authorization is None:
                    authorization = value
                elif key == "x-api-key" and api_key is None:
                    api_key = value
            if not authenticate_header(client, authorization, api_key):
                raise unauthenticated()
        return client

    def call(self, client: Client, argv: list[bytes]) -> Any:
        """Run one command; an error reply ends the call with its status."""
        reply = self.gate.execute(client, argv)
        if isinstance(reply, CommandError):
            raise from_command_error(reply)
        return reply

    # -- keys ----------------------------------------------------------------------------
    @rpc
    def Set(self, request: pb.SetRequest, context: Context) -> pb.SetResponse:
        client = self.client(context)
        self.call(client, tr.set_argv(request.key, request.value, request.ttl_seconds))
        return pb.SetResponse(success=True)

    @rpc
    def Get(self, request: pb.GetRequest, context: Context) -> pb.GetResponse:
        client = self.client(context)
        key = tr.required("key", request.key)
        value = self.call(client, [b"GET", key])
        if value is None:
            return pb.GetResponse(found=False)
        pttl = self.call(client, [b"PTTL", key])
        if pttl == -2:  # expired between the two calls
            return pb.GetResponse(found=False)
        return pb.GetResponse(value=value, found=True, ttl_seconds=tr.ttl_from_pttl(pttl))

    @rpc
    def Delete(self, request: pb.DeleteRequest, context: Context) -> pb.DeleteResponse:
        client = self.client(context)
        key = tr.required("key", request.key)
        return pb.DeleteResponse(deleted=self.call(client, [b"DEL", key]) > 0)

    @rpc
    def Exists(self, request: pb.ExistsRequest, context: Context) -> pb.ExistsResponse:
        client = self.client(context)
        key = tr.required("key", request.key)
        return pb.ExistsResponse(exists=self.call(client, [b"EXISTS", key]) > 0)

    @rpc
    def GetTTL(self, request: pb.GetTTLRequest, context: Context) -> pb.GetTTLResponse:
        client = self.client(context)
        key = tr.required("key", request.key)
        return pb.GetTTLResponse(ttl_seconds=self.call(client, [b"TTL", key]))

    # -- batches: chunked, the loop serves others between chunks --------------------------
    @rpc
    async def BatchGet(self, request: pb.BatchGetRequest, context: Context) -> pb.BatchGetResponse:
        client = self.client(context)
        keys = tr.key_list(request.keys)
        values: dict[str, bytes] = {}
        size = 0
        for offset, chunk in tr.chunks(keys):
            if offset:
                await asyncio.sleep(0)
            replies = self.call(client, tr.keys_argv(b"MGET", chunk))
            for key, value in zip(chunk, replies):
                if value is not None:
                    values[key] = value
                    size += len(key) + len(value) + 8
            if size > self.max_message_bytes:
                raise RpcError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the values of these keys exceed grpc.max_message_bytes "
                    f"({self.max_message_bytes}); ask for fewer keys per BatchGet",
                )
        return pb.BatchGetResponse(values=values)

    @rpc
    async def BatchSet(self, request: pb.BatchSetRequest, context: Context) -> pb.BatchSetResponse:
        items = request.items
        client = self.client(context)
        # Validate every item before writing any, so a bad request changes nothing.
        for offset, chunk in tr.chunks(items):
            if offset:
                await asyncio.sleep(0)
            tr.check_items(chunk, offset)
        ok = failed = 0
        for _, chunk in tr.chunks(items):
            await asyncio.sleep(0)
            for it in chunk:
                reply = self.gate.execute(client, tr.set_argv(it.key, it.value, it.ttl_seconds))
                if isinstance(reply, CommandError):
                    if is_call_level(reply):
                        raise from_command_error(reply)
                    failed += 1
                else:
                    ok += 1
        return pb.BatchSetResponse(success_count=ok, failed_count=failed)

    @rpc
    async def BatchDelete(
        self, request: pb.BatchDeleteRequest, context: Context
    ) -> pb.BatchDeleteResponse:
        client = self.client(context)
        keys = tr.key_list(request.keys)
        deleted = 0
        for offset, chunk in tr.chunks(keys):
            if offset:
                await asyncio.sleep(0)
            deleted += self.call(client, tr.keys_argv(b"DEL", chunk))
        return pb.BatchDeleteResponse(deleted_count=deleted)

    @rpc
    async def Scan(
        self, request: pb.ScanRequest, context: Context
    ) -> AsyncIterator[pb.ScanResponse]:
        """Stream ``ScanResponse`` batches of ``count`` keys (the last may be smaller)
        until the keyspace is covered. Each SCAN step is one gate call; between steps
        the loop serves other clients, and a cancelled call or an expired deadline
        stops the walk at the next step. Keys that are not UTF-8 cannot be carried by
        the proto's ``string`` and are left out."""
        client = self.client(context)
        count = tr.scan_count(request.count)
        byte_limit = self.max_message_bytes // 2
        cursor = b"0"
        batch: list[str] = []
        size = 0
        while True:
            if self.stopping:
                raise RpcError(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
            cursor, keys = self.call(client, tr.scan_argv(cursor, request.pattern, count))
            for key in keys:
                try:
                    batch.append(key.decode())
                except UnicodeDecodeError:
                    continue
                size += len(key) + 4
                if len(batch) >= count or size >= byte_limit:
                    yield pb.ScanResponse(keys=batch)
                    batch, size = [], 0
            if cursor == b"0":
                break
            await asyncio.sleep(0)
        if batch:
            yield pb.ScanResponse(keys=batch)

    # -- OAuth 2.0 -------------------------------------------------------------------------
    @rpc
    def SetOAuthToken(
        self, request: pb.SetOAuthTokenRequest, context: Context
    ) -> pb.SetOAuthTokenResponse:
        client = self.client(context)
        self.call(client, tr.oauth_token_set_argv(request))
        return pb.SetOAuthTokenResponse(success=True)

    @rpc
    def GetOAuthToken(
        self, request: pb.GetOAuthTokenRequest, context: Context
    ) -> pb.GetOAuthTokenResponse:
        client = self.client(context)
        reply = self.call(client, [b"OAUTH.TOKEN.GET", tr.required("token_id", request.token_id)])
        return tr.oauth_token_response(reply)

    @rpc
    def IntrospectToken(
        self, request: pb.IntrospectTokenRequest, context: Context
    ) -> pb.IntrospectTokenResponse:
        client = self.client(context)
        argv = tr.token_argv(b"OAUTH.TOKEN.INTROSPECT", request)
        return tr.introspection_response(self.call(client, argv))

    @rpc
    def RevokeToken(
        self, request: pb.RevokeTokenRequest, context: Context
    ) -> pb.RevokeTokenResponse:
        # RFC 7009 §2.2: revoking an unknown or already revoked token succeeds too.
        client = self.client(context)
        self.call(client, tr.token_argv(b"OAUTH.TOKEN.REVOKE", request))
        return pb.RevokeTokenResponse(success=True)

    # -- SAML 2.0 --------------------------------------------------------------------------
    @rpc
    def SetSAMLSession(
        self, request: pb.SetSAMLSessionRequest, context: Context
    ) -> pb.SetSAMLSessionResponse:
        client = self.client(context)
        self.call(client, tr.saml_session_set_argv(request))
        return pb.SetSAMLSessionResponse(success=True)

    @rpc
    def GetSAMLSession(
        self, request: pb.GetSAMLSessionRequest, context: Context
    ) -> pb.GetSAMLSessionResponse:
        client = self.client(context)
        index = tr.required("session_index", request.session_index)
        reply = self.call(client, [b"SAML.SESSION.GET", index])
        return tr.saml_session_response(reply)

    # -- CAS -------------------------------------------------------------------------------
    @rpc
    def SetTGT(self, request: pb.SetTGTRequest, context: Context) -> pb.SetTGTResponse:
        client = self.client(context)
        self.call(client, tr.tgt_set_argv(request))
        return pb.SetTGTResponse(success=True)

    @rpc
    def SetST(self, request: pb.SetSTRequest, context: Context) -> pb.SetSTResponse:
        client = self.client(context)
        self.call(client, tr.st_set_argv(request))
        return pb.SetSTResponse(success=True)

    @rpc
    def ValidateST(self, request: pb.ValidateSTRequest, context: Context) -> pb.ValidateSTResponse:
        client = self.client(context)
        reply = self.call(client, tr.st_validate_argv(request))
        return tr.st_validation_response(reply)

    # -- server information ----------------------------------------------------------------
    @rpc
    def GetStats(self, request: pb.GetStatsRequest, context: Context) -> pb.GetStatsResponse:
        self.client(context)  # authentication only: statistics are not keyspace data
        return tr.stats_response(self.state.stats_snapshot())

    @rpc
    def HealthCheck(
        self, request: pb.HealthCheckRequest, context: Context
    ) -> pb.HealthCheckResponse:
        healthy = not (self.state.loading or self.server.stopping)
        status = pb.HealthCheckResponse.HEALTHY if healthy else pb.HealthCheckResponse.UNHEALTHY
        return pb.HealthCheckResponse(
            status=status, version=__version__, uptime_seconds=self.state.uptime_seconds()
        )
